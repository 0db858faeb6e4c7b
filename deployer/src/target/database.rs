//! The cluster's database from outside, for `deployer backup` and `restore`: a
//! one-off PostgreSQL client container (`<cluster>-dbtool-<random>`) on the cluster's
//! network, on the engine the deployer talks to — the single engine, or the
//! swarm's manager (the cluster's overlay network is attachable, so a plain
//! container there reaches the PostgreSQL task on whichever host it runs).
//!
//! The database stays unpublished; the dump and the restore stream through the
//! Engine API (the container's attached stdout and stdin), never whole in
//! memory, and never through a log (the container's log driver is `none`). The
//! password is the cluster's secret file, placed in the container before it
//! starts (owned by PostgreSQL's uid, mode 0400) and read by the shell into
//! `PGPASSWORD` of the client process alone: never on a command line, in the
//! container's configuration, in an image or in a log.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, NetworkingConfig,
};
use bollard::query_parameters as q;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::model::{Model, Unit};
use crate::secrets::{SecretFile, Secrets};
use crate::target::docker::engine::{Engine, EngineError};
use crate::target::docker::realise;

/// The label the tool container carries (its value: the cluster). Not the
/// cluster's own label: the tool is no unit of the cluster, and `plan` never
/// sees it.
pub const LABEL_TOOL: &str = "io.deployer.dbtool";

/// At most this much of the client's stderr is kept for an error message.
const STDERR_KEPT: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the cluster's model has no PostgreSQL unit")]
    NoPostgres,
    #[error("{op} failed")]
    Api {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("packing the password file for {container}")]
    Archive {
        container: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} in {container} exited with {code}: {stderr}")]
    Failed {
        what: &'static str,
        container: String,
        code: i64,
        stderr: String,
    },
    #[error("writing the dump")]
    Write(#[source] std::io::Error),
    #[error("reading the backup file")]
    Read(#[source] std::io::Error),
}

pub type Result<T> = std::result::Result<T, DatabaseError>;

fn api(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DatabaseError {
    let op = op.into();
    move |source| DatabaseError::Api { op, source }
}

/// PostgreSQL's client tools (`pg_dump`, `pg_restore`, `psql`, from the
/// cluster's own PostgreSQL image) pointed at the cluster's database.
pub struct Database {
    engine: Engine,
    cluster: String,
    /// The tool containers' name before their random suffix.
    container: String,
    postgres: Unit,
    network: String,
    host: String,
    user: String,
    database: String,
    password_file: Vec<u8>,
}

impl Database {
    pub fn new(
        engine: &Engine,
        model: &Model,
        user: &str,
        database: &str,
        secrets: &Secrets,
    ) -> Result<Database> {
        let host = model.names.postgres();
        let postgres = model.get(&host).ok_or(DatabaseError::NoPostgres)?.clone();
        let container = format!("{}-dbtool", model.names.cluster());
        let mut only_password = postgres.clone();
        only_password.secrets = vec![SecretFile::DatabasePassword];
        let password_file = realise::secret_files(&only_password, secrets)
            .map_err(|source| DatabaseError::Archive {
                container: container.clone(),
                source,
            })?
            .unwrap_or_default();
        Ok(Database {
            engine: engine.clone(),
            cluster: model.names.cluster().to_string(),
            container,
            network: model.network.clone(),
            host,
            user: user.to_string(),
            database: database.to_string(),
            password_file,
            postgres,
        })
    }

    /// `pg_dump` in custom format (one consistent snapshot; the nodes keep
    /// serving), streamed into `out`; the bytes written.
    pub async fn dump(&self, out: &mut (impl AsyncWrite + Unpin + Send)) -> Result<u64> {
        let (code, written, stderr) = self
            .run(
                "exec pg_dump --format=custom --no-password",
                &[],
                None::<tokio::io::Empty>,
                out,
            )
            .await?;
        self.check("pg_dump", code, stderr)?;
        Ok(written)
    }

    /// Feeds `archive` (a pg_dump custom archive) to `pg_restore`, whose SQL
    /// `psql` runs in one transaction between `before` and `after`; the
    /// transaction commits only when pg_restore read the whole archive and
    /// every statement succeeded, so a failure leaves the database as it was.
    pub async fn restore(
        &self,
        archive: impl AsyncRead + Unpin + Send,
        before: &str,
        after: &str,
    ) -> Result<String> {
        // psql ends at the end of its input; without COMMIT the transaction is
        // rolled back, which is what a pg_restore that failed midway leaves.
        let script = "set -o pipefail; \
            { printf 'BEGIN;\\n%s\\n' \"$BEFORE\"; \
              pg_restore --no-owner --no-privileges --file=- && \
              printf '\\n%s\\nCOMMIT;\\n' \"$AFTER\"; } \
            | psql -X -q -v ON_ERROR_STOP=1 --no-password";
        let mut out = Vec::new();
        let (code, _, stderr) = self
            .run(
                script,
                &[("BEFORE", before), ("AFTER", after)],
                Some(archive),
                &mut out,
            )
            .await?;
        self.check("pg_restore | psql", code, stderr)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Rows of tab-separated fields from one SQL statement.
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut out = Vec::new();
        let (code, _, stderr) = self
            .run(
                "exec psql -X -q -A -t -F \"$(printf '\\t')\" -v ON_ERROR_STOP=1 --no-password -c \"$SQL\"",
                &[("SQL", sql)],
                None::<tokio::io::Empty>,
                &mut out,
            )
            .await?;
        self.check("psql", code, stderr)?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    fn check(&self, what: &'static str, code: i64, stderr: String) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(DatabaseError::Failed {
            what,
            container: self.container.clone(),
            code,
            stderr: stderr.trim().to_string(),
        })
    }

    /// Runs `script` (bash) in a fresh tool container: `stdin` streamed into
    /// it, its stdout into `stdout`. Its exit code, the bytes of stdout, and the
    /// end of its stderr. The container is removed afterwards, whatever happened.
    async fn run(
        &self,
        script: &str,
        env: &[(&str, &str)],
        stdin: Option<impl AsyncRead + Unpin + Send>,
        stdout: &mut (impl AsyncWrite + Unpin + Send),
    ) -> Result<(i64, u64, String)> {
        self.remove_leftovers().await?;
        // Its own name: a second backup at the same time runs beside it.
        let name = format!("{}-{:08x}", self.container, rand::random::<u32>());
        let result = self
            .run_in_container(&name, script, env, stdin, stdout)
            .await;
        let removed = self.engine.remove(&name).await;
        let result = result?;
        removed?;
        Ok(result)
    }

    /// Tool containers of this cluster that no longer run (a deployer killed
    /// midway leaves its container behind, exited once its client ended).
    async fn remove_leftovers(&self) -> Result<()> {
        let label = format!("{LABEL_TOOL}={}", self.cluster);
        for c in self.engine.containers_with(&[label]).await? {
            if c.state.as_ref().map(|s| s.to_string()).as_deref() != Some("running") {
                if let Some(id) = c.id {
                    self.engine.remove(&id).await?;
                }
            }
        }
        Ok(())
    }

    async fn run_in_container(
        &self,
        name: &str,
        script: &str,
        env: &[(&str, &str)],
        stdin: Option<impl AsyncRead + Unpin + Send>,
        stdout: &mut (impl AsyncWrite + Unpin + Send),
    ) -> Result<(i64, u64, String)> {
        let d = &self.engine.docker;
        let password = SecretFile::DatabasePassword.path();
        let mut vars: Vec<String> = vec![
            format!("PGHOST={}", self.host),
            format!("PGUSER={}", self.user),
            format!("PGDATABASE={}", self.database),
            "PGAPPNAME=deployer".into(),
        ];
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let with_stdin = stdin.is_some();
        let body = ContainerCreateBody {
            image: Some(self.postgres.image.clone()),
            user: Some(format!("{}:{}", self.postgres.user.0, self.postgres.user.1)),
            entrypoint: Some(vec!["bash".into()]),
            cmd: Some(vec![
                "-c".into(),
                format!("PGPASSWORD=\"$(cat {password})\"; export PGPASSWORD; {script}"),
            ]),
            env: Some(vars),
            labels: Some(HashMap::from([(
                LABEL_TOOL.to_string(),
                self.cluster.clone(),
            )])),
            attach_stdin: Some(with_stdin),
            open_stdin: Some(with_stdin),
            stdin_once: Some(with_stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                // The dump goes to the client only: no copy in a log file.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        self.ensure_image().await?;
        self.engine.create(name, body).await?;
        if !self.password_file.is_empty() {
            self.engine.upload(name, self.password_file.clone()).await?;
        }
        let opts = q::AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(with_stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = d
            .attach_container(name, Some(opts))
            .await
            .map_err(api(format!("attaching to {name}")))?;
        self.engine.start(name).await?;
        let mut input = attached.input;
        let mut output = attached.output;
        let feed = async {
            if let Some(mut stdin) = stdin {
                tokio::io::copy(&mut stdin, &mut input)
                    .await
                    .map_err(DatabaseError::Read)?;
                // End of input: the engine closes the client's stdin (StdinOnce).
                input.shutdown().await.map_err(DatabaseError::Read)?;
            }
            Ok::<(), DatabaseError>(())
        };
        let drain = async {
            let mut written = 0u64;
            let mut stderr: Vec<u8> = Vec::new();
            while let Some(chunk) = output.next().await {
                match chunk.map_err(api(format!("reading the output of {name}")))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout
                            .write_all(&message)
                            .await
                            .map_err(DatabaseError::Write)?;
                        written += message.len() as u64;
                    }
                    LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message);
                        if stderr.len() > STDERR_KEPT {
                            stderr.drain(..stderr.len() - STDERR_KEPT);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            stdout.flush().await.map_err(DatabaseError::Write)?;
            Ok::<_, DatabaseError>((written, String::from_utf8_lossy(&stderr).into_owned()))
        };
        let (fed, drained) = tokio::join!(feed, drain);
        let code = self.engine.exit_code(name).await?;
        // A client that failed may stop reading its input: its own error says why.
        let (written, stderr) = drained?;
        if code == 0 {
            fed?;
        }
        Ok((code, written, stderr))
    }

    /// PostgreSQL's image on this engine: on a swarm the manager may not have run
    /// the database yet, so it pulls the reference the file names, as a host would.
    async fn ensure_image(&self) -> Result<()> {
        let image = &self.postgres.image;
        if self.engine.image_id(image).await?.is_some() {
            return Ok(());
        }
        let opts = q::CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut pull = self.engine.docker.create_image(Some(opts), None, None);
        while let Some(r) = pull.next().await {
            r.map_err(api(format!(
                "pulling {image} for the database client (it is not on this engine)"
            )))?;
        }
        Ok(())
    }
}
