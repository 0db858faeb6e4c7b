//! The pure side of verify: what the checks measured goes in as plain data, the
//! judgement (pass or fail, the one-line summary, the JSON figures) comes out. Nothing
//! here sends a request or touches the engine, so every rule is table-tested.
//!
//! One file per check; this module holds the small helpers they share.

mod auth;
mod chaos;
mod cleanup;
mod database;
mod distribution;
mod jobs;
mod load;
mod nodes;
mod pooler;

use std::collections::BTreeMap;

pub(super) use auth::{auth_check, upstream_of, AuthFigures};
pub(super) use chaos::{chaos_check, chaos_not_in_sync, ChaosFigures};
pub(super) use cleanup::{cleanup_check, Removed};
pub(super) use database::database_check;
pub(super) use distribution::distribution_check;
pub use distribution::{fairness, judge_distribution, DistributionVerdict, MIN_FAIRNESS};
pub(super) use jobs::{jobs_check, JobRow, JobsFigures};
pub(super) use load::load_check;
pub(super) use nodes::{balancer_check, nodes_check, parse_probes};
pub(super) use pooler::{pooler_check, PoolerFigures, PoolerSample};

/// `a 3, b 2`: a map as the summaries show it.
fn listed<V: std::fmt::Display>(m: &BTreeMap<impl std::fmt::Display, V>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "" for one, "s" otherwise.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Nearest-rank percentile of sorted values.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(super) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn code_text(code: u16) -> String {
    if code == 0 {
        "no answer".into()
    } else {
        code.to_string()
    }
}

/// Whitespace collapsed, at most 200 characters.
pub(super) fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    pub(super) fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn one_line_collapses_whitespace_and_cuts_at_200_characters() {
        assert_eq!(one_line(" a\n  b\tc "), "a b c");
        let long = "é".repeat(250);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
    }
}
