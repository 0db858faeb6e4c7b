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
    /// The port psql connects to on 127.0.0.1 inside the container.
    port: u16,
}

impl Psql {
    pub fn new(engine: &Engine, spec: &ClusterSpec, password: &str) -> Psql {
        Psql {
            engine: engine.clone(),
            container: Names::of(spec).postgres(),
            user: spec.database().user().to_string(),
            database: spec.database().name().to_string(),
            password: password.trim().to_string(),
            port: 5432,
        }
    }

    /// PgBouncer's admin console (its `pgbouncer` database) through `psql` inside the
    /// pooler's container, as the database user (a `stats_users` member).
    pub fn pooler_console(engine: &Engine, spec: &ClusterSpec, password: &str) -> Psql {
        Psql {
            container: crate::model::pooler_name(spec).unwrap_or_default(),
            database: "pgbouncer".into(),
            port: crate::names::POOLER_PORT,
            ..Psql::new(engine, spec, password)
        }
    }

    /// Rows of tab-separated fields, the column names first (the admin console's
    /// `SHOW` answers are read by name).
    pub async fn table(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        self.run(sql, &["-XAq", "-P", "footer=off"]).await
    }

    /// Rows of tab-separated fields.
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        self.run(sql, &["-XAtq"]).await
    }

    async fn run(&self, sql: &str, format: &[&str]) -> Result<Vec<Vec<String>>> {
        let port = self.port.to_string();
        let mut cmd = vec![
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            &self.user,
            "-d",
            &self.database,
        ];
        cmd.extend_from_slice(format);
        cmd.extend(["-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql]);
        let (code, out) = self
            .engine
            .exec(
                &self.container,
                &cmd,
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
