//! [`Probes`] on a swarm. A manager cannot exec into a task on another host, so each
//! look inside the cluster is a one-off job service on the cluster's network (psql in
//! the PostgreSQL image, scripts in the balancer's image), its output read from the
//! service's log; logs are the services' own, through the manager.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{SwarmError, SwarmTarget};
use crate::target::Probes;

pub struct SwarmProbes {
    target: SwarmTarget,
    app_port: u16,
    /// Probes may run at once (one per node): each job gets a name of its own.
    jobs: AtomicU32,
}

impl SwarmProbes {
    pub fn new(target: SwarmTarget, app_port: u16) -> SwarmProbes {
        SwarmProbes {
            target,
            app_port,
            jobs: AtomicU32::new(0),
        }
    }

    fn job_name(&self) -> String {
        format!(
            "{}-probe-{}",
            self.target.model.names.cluster(),
            self.jobs.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The script that finds every task behind `tasks.<app>` and asks each its name.
fn addresses_script(app_service: &str, port: u16) -> String {
    format!(
        "for ip in $(getent ahostsv4 tasks.{app_service} | awk '{{print $1}}' | sort -u); do \
         printf '%s ' \"$ip\"; curl -s -m 3 http://$ip:{port}/api/health; echo; done"
    )
}

/// `ip {health json}` lines → `ip:port` → node name.
fn parse_addresses(out: &str, port: u16) -> HashMap<String, String> {
    out.lines()
        .filter_map(|line| {
            let (ip, body) = line.trim().split_once(' ')?;
            let node = serde_json::from_str::<Value>(body).ok()?["node"]
                .as_str()?
                .to_string();
            Some((format!("{ip}:{port}"), node))
        })
        .collect()
}

impl Probes for SwarmProbes {
    type Error = SwarmError;

    async fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, SwarmError> {
        self.target.sql(sql).await
    }

    async fn pooler_console(&self, sql: &str) -> Result<Vec<Vec<String>>, SwarmError> {
        self.target.pooler_console(&self.job_name(), sql).await
    }

    async fn in_cluster(&self, script: &str, env: &[String]) -> Result<(i64, String), SwarmError> {
        self.target.in_cluster(&self.job_name(), script, env).await
    }

    async fn logs(&self, unit: &str, lines: usize) -> Result<String, SwarmError> {
        Ok(self.target.logs(unit, lines).await)
    }

    async fn node_addresses(&self) -> Result<HashMap<String, String>, SwarmError> {
        let script = addresses_script(&self.target.model.names.app_service(), self.app_port);
        let (_, out) = self.in_cluster(&script, &[]).await?;
        Ok(parse_addresses(&out, self.app_port))
    }

    async fn node_endpoints(&self) -> Result<HashMap<String, String>, SwarmError> {
        // Tasks have no DNS name of their own: reach each by its address.
        Ok(self
            .node_addresses()
            .await?
            .into_iter()
            .map(|(address, node)| (node, address))
            .collect())
    }

    async fn stop(&self, _unit: &str, _grace: Duration) -> Result<(), SwarmError> {
        Err(SwarmError::Unsupported {
            step: "stop one node (a manager cannot stop one task on another host)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_each_tasks_own_answer() {
        let out = "10.0.1.5 {\"status\":\"ok\",\"node\":\"demo-app-2\"}\n\
                   10.0.1.7 {\"status\":\"ok\",\"node\":\"demo-app-1\"}\n\
                   10.0.1.9 \n";
        let map = parse_addresses(out, 4000);
        assert_eq!(map.len(), 2, "{map:?}");
        assert_eq!(map["10.0.1.5:4000"], "demo-app-2");
        assert_eq!(map["10.0.1.7:4000"], "demo-app-1");
        assert!(addresses_script("demo-app", 4000).contains("getent ahostsv4 tasks.demo-app"));
    }
}
