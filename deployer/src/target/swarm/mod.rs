//! The Docker Swarm target: one service per role on a swarm, driven through a
//! manager's Engine API (never the docker CLI). The app nodes are the tasks of
//! one service, rolled by Swarm itself (start-first, `max_surge` at a time,
//! health-gated, rolled back on failure); PostgreSQL is pinned to its host with
//! its volume, the balancer publishes its port in host mode on its host and
//! follows the tasks by DNS (`tasks.<app service>`). Secrets and the nginx
//! config are immutable Swarm objects with versioned names.
//!
//! Observes by label ([`observe`]), schedules plans as steps ([`schedule`]),
//! realises units as service specs ([`realise`]), carries out each step here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{ConfigSpec, NetworkCreateRequest, SecretSpec, TaskState};
use bollard::query_parameters as q;
use futures_util::StreamExt;
use node_contract::Secret;

use crate::config::{ClusterSpec, SwarmSpec};
use crate::events::{Event, Events};
use crate::model::{Model, Unit};
use crate::names::{LABEL_CLUSTER, LABEL_SPEC_HASH};
use crate::observed::Observed;
use crate::plan::Plan;
use crate::secrets::{SecretFile, Secrets};
use crate::steps::Step;
use crate::target::docker::engine::{is_not_found, Engine, EngineError};
use crate::target::{live_budget, Target};

pub mod logs;
pub mod observe;
pub mod probes;
pub mod realise;
pub mod schedule;

use realise::{Context, Object};

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{op} failed")]
    Api {
        op: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the engine at {address} is not a swarm manager ({state}); run `docker swarm init` there, or point [swarm] manager at a manager")]
    NotAManager { address: String, state: String },
    #[error("the update of {service} failed and Swarm rolled it back ({message}); the previous tasks keep serving")]
    RolledBack { service: String, message: String },
    #[error("{service} did not converge within {seconds}s: {running} of {replicas} task(s) running the new spec{}\n--- last log lines of {service} ---\n{logs}",
        if problems.is_empty() { String::new() } else { format!("; {}", problems.join("; ")) })]
    NotConverged {
        service: String,
        seconds: u64,
        running: usize,
        replicas: u32,
        problems: Vec<String>,
        logs: String,
    },
    #[error("{job} failed ({state}{}){}\n--- log of {job} ---\n{logs}",
        code.map(|c| format!(", exit code {c}")).unwrap_or_default(),
        if message.is_empty() { String::new() } else { format!(": {message}") })]
    JobFailed {
        job: String,
        state: String,
        code: Option<i64>,
        message: String,
        logs: String,
    },
    #[error(transparent)]
    LiveBudget(#[from] live_budget::LiveBudgetError),
    #[error("the volume {volume} lives on {host}, and this deployer talks to the manager {manager} only; remove it on that host: `docker volume rm {volume}`")]
    RemoteVolume {
        volume: String,
        host: String,
        manager: String,
    },
    #[error("network {name} still has tasks attached after {seconds}s")]
    NetworkBusy { name: String, seconds: u64 },
    #[error("a step names {name}, which the cluster's model does not have")]
    UnknownUnit { name: String },
    #[error("this step needs the cluster's secrets, which were not loaded")]
    NoSecrets,
    #[error("the step `{step}` is not one the swarm target carries out")]
    Unsupported { step: String },
}

pub type Result<T> = std::result::Result<T, SwarmError>;

fn api(op: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
    let op = op.into();
    move |source| SwarmError::Api { op, source }
}

/// The swarm, through one of its managers, holding one cluster.
pub struct SwarmTarget {
    pub engine: Engine,
    spec: ClusterSpec,
    swarm: SwarmSpec,
    model: Model,
    secrets: Option<Secrets>,
}

/// Connects to the manager `[swarm] manager` names (or `DOCKER_HOST`), and
/// checks it is one.
pub async fn connect(swarm: &SwarmSpec) -> Result<Engine> {
    let address = swarm.manager().map(|m| m.as_str());
    let engine = Engine::connect_to(address).await?;
    let info = engine
        .docker
        .info()
        .await
        .map_err(api("reading the engine's info"))?;
    let s = info.swarm.unwrap_or_default();
    if s.control_available != Some(true) {
        return Err(SwarmError::NotAManager {
            address: address
                .map(str::to_string)
                .or_else(|| std::env::var("DOCKER_HOST").ok())
                .unwrap_or_else(|| "the local socket".into()),
            state: s
                .local_node_state
                .map(|s| format!("swarm state: {s}"))
                .unwrap_or_else(|| "no swarm".into()),
        });
    }
    Ok(engine)
}

impl SwarmTarget {
    pub fn new(
        engine: Engine,
        spec: ClusterSpec,
        model: Model,
        secrets: Option<Secrets>,
    ) -> Option<SwarmTarget> {
        Some(SwarmTarget {
            swarm: spec.target().swarm()?.clone(),
            engine,
            spec,
            model,
            secrets,
        })
    }

    fn secrets(&self) -> Result<&Secrets> {
        self.secrets.as_ref().ok_or(SwarmError::NoSecrets)
    }

    /// The unit a service stands for: the first node for the app service.
    fn unit(&self, service: &str) -> Result<&Unit> {
        if service == self.model.names.app_service() {
            return self
                .model
                .nodes()
                .next()
                .ok_or_else(|| SwarmError::UnknownUnit {
                    name: service.into(),
                });
        }
        self.model
            .get(service)
            .or((self.model.migrate.name == service).then_some(&self.model.migrate))
            .ok_or_else(|| SwarmError::UnknownUnit {
                name: service.into(),
            })
    }

    fn health_timeout(&self) -> Duration {
        self.spec.rollout().health_timeout()
    }

    /// Creates the secret and config objects the services name, if missing,
    /// and fills in their IDs.
    async fn ensure_objects(&self) -> Result<(Vec<(SecretFile, Object)>, Object)> {
        let mut secrets = realise::secret_objects(&self.model, self.secrets()?);
        let mut nginx = realise::nginx_config(&self.model);
        let d = &self.engine.docker;
        let filters = self.cluster_filter();
        let have: HashMap<String, String> = d
            .list_secrets(Some(
                q::ListSecretsOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("listing secrets"))?
            .into_iter()
            .filter_map(|s| Some((s.spec?.name?, s.id?)))
            .collect();
        for (_, o) in &mut secrets {
            o.id = match have.get(&o.name) {
                Some(id) => id.clone(),
                None => {
                    d.create_secret(SecretSpec {
                        name: Some(o.name.clone()),
                        labels: Some(o.labels.clone()),
                        data: Some(o.data.clone()),
                        ..Default::default()
                    })
                    .await
                    .map_err(api(format!("creating secret {}", o.name)))?
                    .id
                }
            };
        }
        let have: HashMap<String, String> = d
            .list_configs(Some(
                q::ListConfigsOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("listing configs"))?
            .into_iter()
            .filter_map(|c| Some((c.spec?.name?, c.id?)))
            .collect();
        if !self.model.nginx_conf.is_empty() {
            nginx.id = match have.get(&nginx.name) {
                Some(id) => id.clone(),
                None => {
                    d.create_config(ConfigSpec {
                        name: Some(nginx.name.clone()),
                        labels: Some(nginx.labels.clone()),
                        data: Some(nginx.data.clone()),
                        ..Default::default()
                    })
                    .await
                    .map_err(api(format!("creating config {}", nginx.name)))?
                    .id
                }
            };
        }
        Ok((secrets, nginx))
    }

    fn cluster_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_CLUSTER}={}", self.model.names.cluster())],
        )])
    }

    /// Creates or updates `service` to the model, then waits for the outcome.
    async fn deploy(&self, service: &str, replicas: u32) -> Result<()> {
        let (secrets, nginx) = self.ensure_objects().await?;
        let unit = self.unit(service)?;
        let cx = Context {
            swarm: &self.swarm,
            max_surge: self.spec.rollout().max_surge(),
            health_timeout: self.health_timeout(),
            secrets: &secrets,
            nginx: Some(&nginx),
        };
        let spec = realise::service(&self.model, unit, replicas, &cx);
        // What the tasks must carry besides the spec hash: a rotated certificate or a new
        // nginx.conf changes only the versioned secret and config names.
        let objects = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .map(objects_of)
            .unwrap_or_default();
        let d = &self.engine.docker;
        match d
            .inspect_service(service, None::<q::InspectServiceOptions>)
            .await
        {
            Ok(current) => {
                let version = current.version.and_then(|v| v.index).unwrap_or_default();
                let opts = q::UpdateServiceOptionsBuilder::default()
                    .version(version as i32)
                    .build();
                d.update_service(service, spec, opts, None)
                    .await
                    .map_err(api(format!("updating service {service}")))?;
            }
            Err(e) if is_not_found(&e) => {
                d.create_service(spec, None)
                    .await
                    .map_err(api(format!("creating service {service}")))?;
            }
            Err(e) => return Err(api(format!("inspecting service {service}"))(e)),
        }
        let batches = replicas.div_ceil(self.spec.rollout().max_surge().max(1));
        let per_batch = self.health_timeout() + unit.stop_grace + Duration::from_secs(10);
        let want = Want {
            hash: unit.hash(),
            objects,
        };
        self.wait_converged(service, &want, replicas, per_batch * batches.max(1))
            .await?;
        let current: Vec<&str> = secrets
            .iter()
            .map(|(_, o)| o.name.as_str())
            .chain([nginx.name.as_str()])
            .collect();
        self.prune(&current).await
    }

    /// Removes the cluster's secrets and configs other than `current`: those of earlier
    /// versions (a rotated TLS key, an earlier nginx.conf) once no service uses them (Swarm
    /// refuses to remove one still in use, which is left for a later apply), or all of them.
    async fn prune(&self, current: &[&str]) -> Result<()> {
        let d = &self.engine.docker;
        let filters = self.cluster_filter();
        let secrets = d
            .list_secrets(Some(
                q::ListSecretsOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("listing secrets"))?;
        for s in secrets {
            let name = s.spec.and_then(|s| s.name).unwrap_or_default();
            if let (false, Some(id)) = (current.contains(&name.as_str()), s.id) {
                let _ = d.delete_secret(&id).await;
            }
        }
        let configs = d
            .list_configs(Some(
                q::ListConfigsOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api("listing configs"))?;
        for c in configs {
            let name = c.spec.and_then(|s| s.name).unwrap_or_default();
            if let (false, Some(id)) = (current.contains(&name.as_str()), c.id) {
                let _ = d.delete_config(&id).await;
            }
        }
        Ok(())
    }

    /// Waits until `replicas` tasks run what `want` says, healthy, and no other
    /// task is meant to run. A rollback is a failure: the service's spec went
    /// back to the previous one.
    async fn wait_converged(
        &self,
        service: &str,
        want: &Want,
        replicas: u32,
        timeout: Duration,
    ) -> Result<()> {
        let d = &self.engine.docker;
        let start = Instant::now();
        loop {
            let svc = d
                .inspect_service(service, None::<q::InspectServiceOptions>)
                .await
                .map_err(api(format!("inspecting service {service}")))?;
            let spec_hash = svc
                .spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(LABEL_SPEC_HASH))
                .cloned()
                .unwrap_or_default();
            let service_objects = svc
                .spec
                .as_ref()
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref())
                .map(objects_of)
                .unwrap_or_default();
            let update = svc.update_status.clone().unwrap_or_default();
            if spec_hash != want.hash || service_objects != want.objects {
                return Err(SwarmError::RolledBack {
                    service: service.into(),
                    message: update.message.unwrap_or_else(|| "no message".into()),
                });
            }
            let tasks = self.tasks(service).await?;
            let wanted: Vec<_> = tasks
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .collect();
            let running = wanted
                .iter()
                .filter(|t| {
                    t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
                        && task_hash(t) == want.hash
                        && task_objects(t) == want.objects
                })
                .count();
            let updating = matches!(
                update.state,
                Some(bollard::models::ServiceUpdateStatusStateEnum::UPDATING)
            );
            // Scaled to zero: also until the tasks on their way out have stopped.
            let stopped = replicas > 0
                || !tasks
                    .iter()
                    .any(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING));
            if !updating
                && running == replicas as usize
                && wanted.len() == replicas as usize
                && stopped
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let problems = tasks
                    .iter()
                    .filter_map(|t| {
                        let s = t.status.as_ref()?;
                        let err = s.err.clone().filter(|e| !e.is_empty())?;
                        Some(format!(
                            "task {}: {} ({err})",
                            t.slot.unwrap_or_default(),
                            s.state.map(|s| s.to_string()).unwrap_or_default()
                        ))
                    })
                    .take(5)
                    .collect();
                return Err(SwarmError::NotConverged {
                    service: service.into(),
                    seconds: timeout.as_secs(),
                    running,
                    replicas,
                    problems,
                    logs: self.logs(service, 20).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn tasks(&self, service: &str) -> Result<Vec<bollard::models::Task>> {
        let mut filters = HashMap::new();
        filters.insert("service".to_string(), vec![service.to_string()]);
        self.engine
            .docker
            .list_tasks(Some(
                q::ListTasksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api(format!("listing the tasks of {service}")))
    }

    /// The last `n` lines a service's tasks wrote (through the manager).
    pub async fn logs(&self, service: &str, n: usize) -> String {
        service_logs(&self.engine, service, n).await
    }

    /// Runs a one-off job service from `unit` (under `name`) on the cluster's
    /// network, waits for it to finish, returns its output and removes it.
    async fn run_job(&self, unit: &Unit, name: &str) -> Result<String> {
        let (secrets, _) = self.ensure_objects().await?;
        let cx = Context {
            swarm: &self.swarm,
            max_surge: 1,
            health_timeout: self.health_timeout(),
            secrets: &secrets,
            nginx: None,
        };
        let mut spec = realise::service(&self.model, unit, 1, &cx);
        spec.name = Some(name.to_string());
        let d = &self.engine.docker;
        remove_service(&self.engine, name).await?;
        d.create_service(spec, None)
            .await
            .map_err(api(format!("creating job {name}")))?;
        let result = self.wait_job(name).await;
        let logs = self.logs(name, 200).await;
        remove_service(&self.engine, name).await?;
        match result? {
            None => Ok(logs),
            Some((state, code, message)) => Err(SwarmError::JobFailed {
                job: name.into(),
                state,
                code,
                message,
                logs,
            }),
        }
    }

    /// None when the job's task completed; its state, exit code and message when not.
    async fn wait_job(&self, name: &str) -> Result<Option<(String, Option<i64>, String)>> {
        let start = Instant::now();
        let timeout = self.health_timeout() * 2 + Duration::from_secs(30);
        loop {
            let tasks = self.tasks(name).await?;
            for t in &tasks {
                let Some(s) = &t.status else { continue };
                let code = s.container_status.as_ref().and_then(|c| c.exit_code);
                match s.state {
                    Some(TaskState::COMPLETE) => return Ok(None),
                    Some(st @ (TaskState::FAILED | TaskState::REJECTED | TaskState::SHUTDOWN)) => {
                        return Ok(Some((
                            st.to_string(),
                            code,
                            s.err.clone().unwrap_or_default(),
                        )))
                    }
                    _ => {}
                }
            }
            if start.elapsed() > timeout {
                return Ok(Some((
                    format!("not finished within {}s", timeout.as_secs()),
                    None,
                    String::new(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Rows of one SQL statement, run by psql in a one-off task on the
    /// cluster's network (the database is never published, and a manager
    /// cannot exec into a task on another host).
    pub async fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let name = format!("{}-sql", self.model.names.cluster());
        let db = self.spec.database();
        let (host, database) = (self.model.names.postgres(), db.name().to_string());
        self.psql_job(&name, &host, 5432, &database, "-t", sql)
            .await
    }

    /// Rows of one statement on PgBouncer's admin console (`SHOW POOLS`), column
    /// names first, from a one-off psql task on the cluster's network.
    pub async fn pooler_console(&self, name: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let pooler =
            crate::model::pooler_name(&self.spec).ok_or_else(|| SwarmError::UnknownUnit {
                name: "the pooler".into(),
            })?;
        let port = crate::names::POOLER_PORT;
        self.psql_job(name, &pooler, port, "pgbouncer", "-P footer=off", sql)
            .await
    }

    /// psql in a one-off task of the PostgreSQL image, as the database user,
    /// against `host:port`/`database`; `format` is `-t` (rows only) or psql's
    /// footer option (column names first).
    async fn psql_job(
        &self,
        name: &str,
        host: &str,
        port: u16,
        database: &str,
        format: &str,
        sql: &str,
    ) -> Result<Vec<Vec<String>>> {
        let pg = self.unit(&self.model.names.postgres())?;
        let db = self.spec.database();
        let mut unit = one_off(pg);
        unit.command = vec![
            "sh".into(),
            "-c".into(),
            format!(
                "PGPASSWORD=\"$(cat {})\" exec psql -X -q -A {format} -F \"$(printf '\\t')\" -h {host} -p {port} -U {} -d {database} -v ON_ERROR_STOP=1 -c \"$SQL\"",
                Secret::DatabasePassword.path(),
                db.user(),
            ),
        ];
        unit.env = vec![
            ("SQL".into(), sql.into()),
            ("PGAPPNAME".into(), "deployer".into()),
        ];
        let out = self.run_job(&unit, name).await?;
        Ok(out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// Runs `script` with `sh -c` in a one-off task of the balancer's image on the
    /// cluster's network (where `tasks.<app>` resolves, as nginx resolves it), under
    /// the job name `name`, with `env` (`KEY=value`); its exit code and output.
    pub async fn in_cluster(
        &self,
        name: &str,
        script: &str,
        env: &[String],
    ) -> Result<(i64, String)> {
        let lb = self.unit(&self.model.names.balancer())?;
        let mut unit = one_off(lb);
        unit.command = vec!["sh".into(), "-c".into(), script.into()];
        unit.env = env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match self.run_job(&unit, name).await {
            Ok(out) => Ok((0, out)),
            Err(SwarmError::JobFailed {
                code: Some(code),
                logs,
                ..
            }) => Ok((code, logs)),
            Err(e) => Err(e),
        }
    }

    async fn check_budget(&self, events: &dyn Events) -> Result<()> {
        let rows = self
            .sql(&live_budget::sql(self.model.names.cluster()))
            .await?;
        let fit = live_budget::judge(&rows, self.spec.budget().peak)?;
        events.event(Event::Note(&fit.to_string()));
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let unit = self.model.migrate.clone();
        self.run_job(&unit, &unit.name).await.map(|_| ())
    }

    /// Removes the network once no task is attached any more (tasks of removed
    /// services take a moment to stop), then the secrets and configs no
    /// service uses.
    async fn remove_network(&self, name: &str) -> Result<()> {
        let start = Instant::now();
        let timeout = Duration::from_secs(60);
        while let crate::target::docker::engine::Presence::Owned(n) = self
            .engine
            .network(name, self.model.names.cluster())
            .await?
        {
            match self.engine.remove_network(n).await {
                Ok(()) => break,
                Err(_) if start.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(_) => {
                    return Err(SwarmError::NetworkBusy {
                        name: name.into(),
                        seconds: timeout.as_secs(),
                    })
                }
            }
        }
        // Every secret and config of the cluster: none is current any more.
        self.prune(&[]).await
    }

    /// The database volume, when it lives on the manager this deployer talks
    /// to; otherwise it says where to remove it.
    async fn remove_volume(&self, name: &str) -> Result<()> {
        let here = self
            .engine
            .docker
            .info()
            .await
            .map_err(api("reading the engine's info"))?
            .name
            .unwrap_or_default();
        let host = self.swarm.database_host().to_string();
        if here != host {
            return Err(SwarmError::RemoteVolume {
                volume: name.into(),
                host,
                manager: here,
            });
        }
        // The PostgreSQL task's container goes a moment after its service.
        let start = Instant::now();
        loop {
            match self.engine.volume(name, self.model.names.cluster()).await? {
                crate::target::docker::engine::Presence::Owned(v) => {
                    match self.engine.remove_volume(v).await {
                        Ok(()) => return Ok(()),
                        Err(_) if start.elapsed() < Duration::from_secs(60) => {
                            tokio::time::sleep(Duration::from_millis(500)).await
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }
}

/// A one-off job made from `unit`: its image, user and secrets, no health check,
/// volume, published port or restart.
fn one_off(unit: &Unit) -> Unit {
    let mut unit = unit.clone();
    unit.slot = crate::names::Slot::Migrate;
    unit.health = None;
    unit.volume = None;
    unit.publish = Vec::new();
    unit.restart = false;
    unit
}

/// The spec hash a task was made from.
/// What a converged service's tasks run: the unit's spec hash and the versioned names of
/// the secrets and configs they mount. The orchestrator marks an update as begun only some
/// time after it was accepted, so the task specs, not the update state, say it is done.
struct Want {
    hash: String,
    objects: Vec<String>,
}

/// The secret and config names a container spec mounts, sorted.
fn objects_of(c: &bollard::models::TaskSpecContainerSpec) -> Vec<String> {
    let mut names: Vec<String> = c
        .secrets
        .iter()
        .flatten()
        .filter_map(|s| s.secret_name.clone())
        .chain(
            c.configs
                .iter()
                .flatten()
                .filter_map(|c| c.config_name.clone()),
        )
        .collect();
    names.sort();
    names
}

fn task_objects(t: &bollard::models::Task) -> Vec<String> {
    t.spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .map(objects_of)
        .unwrap_or_default()
}

fn task_hash(t: &bollard::models::Task) -> &str {
    t.spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_SPEC_HASH))
        .map_or("", String::as_str)
}

/// Removes a service if it exists.
async fn remove_service(engine: &Engine, name: &str) -> Result<()> {
    match engine.docker.delete_service(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api(format!("removing service {name}"))(e)),
    }
}

/// The last `n` lines a service's tasks wrote; empty when they cannot be read.
pub async fn service_logs(engine: &Engine, service: &str, n: usize) -> String {
    let opts = q::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&n.to_string())
        .build();
    let mut out = String::new();
    let mut stream = engine.docker.service_logs(service, Some(opts));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

impl Target for SwarmTarget {
    type Error = SwarmError;

    async fn observe(&self) -> Result<Observed> {
        observe::observe(&self.engine, &self.model.names, &self.swarm).await
    }

    fn schedule(&self, plan: &Plan) -> Vec<Step> {
        schedule::schedule(plan, &self.model)
    }

    /// The app service scaled to zero; the step waits until no task runs.
    fn stop_nodes(&self, observed: &Observed) -> Vec<Step> {
        if !observed
            .units
            .iter()
            .any(|u| u.role == crate::names::Role::App)
        {
            return Vec::new();
        }
        vec![Step::Deploy {
            service: self.model.names.app_service(),
            replicas: 0,
            why: "stop every node".into(),
        }]
    }

    async fn execute(&self, step: &Step, events: &dyn Events) -> Result<()> {
        match step {
            Step::CreateNetwork { name } => {
                self.engine
                    .docker
                    .create_network(NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("overlay".into()),
                        attachable: Some(true),
                        labels: Some(realise::cluster_labels(&self.model)),
                        ..Default::default()
                    })
                    .await
                    .map_err(api(format!("creating network {name}")))?;
            }
            Step::Deploy {
                service, replicas, ..
            } => self.deploy(service, *replicas).await?,
            Step::CheckBudget => self.check_budget(events).await?,
            Step::Migrate => self.migrate().await?,
            Step::Remove { names } => {
                for n in names {
                    remove_service(&self.engine, n).await?;
                }
            }
            Step::RemoveNetwork { name } => self.remove_network(name).await?,
            Step::RemoveVolume { name } => self.remove_volume(name).await?,
            s => {
                return Err(SwarmError::Unsupported {
                    step: s.to_string(),
                })
            }
        }
        Ok(())
    }
}

/// What the base64 data of a config object says.
pub fn decode(data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// One task of the cluster, as `deployer status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskRow {
    pub service: String,
    /// The node name it stands for (`<cluster>-app-2`), or the service's.
    pub name: String,
    pub host: String,
    pub state: String,
    pub error: Option<String>,
}

/// Every task of the cluster's services that is meant to run, with its host.
pub async fn task_rows(engine: &Engine, names: &crate::names::Names) -> Result<Vec<TaskRow>> {
    let d = &engine.docker;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_CLUSTER}={}", names.cluster())],
    )]);
    let services = d
        .list_services(Some(
            q::ListServicesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(api("listing services"))?;
    let hosts: HashMap<String, String> = d
        .list_nodes(None::<q::ListNodesOptions>)
        .await
        .map_err(api("listing the swarm's nodes"))?
        .into_iter()
        .filter_map(|n| Some((n.id?, n.description?.hostname?)))
        .collect();
    let mut rows = Vec::new();
    for s in services {
        let (Some(id), Some(service)) = (s.id, s.spec.and_then(|s| s.name)) else {
            continue;
        };
        let filters = HashMap::from([
            ("service".to_string(), vec![id]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = d
            .list_tasks(Some(
                q::ListTasksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api(format!("listing the tasks of {service}")))?;
        for t in tasks {
            let slot = t.slot.unwrap_or_default();
            let name = if service == names.app_service() {
                format!("{service}-{slot}")
            } else {
                service.clone()
            };
            let status = t.status.unwrap_or_default();
            rows.push(TaskRow {
                service: service.clone(),
                name,
                host: t
                    .node_id
                    .and_then(|n| hosts.get(&n).cloned())
                    .unwrap_or_else(|| "-".into()),
                state: status.state.map_or("-".into(), |s| s.to_string()),
                error: status.err.filter(|e| !e.is_empty()),
            });
        }
    }
    rows.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    Ok(rows)
}
