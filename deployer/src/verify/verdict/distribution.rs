//! The distribution check: how evenly the balancer spread requests over the nodes,
//! judged by the configured strategy (Jain's fairness index for the spreading ones).

use std::collections::BTreeMap;

use serde_json::json;

use super::super::Check;
use super::{listed, round};
use crate::config::Choice;
use crate::config::Strategy;

/// Jain's fairness index at or above which a spreading strategy passes (1 is a perfectly
/// even spread, 1/n all on one node).
pub const MIN_FAIRNESS: f64 = 0.9;

/// Jain's fairness index: (Σx)² / (n·Σx²); 1 when even, 1/n when one takes all.
pub fn fairness(counts: &[usize]) -> f64 {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64).powi(2)).sum();
    if counts.is_empty() || squares == 0.0 {
        return 0.0;
    }
    sum * sum / (counts.len() as f64 * squares)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistributionVerdict {
    pub passed: bool,
    pub fairness: f64,
    /// Why it failed, when it did.
    pub why: Option<String>,
}

/// Judges per-node counts by the strategy: round_robin, least_conn and random spread
/// over every node fairly; ip_hash sends one client to one node.
pub fn judge_distribution(
    strategy: Strategy,
    counts: &BTreeMap<String, usize>,
    errors: usize,
) -> DistributionVerdict {
    let values: Vec<usize> = counts.values().copied().collect();
    let fairness = fairness(&values);
    let served: Vec<&String> = counts
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(k, _)| k)
        .collect();
    let idle: Vec<&String> = counts
        .iter()
        .filter(|(_, &c)| c == 0)
        .map(|(k, _)| k)
        .collect();
    let why = if errors > 0 {
        Some(format!("{errors} requests failed"))
    } else {
        match strategy {
            Strategy::IpHash if served.len() == 1 => None,
            Strategy::IpHash => Some(format!(
                "ip_hash should send one client to one node, but {} served",
                served.len()
            )),
            _ if !idle.is_empty() => Some(format!(
                "{} served nothing",
                idle.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ if fairness < MIN_FAIRNESS => Some(format!("fairness below {MIN_FAIRNESS}")),
            _ => None,
        }
    };
    DistributionVerdict {
        passed: why.is_none(),
        fairness,
        why,
    }
}

/// The distribution check from `n` requests: answers per node (every node listed, also
/// those that served none) and the failed ones.
pub(in crate::verify) fn distribution_check(
    strategy: Strategy,
    n: usize,
    counts: &BTreeMap<String, usize>,
    errors: &[String],
) -> Check {
    let judged = judge_distribution(strategy, counts, errors.len());
    let spread = match (strategy, counts.iter().find(|(_, &c)| c == n)) {
        (Strategy::IpHash, Some((node, _))) => format!("ip_hash: one client sticks to {node}"),
        (strategy, _) => format!("fairness {:.3}, {}", judged.fairness, strategy.as_str()),
    };
    let mut summary = format!("{n} requests: {} ({spread})", listed(counts));
    if !errors.is_empty() {
        summary.push_str(&format!("; {} failed: {}", errors.len(), errors[0]));
    }
    if let Some(why) = &judged.why {
        summary.push_str(&format!("; {why}"));
    }
    Check::new(
        "distribution",
        judged.passed,
        summary,
        json!({
            "requests": n,
            "per_node": counts,
            "fairness": round(judged.fairness, 3),
            "fairness_index": "jain",
            "min_fairness": MIN_FAIRNESS,
            "strategy": strategy.as_str(),
            "errors": errors.len(),
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{counts, strings};
    use super::*;

    #[test]
    fn fairness_is_one_when_even_and_one_over_n_when_one_takes_all() {
        assert!((fairness(&[334, 333, 333]) - 1.0).abs() < 1e-4);
        assert!((fairness(&[1000, 0, 0]) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(fairness(&[]), 0.0);
        assert_eq!(fairness(&[0, 0]), 0.0);
    }

    #[test]
    fn distribution_is_judged_by_strategy() {
        let even = counts(&[("a", 334), ("b", 333), ("c", 333)]);
        let one = counts(&[("a", 1000), ("b", 0), ("c", 0)]);
        let skewed = counts(&[("a", 600), ("b", 300), ("c", 100)]);
        let cases = [
            (Strategy::RoundRobin, &even, 0, true),
            (Strategy::LeastConn, &even, 0, true),
            (Strategy::Random, &even, 0, true),
            (Strategy::RoundRobin, &one, 0, false),
            (Strategy::RoundRobin, &skewed, 0, false),
            (Strategy::RoundRobin, &even, 1, false),
            (Strategy::IpHash, &one, 0, true),
            (Strategy::IpHash, &even, 0, false),
            (Strategy::IpHash, &one, 2, false),
        ];
        for (strategy, counts, errors, passed) in cases {
            let v = judge_distribution(strategy, counts, errors);
            assert_eq!(v.passed, passed, "{strategy:?} {counts:?} {errors}: {v:?}");
            assert_eq!(v.why.is_none(), passed);
        }
    }

    #[test]
    fn distribution_summary_lists_every_node_and_the_spread() {
        let cases = [
            (
                Strategy::RoundRobin,
                counts(&[("a", 2), ("b", 2)]),
                vec![],
                true,
                "4 requests: a 2, b 2 (fairness 1.000, round_robin)",
            ),
            (
                Strategy::IpHash,
                counts(&[("a", 4), ("b", 0)]),
                vec![],
                true,
                "4 requests: a 4, b 0 (ip_hash: one client sticks to a)",
            ),
            (
                Strategy::RoundRobin,
                counts(&[("a", 3), ("b", 0)]),
                strings(&["status 502"]),
                false,
                "4 requests: a 3, b 0 (fairness 0.500, round_robin); 1 failed: status 502; 1 requests failed",
            ),
        ];
        for (strategy, counts, errors, passed, summary) in cases {
            let c = distribution_check(strategy, 4, &counts, &errors);
            assert_eq!((c.passed, c.summary.as_str()), (passed, summary));
            assert_eq!(c.figures["errors"], errors.len());
            assert_eq!(c.figures["strategy"], strategy.as_str());
        }
    }
}
