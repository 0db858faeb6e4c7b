//! The jobs check: every enqueued job completed exactly once, spread over the nodes.

use std::collections::BTreeMap;

use serde_json::json;

use super::super::Check;
use super::{listed, plural, round};

/// One row of the jobs query: state, attempts, node, count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::verify) struct JobRow {
    pub state: String,
    pub attempts: u32,
    pub node: String,
    pub count: usize,
}

impl JobRow {
    pub fn parse(r: &[String]) -> Option<JobRow> {
        Some(JobRow {
            state: r.first()?.clone(),
            attempts: r.get(1)?.parse().ok()?,
            node: r.get(2)?.clone(),
            count: r.get(3)?.parse().ok()?,
        })
    }

    /// Whether the job no longer waits to run.
    pub fn finished(&self) -> bool {
        self.state == "completed" || self.state == "discarded"
    }
}

#[derive(Debug, Default)]
pub(in crate::verify) struct JobsVerdict {
    pub once: usize,
    pub by_node: BTreeMap<String, usize>,
    pub by_state: BTreeMap<String, usize>,
    pub max_attempts: u32,
    pub problems: Vec<String>,
}

pub(in crate::verify) fn judge_jobs(
    rows: &[JobRow],
    wanted: usize,
    enqueued: usize,
    nodes: u32,
) -> JobsVerdict {
    let mut v = JobsVerdict::default();
    for r in rows {
        *v.by_state.entry(r.state.clone()).or_default() += r.count;
        v.max_attempts = v.max_attempts.max(r.attempts);
        if r.state == "completed" {
            *v.by_node.entry(r.node.clone()).or_default() += r.count;
            if r.attempts == 1 {
                v.once += r.count;
            }
        }
    }
    let found: usize = v.by_state.values().sum();
    if found != enqueued {
        v.problems
            .push(format!("{enqueued} enqueued but {found} in the queue"));
    }
    if v.once < wanted {
        let pending: Vec<String> = v
            .by_state
            .iter()
            .filter(|(s, _)| s.as_str() != "completed")
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        if !pending.is_empty() {
            v.problems
                .push(format!("not done by the deadline: {}", pending.join(", ")));
        }
    }
    if v.max_attempts > 1 {
        v.problems.push(format!(
            "some ran more than once (up to {} attempts)",
            v.max_attempts
        ));
    }
    let need = if nodes >= 2 { 2 } else { 1 };
    if v.by_node.len() < need {
        v.problems.push(format!(
            "run by {} node{}, expected at least {need}",
            v.by_node.len(),
            plural(v.by_node.len())
        ));
    }
    v
}

/// What the jobs check measured.
pub(in crate::verify) struct JobsFigures {
    /// Jobs it tried to enqueue.
    pub jobs: usize,
    /// Why each refused enqueue was refused.
    pub refused: Vec<String>,
    /// The queue's rows of its jobs when they were done or the deadline passed.
    pub rows: Vec<JobRow>,
    pub nodes: u32,
    pub enqueue_seconds: f64,
    pub seconds: f64,
    pub deadline_seconds: u64,
}

/// The jobs check: every job enqueued, completed exactly once, by enough nodes.
pub(in crate::verify) fn jobs_check(f: &JobsFigures) -> Check {
    let m = f.jobs;
    let enqueued = m - f.refused.len();
    let judged = judge_jobs(&f.rows, m, enqueued, f.nodes);
    let mut summary = format!(
        "{m} jobs: {} completed exactly once in {:.1}s, run by {} node{} ({})",
        judged.once,
        f.seconds,
        judged.by_node.len(),
        plural(judged.by_node.len()),
        listed(&judged.by_node),
    );
    if !f.refused.is_empty() {
        summary.push_str(&format!(
            "; {} not enqueued: {}",
            f.refused.len(),
            f.refused[0]
        ));
    }
    for why in &judged.problems {
        summary.push_str(&format!("; {why}"));
    }
    Check::new(
        "jobs",
        f.refused.is_empty() && judged.problems.is_empty(),
        summary,
        json!({
            "jobs": m,
            "enqueued": enqueued,
            "completed_once": judged.once,
            "by_node": judged.by_node,
            "by_state": judged.by_state,
            "max_attempts_seen": judged.max_attempts,
            "enqueue_seconds": round(f.enqueue_seconds, 2),
            "seconds": round(f.seconds, 2),
            "deadline_seconds": f.deadline_seconds,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::strings;
    use super::*;

    fn row(state: &str, attempts: u32, node: &str, count: usize) -> JobRow {
        JobRow {
            state: state.into(),
            attempts,
            node: node.into(),
            count,
        }
    }

    #[test]
    fn jobs_must_complete_once_on_two_nodes() {
        let good = [row("completed", 1, "a", 30), row("completed", 1, "b", 20)];
        let v = judge_jobs(&good, 50, 50, 3);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.once, 50);

        let one_node = [row("completed", 1, "a", 50)];
        assert_eq!(judge_jobs(&one_node, 50, 50, 3).problems.len(), 1);
        assert!(judge_jobs(&one_node, 50, 50, 1).problems.is_empty());

        let twice = [row("completed", 1, "a", 49), row("completed", 2, "b", 1)];
        let v = judge_jobs(&twice, 50, 50, 3);
        assert_eq!(v.once, 49);
        assert!(v.problems.iter().any(|p| p.contains("more than once")));

        let late = [row("completed", 1, "a", 40), row("available", 0, "", 10)];
        let v = judge_jobs(&late, 50, 50, 3);
        assert!(v.problems.iter().any(|p| p.contains("10 available")));
    }

    #[test]
    fn job_rows_parse_and_know_when_they_are_finished() {
        let r = JobRow::parse(&strings(&["completed", "1", "a", "3"])).unwrap();
        assert_eq!(r, row("completed", 1, "a", 3));
        assert!(r.finished());
        assert!(row("discarded", 3, "", 1).finished());
        assert!(!row("available", 0, "", 1).finished());
        assert_eq!(JobRow::parse(&strings(&["completed", "x", "a", "3"])), None);
        assert_eq!(JobRow::parse(&strings(&["completed", "1"])), None);
    }

    #[test]
    fn jobs_summary_counts_the_refused_and_the_problems() {
        let f = JobsFigures {
            jobs: 3,
            refused: strings(&["status 429"]),
            rows: vec![row("completed", 1, "a", 1), row("completed", 1, "b", 1)],
            nodes: 2,
            enqueue_seconds: 0.123,
            seconds: 1.25,
            deadline_seconds: 30,
        };
        let c = jobs_check(&f);
        assert!(!c.passed);
        assert_eq!(
            c.summary,
            "3 jobs: 2 completed exactly once in 1.2s, run by 2 nodes (a 1, b 1); 1 not enqueued: status 429"
        );
        assert_eq!(c.figures["enqueued"], 2);
        assert_eq!(c.figures["enqueue_seconds"], 0.12);
        assert_eq!(c.figures["deadline_seconds"], 30);
        let all = jobs_check(&JobsFigures {
            jobs: 2,
            refused: vec![],
            ..f
        });
        assert!(all.passed, "{}", all.summary);
    }
}
