//! The balancer and nodes checks: the balancer's health answer, and each node's
//! health and readiness probes (and parsing their curl output).

use serde_json::{json, Value};

use super::super::Check;
use super::{code_text, one_line, round};

/// The balancer check from the answer to `GET {base_url}/api/health`: its status and
/// body, or why there was none, and how long it took.
pub(in crate::verify) fn balancer_check(
    base_url: &str,
    answer: Result<(u16, Value), String>,
    ms: f64,
) -> Check {
    let url = format!("{base_url}/api/health");
    match answer {
        Ok((200, body)) => {
            let node = body["node"].as_str().unwrap_or("?").to_string();
            Check::new(
                "balancer",
                true,
                format!("GET {url}: 200 from {node} in {ms} ms"),
                json!({"url": url, "status": 200, "node": node, "ms": ms}),
            )
        }
        Ok((status, _)) => Check::new(
            "balancer",
            false,
            format!("GET {url}: {status}"),
            json!({"url": url, "status": status, "ms": ms}),
        ),
        Err(e) => Check::failed("balancer", format!("GET {url}: {e}")),
    }
}

/// The nodes check from each node's probes (health, then readiness) or why they could
/// not run, as seen inside `network`.
pub(in crate::verify) fn nodes_check(
    network: &str,
    results: &[(String, Result<Vec<Probe>, String>)],
) -> Check {
    let mut figures = Vec::new();
    let mut parts = Vec::new();
    let mut healthy = 0;
    for (node, probe) in results {
        match probe {
            Ok(p) if p.len() == 2 => {
                let (health, ready) = (&p[0], &p[1]);
                let named = serde_json::from_str::<Value>(&health.body)
                    .ok()
                    .and_then(|v| v["node"].as_str().map(str::to_string));
                let ok = health.status == 200
                    && ready.status == 200
                    && named.as_deref() == Some(node.as_str());
                healthy += ok as usize;
                parts.push(if ok {
                    format!("{node} {:.1} ms", health.ms)
                } else if named.as_deref().is_some_and(|n| n != node) {
                    format!("{node} answers as {}", named.as_deref().unwrap_or("?"))
                } else if health.status == 0 && ready.status == 0 {
                    format!("{node} no answer")
                } else {
                    format!(
                        "{node} health {} ready {}",
                        code_text(health.status),
                        code_text(ready.status)
                    )
                });
                figures.push(json!({
                    "node": node, "ok": ok,
                    "health": health.status, "health_ms": health.ms,
                    "ready": ready.status, "ready_ms": ready.ms,
                    "ready_body": serde_json::from_str::<Value>(&ready.body).unwrap_or(Value::Null),
                }));
            }
            Ok(p) => {
                parts.push(format!("{node}: unexpected probe output"));
                figures.push(
                    json!({"node": node, "ok": false, "error": format!("{} answers", p.len())}),
                );
            }
            Err(e) => {
                parts.push(format!("{node}: {}", one_line(e)));
                figures.push(json!({"node": node, "ok": false, "error": e}));
            }
        }
    }
    let total = results.len();
    Check::new(
        "nodes",
        total > 0 && healthy == total,
        format!(
            "{healthy}/{total} healthy and ready inside {network}: {}",
            parts.join(", ")
        ),
        json!({"healthy": healthy, "nodes": figures, "network": network}),
    )
}

/// One answer of a probe run with `curl -w '\n%{http_code} %{time_total}\n'`.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::verify) struct Probe {
    pub body: String,
    pub status: u16,
    pub ms: f64,
}

/// Splits the probe output into (body line, "code seconds" line) pairs.
pub(in crate::verify) fn parse_probes(out: &str) -> Vec<Probe> {
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            let mut meta = c[1].split_whitespace();
            let status = meta.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let secs: f64 = meta.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            Probe {
                body: c[0].to_string(),
                status,
                ms: round(secs * 1000.0, 1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_check_reads_the_answer() {
        let ok = balancer_check("http://h:1", Ok((200, json!({"node": "a-1"}))), 2.5);
        assert!(ok.passed);
        assert_eq!(
            ok.summary,
            "GET http://h:1/api/health: 200 from a-1 in 2.5 ms"
        );
        assert_eq!(ok.figures["node"], "a-1");
        let bad = balancer_check("http://h:1", Ok((502, Value::Null)), 1.0);
        assert_eq!(
            (bad.passed, bad.summary.as_str()),
            (false, "GET http://h:1/api/health: 502")
        );
        let down = balancer_check("http://h:1", Err("connection refused".into()), 1.0);
        assert!(!down.passed);
        assert_eq!(
            down.figures["error"],
            "GET http://h:1/api/health: connection refused"
        );
    }

    type ProbeResult = Result<Vec<Probe>, String>;

    fn probe(body: &str, status: u16, ms: f64) -> Probe {
        Probe {
            body: body.into(),
            status,
            ms,
        }
    }

    #[test]
    fn a_node_passes_when_it_answers_both_probes_as_itself() {
        let ok = |n: &str| {
            Ok(vec![
                probe(&format!("{{\"node\":\"{n}\"}}"), 200, 1.0),
                probe("{}", 200, 2.0),
            ])
        };
        let cases: [(ProbeResult, bool, &str); 6] = [
            (ok("a"), true, "a 1.0 ms"),
            (ok("b"), false, "a answers as b"),
            (
                Ok(vec![probe("", 0, 0.0), probe("", 0, 0.0)]),
                false,
                "a no answer",
            ),
            (
                Ok(vec![
                    probe("{\"node\":\"a\"}", 200, 1.0),
                    probe("{}", 503, 1.0),
                ]),
                false,
                "a health 200 ready 503",
            ),
            (
                Ok(vec![probe("", 200, 1.0)]),
                false,
                "a: unexpected probe output",
            ),
            (
                Err("exited with 1:\n  boom".into()),
                false,
                "a: exited with 1: boom",
            ),
        ];
        for (result, passed, part) in cases {
            let c = nodes_check("net", &[("a".to_string(), result)]);
            assert_eq!(c.passed, passed, "{}", c.summary);
            let healthy = if passed { 1 } else { 0 };
            assert_eq!(
                c.summary,
                format!("{healthy}/1 healthy and ready inside net: {part}")
            );
        }
        assert!(!nodes_check("net", &[]).passed, "no nodes is no pass");
    }

    #[test]
    fn probe_output_pairs_bodies_with_codes() {
        let out = "{\"node\":\"x\"}\n200 0.004\n\n000 0.001\n";
        let p = parse_probes(out);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].status, 200);
        assert_eq!(p[0].ms, 4.0);
        assert_eq!(p[0].body, "{\"node\":\"x\"}");
        assert_eq!(p[1].status, 0);
        assert_eq!(p[1].body, "");
    }
}
