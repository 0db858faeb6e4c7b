//! The load check: request rate, latency percentiles and errors under concurrency.

use serde_json::json;

use super::super::Check;
use super::{percentile, round};

/// The load check from `n` requests `c` at a time that took `secs`: each one's latency
/// in ms, and why each failed one failed.
pub(in crate::verify) fn load_check(
    n: usize,
    c: usize,
    secs: f64,
    mut ms: Vec<f64>,
    errors: &[String],
) -> Check {
    ms.sort_by(f64::total_cmp);
    let rps = n as f64 / secs.max(1e-9);
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    let mut summary = format!(
        "{n} × GET /api/health, {c} at a time: {rps:.0} req/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {} errors",
        errors.len()
    );
    if let Some(e) = errors.first() {
        summary.push_str(&format!(" (first: {e})"));
    }
    Check::new(
        "load",
        errors.is_empty(),
        summary,
        json!({
            "requests": n,
            "concurrency": c,
            "seconds": round(secs, 3),
            "requests_per_second": round(rps, 1),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "max_ms": round(ms.last().copied().unwrap_or(0.0), 2),
            "errors": errors.len(),
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::strings;
    use super::*;

    #[test]
    fn load_reports_rate_and_percentiles() {
        let ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let c = load_check(100, 10, 0.5, ms, &[]);
        assert!(c.passed);
        assert_eq!(
            c.summary,
            "100 × GET /api/health, 10 at a time: 200 req/s, p50 50.0 ms, p99 99.0 ms, 0 errors"
        );
        assert_eq!(c.figures["max_ms"], 100.0);
        let bad = load_check(2, 1, 1.0, vec![1.0, 2.0], &strings(&["status 502"]));
        assert!(!bad.passed);
        assert!(
            bad.summary.ends_with("1 errors (first: status 502)"),
            "{}",
            bad.summary
        );
    }
}
