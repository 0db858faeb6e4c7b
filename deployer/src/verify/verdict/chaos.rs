//! The chaos check: a node stopped under traffic, then converged back; what failed,
//! in which phase, and whether the cluster ended as its file says.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::super::traffic::Hit;
use super::super::Check;
use super::{plural, round};

/// When during the chaos check a request was made: before the stop, while the node was
/// down, while converging (until the node served again, or to the end if it never did),
/// or after it recovered.
pub(in crate::verify) fn chaos_phase(
    at: Instant,
    stop: Instant,
    converge: Instant,
    back: Option<Instant>,
) -> &'static str {
    match () {
        _ if at < stop => "before_stop",
        _ if at < converge => "node_down",
        _ if back.is_none_or(|b| at < b) => "converging",
        _ => "after_recovery",
    }
}

/// The chaos check when the cluster differs from its file (`changes`, one per step):
/// nothing was stopped.
pub(in crate::verify) fn chaos_not_in_sync(changes: &[String]) -> Check {
    Check::failed(
        "chaos",
        format!(
            "skipped: the cluster differs from cluster.toml ({}); run `deployer apply` first",
            changes.join(", ")
        ),
    )
}

/// What the chaos check measured.
pub(in crate::verify) struct ChaosFigures {
    /// The node it stopped.
    pub victim: String,
    /// How long the stop took.
    pub stop_seconds: f64,
    /// Every request of the background traffic.
    pub hits: Vec<Hit>,
    pub stopped_at: Instant,
    pub converge_began: Instant,
    /// When the victim first served again after convergence began.
    pub back_at: Option<Instant>,
    /// Answers per node while the victim was down.
    pub served_while_down: BTreeMap<String, usize>,
    /// The convergence's plan steps, or why it failed.
    pub converged: Result<Vec<String>, String>,
    pub converge_seconds: f64,
    /// Whether the victim is the same container afterwards (restarted, not replaced).
    pub same_container: bool,
    /// What still differs from the file afterwards (its summary), if anything.
    pub left: Option<String>,
}

/// The chaos check: convergence brought the victim back as the same container, it
/// served again, nothing failed, nothing answered from the stopped node, nothing differs.
pub(in crate::verify) fn chaos_check(f: &ChaosFigures) -> Check {
    let victim = &f.victim;
    let (stop_s, converge_s) = (f.stop_seconds, f.converge_seconds);
    let requests = f.hits.len();
    let failures: Vec<&String> = f
        .hits
        .iter()
        .filter_map(|h| h.node.as_ref().err())
        .collect();
    let mut failed_by_phase: BTreeMap<&str, usize> = BTreeMap::new();
    for h in f.hits.iter().filter(|h| h.node.is_err()) {
        let phase = chaos_phase(h.at, f.stopped_at, f.converge_began, f.back_at);
        *failed_by_phase.entry(phase).or_default() += 1;
    }
    let recovery_s = f
        .back_at
        .map(|at| at.duration_since(f.converge_began).as_secs_f64());
    let down_s = f
        .back_at
        .map(|at| at.duration_since(f.stopped_at).as_secs_f64());

    let mut problems = Vec::new();
    if let Err(e) = &f.converged {
        problems.push(format!(
            "convergence failed, {victim} may be left stopped (run `deployer apply`): {e}"
        ));
    }
    if f.converged.is_ok() && f.back_at.is_none() {
        problems.push(format!(
            "{victim} did not serve through the balancer within 30s"
        ));
    }
    if !failures.is_empty() {
        problems.push(format!(
            "{} failed request{} ({}): {}",
            failures.len(),
            plural(failures.len()),
            failed_by_phase
                .iter()
                .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", "),
            failures[0]
        ));
    }
    if f.served_while_down.contains_key(victim) {
        problems.push(format!("{victim} answered while stopped"));
    }
    if let Some(left) = &f.left {
        problems.push(format!("the cluster still differs: {left}"));
    }
    if !f.same_container {
        problems.push(format!("{victim} is a different container now"));
    }
    let plan_steps: &[String] = f.converged.as_deref().unwrap_or_default();
    let summary = format!(
        "stopped {victim} ({stop_s:.1}s), {requests} requests through the balancer (new connection each): {} failed; \
         converged in {converge_s:.1}s ({}), serving again {} after convergence began ({} after the stop){}",
        failures.len(),
        plan_steps.join(", "),
        recovery_s.map_or("never".into(), |s| format!("{s:.1}s")),
        down_s.map_or("-".into(), |s| format!("{s:.1}s")),
        if problems.is_empty() {
            String::new()
        } else {
            format!("; {}", problems.join("; "))
        }
    );
    Check::new(
        "chaos",
        problems.is_empty(),
        summary,
        json!({
            "node": victim,
            "stop_seconds": round(stop_s, 2),
            "requests": requests,
            "failed": failures.len(),
            "failed_by_phase": failed_by_phase,
            "first_errors": failures.iter().take(5).collect::<Vec<_>>(),
            "served_while_down": f.served_while_down,
            "converge_plan": plan_steps,
            "converge_seconds": round(converge_s, 2),
            "recovery_seconds": recovery_s.map(|s| round(s, 2)),
            "down_seconds": down_s.map(|s| round(s, 2)),
            "same_container": f.same_container,
            "plan_empty_after": f.left.is_none(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{counts, strings};
    use super::*;

    #[test]
    fn chaos_phases_split_at_stop_convergence_and_recovery() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (stop, converge) = (at(100), at(200));
        let cases = [
            (at(50), Some(at(300)), "before_stop"),
            (at(100), Some(at(300)), "node_down"),
            (at(199), Some(at(300)), "node_down"),
            (at(200), Some(at(300)), "converging"),
            (at(300), Some(at(300)), "after_recovery"),
            (at(900), None, "converging"),
        ];
        for (t, back, phase) in cases {
            assert_eq!(
                chaos_phase(t, stop, converge, back),
                phase,
                "{t:?} {back:?}"
            );
        }
    }

    fn chaos_figures(t0: Instant) -> ChaosFigures {
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let hit = |ms: u64, node: Result<&str, &str>| Hit {
            at: at(ms),
            node: node.map(str::to_string).map_err(str::to_string),
        };
        ChaosFigures {
            victim: "c-app-3".into(),
            stop_seconds: 0.5,
            hits: vec![
                hit(10, Ok("c-app-3")),
                hit(1500, Ok("c-app-1")),
                hit(3500, Ok("c-app-3")),
            ],
            stopped_at: at(1000),
            converge_began: at(2000),
            back_at: Some(at(3500)),
            served_while_down: counts(&[("c-app-1", 1)]),
            converged: Ok(strings(&["~ c-app-3  start"])),
            converge_seconds: 1.0,
            same_container: true,
            left: None,
        }
    }

    #[test]
    fn chaos_passes_when_nothing_failed_and_the_node_came_back() {
        let c = chaos_check(&chaos_figures(Instant::now()));
        assert!(c.passed, "{}", c.summary);
        assert_eq!(
            c.summary,
            "stopped c-app-3 (0.5s), 3 requests through the balancer (new connection each): 0 failed; \
             converged in 1.0s (~ c-app-3  start), serving again 1.5s after convergence began (2.5s after the stop)"
        );
        assert_eq!(c.figures["recovery_seconds"], 1.5);
        assert_eq!(c.figures["plan_empty_after"], true);
    }

    type Change = fn(&mut ChaosFigures);

    #[test]
    fn chaos_names_each_problem() {
        let t0 = Instant::now();
        let failed_hits = |f: &mut ChaosFigures| {
            f.hits.push(Hit {
                at: t0 + Duration::from_millis(1200),
                node: Err("status 502".into()),
            });
            f.hits.push(Hit {
                at: t0 + Duration::from_millis(2500),
                node: Err("no answer".into()),
            });
        };
        let cases: [(Change, &str); 6] = [
            (
                |f| f.converged = Err("apply: boom".into()),
                "convergence failed, c-app-3 may be left stopped (run `deployer apply`): apply: boom",
            ),
            (|f| f.back_at = None, "c-app-3 did not serve through the balancer within 30s"),
            (
                |f| {
                    f.served_while_down.insert("c-app-3".into(), 2);
                },
                "c-app-3 answered while stopped",
            ),
            (|f| f.left = Some("1 to change".into()), "the cluster still differs: 1 to change"),
            (|f| f.same_container = false, "c-app-3 is a different container now"),
            (|_| {}, "2 failed requests (1 converging, 1 node down): status 502"),
        ];
        for (i, (change, problem)) in cases.into_iter().enumerate() {
            let mut f = chaos_figures(t0);
            if i == 5 {
                failed_hits(&mut f);
            }
            change(&mut f);
            let c = chaos_check(&f);
            assert!(!c.passed, "{problem}");
            assert!(
                c.summary.ends_with(&format!("; {problem}")),
                "{} should end with {problem}",
                c.summary
            );
        }
        let mut never = chaos_figures(t0);
        never.back_at = None;
        assert!(chaos_check(&never)
            .summary
            .contains("serving again never after convergence began (- after the stop)"));
    }

    #[test]
    fn chaos_skips_a_cluster_that_differs_from_its_file() {
        let c = chaos_not_in_sync(&strings(&["+ c-app-3", "~ c-nginx  reload"]));
        assert!(!c.passed);
        assert_eq!(
            c.summary,
            "skipped: the cluster differs from cluster.toml (+ c-app-3, ~ c-nginx  reload); run `deployer apply` first"
        );
    }
}
