//! The pooler check (a cluster with `pooler = "pgbouncer"`): both sides of the budget
//! under load. Database-backed requests run through the balancer while PostgreSQL's
//! connections (`pg_stat_activity`) and PgBouncer's (`SHOW POOLS`) are sampled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::super::traffic::fire;
use super::super::verdict::{self, PoolerFigures, PoolerSample};
use super::super::{Check, Verifier};
use super::auth::TestUser;
use crate::pooler::PoolStats;
use crate::target::Probes;

impl Verifier<'_> {
    /// Check 7: the pooler holds both sides of the budget while requests that query the
    /// database run, and each node's LISTEN session bypasses it.
    pub(in crate::verify) async fn pooler(&self, user: &anyhow::Result<TestUser>) -> Check {
        let user = match user {
            Ok(u) => u,
            Err(e) => return Check::failed("pooler", format!("sign-up failed: {e:#}")),
        };
        let n = self.options.requests as usize;
        let c = self.options.concurrency as usize;
        let url = self.url("/api/auth/me");
        let done = AtomicBool::new(false);
        let traffic = async {
            let samples = fire(n, c, |_| {
                self.clients.pooled.get(&url).bearer_auth(&user.token)
            })
            .await;
            done.store(true, Ordering::Relaxed);
            samples
        };
        let sampler = async {
            let mut seen = Vec::new();
            let mut failures = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match self.sample_connections().await {
                    Ok(s) => seen.push(s),
                    Err(e) => failures.push(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (seen, failures)
        };
        let (requests, (samples, sample_errors)) = tokio::join!(traffic, sampler);
        let errors: Vec<String> = requests
            .iter()
            .filter(|s| s.status != Some(200))
            .map(|s| s.error_text())
            .collect();
        let c_name = self.names.cluster();
        let listeners = self
            .probes
            .sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND query ILIKE 'listen%' AND application_name LIKE '{c_name}-app-%'"
            ))
            .await
            .ok()
            .and_then(|rows| rows.first()?.first()?.trim().parse().ok());
        verdict::pooler_check(&PoolerFigures {
            requests: n,
            concurrency: c,
            errors,
            samples,
            sample_errors,
            listeners,
            nodes: self.loaded.spec.app().nodes(),
            budget: self.loaded.spec.budget(),
        })
    }

    /// One look at both sides: PostgreSQL's client backends, and the cluster
    /// database's pool on PgBouncer.
    async fn sample_connections(&self) -> Result<PoolerSample, String> {
        let (postgres, console) = tokio::join!(
            self.probes.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND pid <> pg_backend_pid()"
            ),
            self.probes.pooler_console("SHOW POOLS"),
        );
        let postgres: u32 = postgres
            .map_err(|e| format!("pg_stat_activity: {e}"))?
            .first()
            .and_then(|r| r.first()?.trim().parse().ok())
            .ok_or("pg_stat_activity: no count")?;
        let pools = PoolStats::parse(&console.map_err(|e| format!("SHOW POOLS: {e}"))?)?;
        let db = self.loaded.spec.database().name().as_str();
        let pool = pools.iter().find(|p| p.database == db);
        Ok(PoolerSample {
            postgres,
            pooler_clients: pool.map_or(0, PoolStats::clients),
            pooler_servers: pool.map_or(0, PoolStats::servers),
            waiting: pool.map_or(0, |p| p.clients_waiting),
        })
    }
}
