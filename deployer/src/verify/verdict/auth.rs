//! The auth check: one login's token works through the balancer on several nodes and
//! on every node directly (and who served each call, from the balancer's log).

use std::collections::BTreeMap;

use serde_json::json;

use super::super::Check;
use super::{listed, plural};
use crate::config::Strategy;

/// What the auth check measured.
pub(in crate::verify) struct AuthFigures {
    /// `GET /api/auth/me` calls through the balancer.
    pub requests: usize,
    /// Why each failed one failed.
    pub errors: Vec<String>,
    /// Calls per node that served them, from the balancer's log.
    pub served: BTreeMap<String, usize>,
    /// The same token sent to each node directly: its status (0: no answer).
    pub direct: Vec<(String, u16)>,
    pub nodes: usize,
    pub strategy: Strategy,
}

/// The auth check: every call succeeded, at least two nodes served them (unless one
/// node or ip_hash), and every node accepted the token directly.
pub(in crate::verify) fn auth_check(f: &AuthFigures) -> Check {
    let n = f.requests;
    let (errors, served, direct) = (&f.errors, &f.served, &f.direct);
    let attributed: usize = served.values().sum();
    let refused: Vec<String> = direct
        .iter()
        .filter(|(_, c)| *c != 200)
        .map(|(n, c)| match c {
            0 => format!("{n}: no answer"),
            c => format!("{n} answered {c}"),
        })
        .collect();
    let spread_needed = f.nodes >= 2 && f.strategy != Strategy::IpHash;
    let spread_ok = !spread_needed || served.len() >= 2;
    let passed = errors.is_empty() && refused.is_empty() && spread_ok;
    let mut summary = format!(
        "one login, {n} × GET /api/auth/me: {} ok, served by {} node{} ({}); token accepted directly by {}/{} nodes",
        n - errors.len(),
        served.len(),
        plural(served.len()),
        listed(served),
        direct.len() - refused.len(),
        direct.len(),
    );
    if !errors.is_empty() {
        summary.push_str(&format!("; {} failed: {}", errors.len(), errors[0]));
    }
    if !refused.is_empty() {
        summary.push_str(&format!("; {}", refused.join(", ")));
    }
    if !spread_ok {
        summary.push_str("; expected at least two nodes to serve them");
    }
    if attributed < n {
        summary.push_str(&format!(
            " ({attributed} of {n} found in the balancer's log)"
        ));
    }
    Check::new(
        "auth",
        passed,
        summary,
        json!({
            "requests": n,
            "ok": n - errors.len(),
            "errors": errors.len(),
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            "served_by": served,
            "attributed": attributed,
            "direct": direct.iter().map(|(n, c)| json!({"node": n, "status": c})).collect::<Vec<_>>(),
        }),
    )
}

/// The upstream that finally answered, from an access log line in the format of the
/// generated nginx.conf (`upstream=$upstream_addr ust=…`); retries are comma-separated.
pub(in crate::verify) fn upstream_of(line: &str) -> Option<&str> {
    let rest = line.split_once("upstream=")?.1;
    let value = rest.split(" ust=").next()?;
    let last = value.rsplit([',', ' ']).find(|s| !s.is_empty())?;
    (last != "-").then_some(last.trim())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{counts, strings};
    use super::*;

    #[test]
    fn auth_needs_every_call_two_nodes_and_every_node_direct() {
        let figures =
            |errors: &[&str], served: &[(&str, usize)], direct: &[u16], strategy| AuthFigures {
                requests: 4,
                errors: strings(errors),
                served: counts(served),
                direct: direct
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("n{i}"), *c))
                    .collect(),
                nodes: 2,
                strategy,
            };
        let rr = Strategy::RoundRobin;
        let good = auth_check(&figures(&[], &[("n0", 2), ("n1", 2)], &[200, 200], rr));
        assert!(good.passed, "{}", good.summary);
        assert_eq!(
            good.summary,
            "one login, 4 × GET /api/auth/me: 4 ok, served by 2 nodes (n0 2, n1 2); token accepted directly by 2/2 nodes"
        );
        let cases = [
            (
                figures(&["status 401"], &[("n0", 2), ("n1", 2)], &[200, 200], rr),
                "; 1 failed: status 401",
            ),
            (
                figures(&[], &[("n0", 2), ("n1", 2)], &[200, 0], rr),
                "; n1: no answer",
            ),
            (
                figures(&[], &[("n0", 2), ("n1", 2)], &[401, 200], rr),
                "; n0 answered 401",
            ),
            (
                figures(&[], &[("n0", 4)], &[200, 200], rr),
                "; expected at least two nodes to serve them",
            ),
            (
                figures(&[], &[("n0", 3)], &[200, 200], Strategy::IpHash),
                " (3 of 4 found in the balancer's log)",
            ),
        ];
        for (f, tail) in cases {
            let c = auth_check(&f);
            assert!(
                c.summary.ends_with(tail),
                "{} should end with {tail}",
                c.summary
            );
        }
        assert!(auth_check(&figures(&[], &[("n0", 4)], &[200, 200], Strategy::IpHash)).passed);
    }

    #[test]
    fn upstream_is_read_from_the_access_log() {
        let line = "172.30.0.1 - [25/Nov/2026:08:23:11 +0000] \"GET /api/health HTTP/1.1\" 200 112 rt=0.003 upstream=172.30.0.3:4000 ust=200 urt=0.003 id=x";
        assert_eq!(upstream_of(line), Some("172.30.0.3:4000"));
        let retried =
            "… upstream=172.30.0.5:4000, 172.30.0.4:4000 ust=502, 200 urt=0.001, 0.002 id=y";
        assert_eq!(upstream_of(retried), Some("172.30.0.4:4000"));
        assert_eq!(upstream_of("… upstream=- ust=- id=z"), None);
        assert_eq!(upstream_of("no upstream here"), None);
    }
}
