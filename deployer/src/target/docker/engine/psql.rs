//! SQL through `psql` inside the cluster's PostgreSQL container: the database is
//! never published on the host, so the deployer reaches it through the engine.

use super::{Engine, EngineError, Result};
use crate::config::ClusterSpec;
use crate::names::Names;

pub struct Psql {
    engine: Engine,
    container: String,
    user: String,
    database: String,
    password: String,
}

impl Psql {
    pub fn new(engine: &Engine, spec: &ClusterSpec, password: &str) -> Psql {
        Psql {
            engine: engine.clone(),
            container: Names::of(spec).postgres(),
            user: spec.database().user().to_string(),
            database: spec.database().name().to_string(),
            password: password.trim().to_string(),
        }
    }

    /// Rows of tab-separated fields.
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let (code, out) = self
            .engine
            .exec(
                &self.container,
                &[
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    &self.user,
                    "-d",
                    &self.database,
                    "-XAtq",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-F",
                    "\t",
                    "-c",
                    sql,
                ],
                None,
                &[format!("PGPASSWORD={}", self.password)],
            )
            .await?;
        if code != 0 {
            return Err(EngineError::Exec {
                container: self.container.clone(),
                cmd: "psql".into(),
                code,
                output: out.trim().to_string(),
            });
        }
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}
