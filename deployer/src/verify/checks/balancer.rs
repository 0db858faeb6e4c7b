//! The routing checks: the balancer answers, every node answers inside the cluster
//! network, and requests through the balancer spread as the strategy says.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::super::traffic::{error_chain, fire};
use super::super::verdict::{self, parse_probes, round};
use super::super::{Check, Verifier};

impl Verifier<'_> {
    /// Check 1: the balancer answers `GET /api/health`.
    pub(in crate::verify) async fn balancer(&self) -> Check {
        let t = Instant::now();
        let answer = async {
            let r = self
                .clients
                .fresh
                .get(self.url("/api/health"))
                .send()
                .await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let ms = round(t.elapsed().as_secs_f64() * 1000.0, 1);
        verdict::balancer_check(&self.base_url, answer.map_err(|e| error_chain(&e)), ms)
    }

    /// Check 2: every node answers its own health and readiness checks, reached from the
    /// balancer container over the cluster network (as nginx reaches them).
    pub(in crate::verify) async fn nodes(&self) -> Check {
        let endpoints = self.node_endpoints().await;
        let probes = self.node_names().into_iter().map(|node| {
            let endpoint = endpoints[&node].clone();
            async move {
            let script = format!(
                "for p in /api/health /api/ready; do \
                 curl -s -m 3 -w '\\n%{{http_code}} %{{time_total}}\\n' http://{endpoint}$p; done; true"
            );
            let probe = self
                .in_balancer(&script, &[])
                .await
                .map(|out| parse_probes(&out))
                .map_err(|e| format!("{e:#}"));
            (node, probe)
        }});
        let results = futures_util::future::join_all(probes).await;
        verdict::nodes_check(&self.names.network(), &results)
    }

    /// Check 3: N requests through the balancer, one new connection each: counts per node
    /// and a fairness figure judged by the strategy.
    pub(in crate::verify) async fn distribution(&self) -> Check {
        let n = self.options.requests as usize;
        let url = self.url("/api/health");
        let samples = fire(n, self.options.concurrency as usize, |_| {
            self.clients.fresh.get(&url)
        })
        .await;
        let mut counts: BTreeMap<String, usize> =
            self.node_names().into_iter().map(|n| (n, 0)).collect();
        let mut errors = Vec::new();
        for s in &samples {
            match s.node() {
                Ok(node) => *counts.entry(node).or_default() += 1,
                Err(e) => errors.push(e),
            }
        }
        verdict::distribution_check(self.strategy(), n, &counts, &errors)
    }
}
