//! The single-engine target: one Docker engine, one container per unit, the
//! balancer finding the nodes by their container names (Docker's embedded DNS) and
//! reloaded in place only when the set of names changes. Observes by label ([`observe`]), schedules plans
//! as steps ([`schedule`]), realises units as containers ([`realise`]) and
//! carries out each step through bollard (this module).

use std::time::Duration;

use futures_util::future::try_join_all;

use crate::config::ClusterSpec;
use crate::events::{Event, Events};
use crate::model::{Model, Unit, Upstream};
use crate::names;
use crate::observed::Observed;
use crate::plan::Plan;
use crate::render::{RenderError, Templates};
use crate::secrets::Secrets;
use crate::steps::Step;
use crate::target::docker::engine::{Engine, EngineError, Psql};
use crate::target::{live_budget, Target};

pub mod engine;
pub mod logs;
pub mod observe;
pub mod probes;
pub mod realise;
pub mod schedule;

pub use schedule::{schedule, Policy};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    LiveBudget(#[from] crate::target::live_budget::LiveBudgetError),
    #[error("cannot read the running database's connections (pg_stat_activity)")]
    LiveBudgetRead(#[source] EngineError),
    #[error(
        "the new nginx config was rejected by `nginx -t`; the running config was kept:\n{output}"
    )]
    BadConfig { output: String },
    #[error("rendering the nginx config")]
    Render(#[from] RenderError),
    #[error("packing files for {container}")]
    Archive {
        container: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a step names {name}, which the cluster's model does not have")]
    UnknownUnit { name: String },
    #[error("this step needs the cluster's secrets, which were not loaded")]
    NoSecrets,
    #[error("a guarded step inside a guarded step: the applier unfolds guarded steps")]
    NestedGuard,
    #[error("the step `{step}` is not one the single-engine target carries out")]
    Unsupported { step: String },
}

pub type Result<T> = std::result::Result<T, DockerError>;

/// Reloads nginx and waits (up to 10 s) until a worker of the new configuration runs: one
/// that is not among the workers from before. Exits 3 if none came.
const RELOAD_AND_WAIT: &str = r#"workers() { for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in "nginx: worker process ") echo "${p#/proc/}";; esac; done; }
before=" $(workers | tr '\n' ' ') "
nginx -s reload || exit $?
i=0
while [ "$i" -lt 100 ]; do
  for p in $(workers); do case "$before" in *" $p "*) ;; *) exit 0;; esac; done
  sleep 0.1; i=$((i + 1))
done
echo "no new nginx worker 10 s after the reload" >&2; exit 3"#;

/// One Docker engine holding one cluster.
pub struct DockerTarget {
    pub engine: Engine,
    spec: ClusterSpec,
    model: Model,
    policy: Policy,
    templates: Templates,
    secrets: Option<Secrets>,
}

impl DockerTarget {
    pub fn new(
        engine: Engine,
        spec: ClusterSpec,
        model: Model,
        templates: Templates,
        secrets: Option<Secrets>,
    ) -> DockerTarget {
        DockerTarget {
            policy: Policy::of(&spec),
            engine,
            spec,
            model,
            templates,
            secrets,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    fn health_timeout(&self) -> Duration {
        self.spec.rollout().health_timeout()
    }

    fn secrets(&self) -> Result<&Secrets> {
        self.secrets.as_ref().ok_or(DockerError::NoSecrets)
    }

    /// The unit a step's container name stands for (the migration unit too; a
    /// `<node>-new` container is its node's unit under a name nobody resolves yet).
    fn unit(&self, name: &str) -> Result<&Unit> {
        let new_node = match self.model.names.parse(name) {
            Some(names::Slot::NewNode(i)) => self.model.unit(names::Slot::Node(i)),
            _ => None,
        };
        self.model
            .get(name)
            .or(new_node)
            .or((self.model.migrate.name == name).then_some(&self.model.migrate))
            .ok_or_else(|| DockerError::UnknownUnit { name: name.into() })
    }

    /// Creates the unit's container under its name, places its files, starts it.
    async fn create(&self, name: &str) -> Result<()> {
        let unit = self.unit(name)?;
        let archive = |source| DockerError::Archive {
            container: name.into(),
            source,
        };
        self.engine
            .create(name, realise::container(&self.model, unit))
            .await?;
        if let Some(tar) = realise::secret_files(unit, self.secrets()?).map_err(archive)? {
            self.engine.upload(name, tar).await?;
        }
        if unit.role() == names::Role::Balancer {
            let tar = realise::nginx_conf(&self.model.nginx_conf).map_err(archive)?;
            self.engine.upload(name, tar).await?;
        }
        self.engine.start(name).await?;
        Ok(())
    }

    fn conf_for(&self, upstream: &[String]) -> Result<String> {
        if upstream == self.model.upstream() {
            return Ok(self.model.nginx_conf.clone());
        }
        Ok(self
            .templates
            .nginx(&self.spec, &Upstream::of(&self.spec, upstream.to_vec()))?)
    }

    /// Puts the config for `upstream` in the balancer, checks it with `nginx -t`
    /// and reloads nginx (workers finish their requests; no restart). A rejected
    /// config is rolled back. Nothing to do while no balancer runs: it is
    /// created with the final config.
    async fn reload(&self, upstream: &[String]) -> Result<()> {
        let lb = self.model.names.balancer();
        match self.engine.inspect(&lb).await? {
            Some(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            _ => return Ok(()),
        }
        let conf = self.conf_for(upstream)?;
        let archive = |source| DockerError::Archive {
            container: lb.clone(),
            source,
        };
        let previous = self.engine.read_file(&lb, "/etc/nginx/nginx.conf").await?;
        // The certificate and key the config names, placed first: a rotated certificate
        // is read by this reload (the config names its fingerprint, so it changed too).
        let unit = self.unit(&lb)?;
        let mut previous_files = Vec::new();
        for file in &unit.secrets {
            previous_files.push((*file, self.engine.read_file(&lb, file.path()).await?));
        }
        if let Some(tar) = realise::secret_files(unit, self.secrets()?).map_err(archive)? {
            self.engine.upload(&lb, tar).await?;
        }
        self.engine
            .upload(&lb, realise::nginx_conf(&conf).map_err(archive)?)
            .await?;
        let user = format!("{}:{}", names::NGINX_USER.0, names::NGINX_USER.1);
        let (code, output) = self
            .engine
            .exec(&lb, &["nginx", "-t", "-q"], Some(&user), &[])
            .await?;
        if code != 0 {
            let kept: Vec<(crate::secrets::SecretFile, Vec<u8>)> = previous_files
                .into_iter()
                .filter_map(|(f, bytes)| Some((f, bytes?)))
                .collect();
            if let Some(tar) = realise::files(unit, &kept).map_err(archive)? {
                self.engine.upload(&lb, tar).await?;
            }
            if let Some(prev) = previous {
                self.engine
                    .upload(
                        &lb,
                        realise::nginx_conf(&String::from_utf8_lossy(&prev)).map_err(archive)?,
                    )
                    .await?;
            }
            return Err(DockerError::BadConfig { output });
        }
        // `nginx -s reload` only signals the master, which reads the config (and certificates)
        // and starts new workers a moment later; the step is done once they run.
        self.engine
            .exec_ok(&lb, &["sh", "-c", RELOAD_AND_WAIT], Some(&user))
            .await?;
        Ok(())
    }

    /// Reads the live max_connections and the connections held by clients other
    /// than this cluster's nodes, and refuses a peak that would not fit.
    async fn check_budget(&self, events: &dyn Events) -> Result<()> {
        let sql = live_budget::sql(self.model.names.cluster());
        let rows = Psql::new(&self.engine, &self.spec, &self.secrets()?.db_password)
            .query(&sql)
            .await
            .map_err(DockerError::LiveBudgetRead)?;
        let fit = live_budget::judge(&rows, self.spec.budget().peak)?;
        events.event(Event::Note(&fit.to_string()));
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let name = self.model.migrate.name.clone();
        self.engine.remove(&name).await?;
        self.create(&name).await?;
        let result = self.engine.wait_exit(&name).await;
        self.engine.remove(&name).await?;
        Ok(result?)
    }

    async fn each<'a, F, Fut>(&self, names: &'a [String], f: F) -> Result<()>
    where
        F: Fn(&'a str) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        try_join_all(names.iter().map(|n| f(n))).await?;
        Ok(())
    }
}

impl Target for DockerTarget {
    type Error = DockerError;

    async fn observe(&self) -> Result<Observed> {
        Ok(observe::observe(&self.engine, &self.model.names).await?)
    }

    fn schedule(&self, plan: &Plan) -> Vec<Step> {
        schedule(plan, &self.model, self.policy)
    }

    /// Each running node gets its stop signal (SIGKILL after the grace).
    fn stop_nodes(&self, observed: &Observed) -> Vec<Step> {
        let names: Vec<String> = observed
            .units
            .iter()
            .filter(|u| u.role == names::Role::App && u.running)
            .map(|u| u.name.clone())
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        vec![Step::Stop {
            names,
            grace: self.spec.rollout().stop_grace(),
        }]
    }

    async fn execute(&self, step: &Step, events: &dyn Events) -> Result<()> {
        match step {
            Step::Guarded { steps, .. } => {
                for s in steps {
                    self.effect(s, events).await?;
                }
                Ok(())
            }
            s => self.effect(s, events).await,
        }
    }
}

impl DockerTarget {
    /// The effect of one step on the engine.
    async fn effect(&self, step: &Step, events: &dyn Events) -> Result<()> {
        let e = &self.engine;
        match step {
            Step::CreateNetwork { name } => {
                e.create_network(name, realise::cluster_labels(&self.model))
                    .await?
            }
            Step::CreateVolume { name } => {
                let mut labels = realise::cluster_labels(&self.model);
                labels.insert(
                    crate::names::LABEL_PASSWORD_CHECK.to_string(),
                    crate::secrets::password_check(
                        self.model.names.cluster(),
                        &self.secrets()?.db_password,
                    ),
                );
                e.create_volume(name, labels).await?
            }
            Step::Create { names } => self.each(names, |n| self.create(n)).await?,
            Step::Start { names } => {
                self.each(names, |n| async move { Ok(e.start(n).await?) })
                    .await?
            }
            Step::WaitHealthy { names } => {
                let timeout = self.health_timeout();
                self.each(
                    names,
                    |n| async move { Ok(e.wait_healthy(n, timeout).await?) },
                )
                .await?
            }
            Step::CheckBudget => self.check_budget(events).await?,
            Step::Migrate => self.migrate().await?,
            Step::Rename { from, to } => e.rename(from, to).await?,
            Step::Reload { upstream, .. } => self.reload(upstream).await?,
            Step::Drain { duration } => tokio::time::sleep(*duration).await,
            Step::Stop { names, grace } => {
                let grace = *grace;
                self.each(names, |n| async move { Ok(e.stop(n, grace).await?) })
                    .await?
            }
            Step::Remove { names } => {
                self.each(names, |n| async move { Ok(e.remove(n).await?) })
                    .await?
            }
            // Only what carries the cluster's label is removed, looked up again now.
            Step::RemoveNetwork { name } => {
                if let Some(n) = e.network(name, self.model.names.cluster()).await?.owned() {
                    e.remove_network(n).await?
                }
            }
            Step::RemoveVolume { name } => {
                if let Some(v) = e.volume(name, self.model.names.cluster()).await?.owned() {
                    e.remove_volume(v).await?
                }
            }
            Step::Guarded { .. } => return Err(DockerError::NestedGuard),
            Step::Deploy { .. } => {
                return Err(DockerError::Unsupported {
                    step: step.to_string(),
                })
            }
        }
        Ok(())
    }
}
