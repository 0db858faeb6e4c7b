//! The jobs check: background jobs enqueued through the balancer complete exactly once,
//! within the deadline, on several nodes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::traffic::fire;
use super::super::verdict::{self, JobRow, JobsFigures};
use super::super::{Check, Verifier};
use super::auth::TestUser;
use crate::target::Probes;

impl Verifier<'_> {
    /// Check 6: M jobs enqueued through the balancer all complete exactly once, within the
    /// deadline, run by at least two nodes.
    pub(in crate::verify) async fn jobs(&self, user: &anyhow::Result<TestUser>) -> Check {
        let Ok(user) = user else {
            return Check::failed("jobs", "no token: the sign-up failed (see auth)");
        };
        let m = self.options.jobs as usize;
        let deadline = self.options.jobs_deadline;
        let t = Instant::now();
        let url = self.url("/api/jobs");
        let samples = fire(m, self.options.concurrency as usize, |i| {
            self.clients
                .pooled
                .post(&url)
                .bearer_auth(&user.token)
                .json(&json!({"kind": "noop", "args": {"verify": self.tag, "i": i}}))
        })
        .await;
        let refused: Vec<String> = samples
            .iter()
            .filter(|s| s.status != Some(202))
            .map(|s| s.error_text())
            .collect();
        let enqueued = m - refused.len();
        let enqueue_s = t.elapsed().as_secs_f64();

        let sql = format!(
            "SELECT state, attempts, coalesce(node, ''), count(*) FROM jobs \
             WHERE args->>'verify' = '{}' GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
            self.tag
        );
        let mut rows: Vec<JobRow>;
        loop {
            rows = match self.probes.sql(&sql).await {
                Ok(r) => r.iter().filter_map(|r| JobRow::parse(r)).collect(),
                Err(e) => return Check::failed("jobs", format!("{e:#}")),
            };
            let done = rows
                .iter()
                .filter(|r| r.finished())
                .map(|r| r.count)
                .sum::<usize>();
            if done >= enqueued || t.elapsed() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        verdict::jobs_check(&JobsFigures {
            jobs: m,
            refused,
            rows,
            nodes: self.loaded.spec.app().nodes(),
            enqueue_seconds: enqueue_s,
            seconds: t.elapsed().as_secs_f64(),
            deadline_seconds: deadline.as_secs(),
        })
    }
}
