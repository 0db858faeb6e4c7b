//! [`Probes`] on one Docker engine: SQL through `psql` in the PostgreSQL
//! container (and in the pooler's, for its admin console), scripts in the balancer container (on the cluster's network),
//! container logs, node addresses from the engine's view of the network.

use std::collections::HashMap;
use std::time::Duration;

use super::engine::{Engine, EngineError, Psql};
use crate::config::ClusterSpec;
use crate::names::{Names, Role};
use crate::target::Probes;

pub struct DockerProbes {
    engine: Engine,
    names: Names,
    app_port: u16,
    psql: Psql,
    console: Psql,
}

impl DockerProbes {
    pub fn new(engine: Engine, spec: &ClusterSpec, db_password: &str) -> DockerProbes {
        DockerProbes {
            psql: Psql::new(&engine, spec, db_password),
            console: Psql::pooler_console(&engine, spec, db_password),
            names: Names::of(spec),
            app_port: spec.app().port(),
            engine,
        }
    }
}

impl Probes for DockerProbes {
    type Error = EngineError;

    async fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, EngineError> {
        self.psql.query(sql).await
    }

    async fn pooler_console(&self, sql: &str) -> Result<Vec<Vec<String>>, EngineError> {
        self.console.table(sql).await
    }

    async fn in_cluster(&self, script: &str, env: &[String]) -> Result<(i64, String), EngineError> {
        self.engine
            .exec(&self.names.balancer(), &["sh", "-c", script], None, env)
            .await
    }

    async fn logs(&self, unit: &str, lines: usize) -> Result<String, EngineError> {
        Ok(self.engine.logs(unit, lines).await)
    }

    async fn node_addresses(&self) -> Result<HashMap<String, String>, EngineError> {
        let observed = super::observe::observe(&self.engine, &self.names).await?;
        let mut map = HashMap::new();
        for c in observed.units.iter().filter(|c| c.role == Role::App) {
            let Some(inspect) = self.engine.inspect(&c.name).await? else {
                continue;
            };
            let ip = inspect
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get(&self.names.network()).cloned())
                .and_then(|e| e.ip_address);
            if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
                map.insert(format!("{ip}:{}", self.app_port), c.name.clone());
            }
        }
        Ok(map)
    }

    async fn node_endpoints(&self) -> Result<HashMap<String, String>, EngineError> {
        // Each node's container name resolves on the cluster's network.
        let observed = super::observe::observe(&self.engine, &self.names).await?;
        Ok(observed
            .units
            .iter()
            .filter(|c| c.role == Role::App)
            .map(|c| (c.name.clone(), format!("{}:{}", c.name, self.app_port)))
            .collect())
    }

    async fn stop(&self, unit: &str, grace: Duration) -> Result<(), EngineError> {
        self.engine.stop(unit, grace).await
    }
}
