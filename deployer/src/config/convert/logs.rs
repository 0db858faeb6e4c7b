//! The [logs] section: log rotation for every container the deployer creates.

use super::Checker;
use crate::config::raw::RawLogs;
use crate::config::spec::LogsSpec;

/// The section's values; an invalid one is reported and replaced by its default. The
/// defaults keep at most 3 × 10 MB per container: the balancer's access log (a line per
/// request) stays useful for hours of traffic and can never fill the disk.
pub(super) fn convert(c: &mut Checker, l: &RawLogs) -> LogsSpec {
    let max_size_mb = c.int(
        &l.max_size_mb,
        "max_size_mb",
        10,
        1..=1024,
        "megabytes a container's log file may reach before the engine starts a new one",
    );
    let max_files = c.int(
        &l.max_files,
        "max_files",
        3,
        1..=100,
        "log files kept per container (the oldest is dropped)",
    );
    LogsSpec {
        max_size_mb: max_size_mb as u32,
        max_files: max_files as u32,
    }
}
