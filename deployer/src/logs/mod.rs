//! `deployer logs`, the target-neutral part: which units a person asked for
//! ([`select`]), lines stamped by the engine, merged in time order and cut to
//! the last N per unit ([`line`]), and how a line is shown ([`format`]). The
//! targets read the engine (`target/docker/logs.rs`, `target/swarm/logs.rs`)
//! and hand back [`Line`]s named by their unit.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub mod format;
pub mod line;
pub mod select;

pub use format::Printer;
pub use line::Line;
pub use select::{SelectError, Selection};

/// What `deployer logs` asks a target for.
#[derive(Debug, Clone)]
pub struct Request {
    pub selection: Selection,
    /// Only lines written this long ago or later.
    pub since: Option<Duration>,
    /// Only the last N lines of each unit (before following).
    pub tail: Option<usize>,
}

impl Request {
    /// `--since` as the engine takes it: whole seconds since the epoch, at `now`.
    pub fn since_at(&self, now: DateTime<Utc>) -> Option<i64> {
        let d = chrono::Duration::from_std(self.since?).unwrap_or(chrono::Duration::MAX);
        Some(
            now.checked_sub_signed(d)
                .map_or(0, |t| t.timestamp().max(0)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_counted_back_from_now_in_whole_seconds() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:00:00.9Z")
            .unwrap()
            .with_timezone(&Utc);
        let req = |since| Request {
            selection: Selection::everything(),
            since,
            tail: None,
        };
        let t = now.timestamp();
        assert_eq!(req(None).since_at(now), None);
        assert_eq!(
            req(Some(Duration::from_secs(600))).since_at(now),
            Some(t - 600)
        );
        assert_eq!(req(Some(Duration::from_secs(0))).since_at(now), Some(t));
        assert_eq!(
            req(Some(Duration::from_secs(u64::MAX))).since_at(now),
            Some(0)
        );
    }
}
