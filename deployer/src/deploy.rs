//! The library's front door: one validated cluster file on its target. It
//! returns data (models, plans, steps, observations) and typed errors; the
//! command layer prints them, asks, and maps exit codes.
//!
//! The flow, one way: `cluster.toml` → [`Loaded`] (parsed once) → [`Model`] →
//! the target's observation → [`plan`] → the target's steps → [`apply`].

use std::path::{Path, PathBuf};

use crate::apply::{self, ApplyError};
use crate::config::{ClusterSpec, Loaded};
use crate::config::{SwarmSpec, TargetSpec};
use crate::events::Events;
use crate::history::migrations::{self, Migration};
use crate::history::{self, Cause, Failure, Outcome, Revision, RevisionImages, Store};
use crate::lock::{Lock, LockError};
use crate::logs::{Line, Request};
use crate::model::{self, Images, Model};
use crate::names::Names;
use crate::observed::Observed;
use crate::plan::{self, Goal, Plan, PlanError};
use crate::render::{self, Drift, RenderError, Rendered, Templates};
use crate::secrets::{self, SecretError, Secrets, TlsFiles};
use crate::steps::Step;
use crate::target::docker::engine::{Engine, EngineError};
use crate::target::docker::logs::DockerLogs;
use crate::target::docker::DockerTarget;
use crate::target::logs::{self as engine_logs, LogsError};
use crate::target::swarm::logs::SwarmLogs;
use crate::target::swarm::{self, SwarmError, SwarmTarget};
use crate::target::{AnyTarget, Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "missing image{} on the Docker engine: {}\nhint: {}",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        missing_hint(missing, app_image)
    )]
    MissingImages {
        missing: Vec<String>,
        app_image: String,
    },
    #[error("observing the cluster")]
    Observe(#[source] TargetError),
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    #[error("the app image {image} is not in the registry {registry}, or the swarm's manager cannot reach it\nhint: build and push it with `deployer build`")]
    NotInRegistry {
        image: String,
        registry: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("preparing secrets")]
    Secrets(#[from] SecretError),
    #[error(
        "the database volume {volume} holds this cluster's data, but its password file {} is missing: \
         new secrets would not match the password the data was created with, and no node could connect. \
         Nothing was changed.\n\
         hint: restore the directory {} from a backup (it holds db_password and jwt_secret); \
         or, to start over without the data, run `deployer destroy --volumes`, then `deployer apply`",
        dir.join(secrets::DB_PASSWORD_FILE).display(),
        dir.display()
    )]
    SecretsLost { volume: String, dir: PathBuf },
    #[error(
        "the database volume {volume} was created with another database password than the one in {}: \
         the secrets were made afresh (by `deployer render`, or copied from another cluster), and no \
         node could connect to the existing data. Nothing was changed.\n\
         hint: restore the directory {} from a backup (it holds db_password and jwt_secret); \
         or, to start over without the data, run `deployer destroy --volumes`, then `deployer apply`",
        dir.join(secrets::DB_PASSWORD_FILE).display(),
        dir.display()
    )]
    SecretsReplaced { volume: String, dir: PathBuf },
    #[error("rendering templates")]
    Render(#[from] RenderError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Logs(#[from] LogsError),
    #[error(
        "stopping the nodes of cluster `{cluster}` failed; run `deployer apply` to bring them back"
    )]
    StopNodes {
        cluster: String,
        #[source]
        source: ApplyError,
    },
    #[error("{action} of cluster `{cluster}` failed{}; run `deployer {action}` again to converge from here",
        recorded.map(|n| format!(" (recorded as revision {n}: `deployer history`)")).unwrap_or_default())]
    Apply {
        action: &'static str,
        cluster: String,
        /// The failed revision the history holds for it.
        recorded: Option<u32>,
        #[source]
        source: ApplyError,
    },
    #[error("revision {revision}'s cluster.toml no longer loads (a newer deployer refuses it)")]
    RevisionInvalid {
        revision: u32,
        #[source]
        source: Box<crate::config::LoadError>,
    },
    #[error(
        "revision {revision} ran the {role} image {id} ({reference} when it was applied), and it is no longer {where_}; \
         a rollback runs exactly the revision's images, so it cannot run again. Nothing was changed.\n\
         hint: rebuild that version of the image and `deployer apply` it, or roll back to a revision whose images exist"
    )]
    PinnedImageGone {
        revision: u32,
        role: &'static str,
        id: String,
        reference: String,
        where_: String,
    },
    #[error(transparent)]
    History(#[from] history::StoreError),
}

fn missing_hint(missing: &[String], app_image: &str) -> String {
    let mut hints = Vec::new();
    if missing.iter().any(|m| m == app_image) {
        hints.push("build the app image with `deployer build`".to_string());
    }
    let others: Vec<&str> = missing
        .iter()
        .filter(|m| *m != app_image)
        .map(String::as_str)
        .collect();
    if !others.is_empty() {
        hints.push(format!(
            "pull {} with `docker pull`, or build compatible images from Debian packages with `scripts/build-images.sh {}`",
            others.join(", "),
            others.join(" ")
        ));
    }
    hints.join("; ")
}

pub type Result<T> = std::result::Result<T, DeployError>;

/// A plan ready to be shown, confirmed and carried out.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub goal: Goal,
    /// The images converging runs (`None` when destroying).
    pub images: Option<Images>,
    pub model: Model,
    pub observed: Observed,
    pub plan: Plan,
    pub steps: Vec<Step>,
}

/// What an apply left: the plan made again from what is observed after it,
/// which is empty when the cluster matches the file.
#[derive(Debug, Clone)]
pub struct Applied {
    pub left: Plan,
}

/// An apply recorded in the history.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub applied: Applied,
    pub revision: Revision,
}

/// The images of a revision a rollback runs again, instead of what the file's references
/// point to now.
#[derive(Debug, Clone)]
struct Pin {
    revision: u32,
    images: RevisionImages,
}

/// One cluster file on its target.
pub struct Deployment {
    file: PathBuf,
    loaded: Loaded,
    names: Names,
    templates: Templates,
    engine: Engine,
    pin: Option<Pin>,
}

impl Deployment {
    /// Connects to the target for the already loaded `file`.
    pub async fn open(file: &Path, loaded: Loaded) -> Result<Deployment> {
        let templates = Templates::load(Some(&base_dir(file).join("templates")))?;
        let engine = match loaded.spec.target() {
            TargetSpec::Docker => Engine::connect().await?,
            TargetSpec::Swarm(s) => swarm::connect(s).await?,
        };
        Ok(Deployment {
            file: file.to_path_buf(),
            names: Names::of(&loaded.spec),
            loaded,
            templates,
            engine,
            pin: None,
        })
    }

    /// The deployment of an earlier `revision` of `file`'s cluster: its cluster.toml as it
    /// was applied, with the images it ran pinned by ID (or digest), whatever the file's
    /// references point to now.
    pub async fn open_revision(file: &Path, revision: &Revision) -> Result<Deployment> {
        let loaded = crate::config::parse(file, revision.toml.as_bytes()).map_err(|source| {
            DeployError::RevisionInvalid {
                revision: revision.number,
                source: Box::new(source),
            }
        })?;
        let mut d = Deployment::open(file, loaded).await?;
        d.pin = Some(Pin {
            revision: revision.number,
            images: revision.images.clone(),
        });
        Ok(d)
    }

    /// The cluster's history, next to its file.
    pub fn history(&self) -> Store {
        Store::at(&base_dir(&self.file), self.names.cluster())
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.loaded.spec
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The cluster's lock: a second apply, destroy or chaos run is refused while held.
    pub fn lock(&self) -> Result<Lock> {
        Ok(Lock::take(&base_dir(&self.file), self.names.cluster())?)
    }

    /// Refuses to go on when the cluster's data volume exists but its database password is
    /// gone: secrets made afresh would not open the existing data.
    fn check_secrets(&self, observed: &Observed) -> Result<()> {
        let dir = secrets::dir_for(&self.file);
        if observed.volume.is_owned() && !secrets::has_db_password(&dir) {
            return Err(DeployError::SecretsLost {
                volume: self.names.volume(),
                dir,
            });
        }
        // The password file exists, but is it the one the data was made with? (`render`
        // makes secrets afresh when they are gone, for the compose path.)
        if let (true, Some(recorded)) = (
            observed.volume.is_owned(),
            observed.volume_password_check.as_deref(),
        ) {
            let path = dir.join(secrets::DB_PASSWORD_FILE);
            let password =
                std::fs::read_to_string(&path).map_err(|source| SecretError { path, source })?;
            if secrets::password_check(self.names.cluster(), &password) != recorded {
                return Err(DeployError::SecretsReplaced {
                    volume: self.names.volume(),
                    dir,
                });
            }
        }
        Ok(())
    }

    /// The cluster's secrets, created once.
    pub fn secrets(&self) -> Result<Secrets> {
        Ok(secrets::ensure(
            &secrets::dir_for(&self.file),
            self.spec().database().user().as_str(),
            tls_files(self.spec()),
        )?)
    }

    fn target(&self, model: Model, secrets: Option<Secrets>) -> AnyTarget {
        let spec = self.loaded.spec.clone();
        match SwarmTarget::new(
            self.engine.clone(),
            spec.clone(),
            model.clone(),
            secrets.clone(),
        ) {
            Some(t) => AnyTarget::Swarm(t),
            None => AnyTarget::Docker(DockerTarget::new(
                self.engine.clone(),
                spec,
                model,
                self.templates.clone(),
                secrets,
            )),
        }
    }

    /// What of the cluster exists now.
    pub async fn observe(&self) -> Result<Observed> {
        self.target(Model::empty(self.names.clone()), None)
            .observe()
            .await
            .map_err(DeployError::Observe)
    }

    /// Resolves every image the spec names to the engine's image ID; a missing
    /// one is an error that says how to get it.
    pub async fn images(&self) -> Result<Images> {
        if let Some(pin) = &self.pin {
            return self.pinned_images(pin).await;
        }
        if let TargetSpec::Swarm(s) = self.loaded.spec.target() {
            return self.swarm_images(s).await;
        }
        let refs = Images::refs(&self.loaded.spec);
        let mut missing = Vec::new();
        let mut id = async |r: &str| -> Result<String> {
            Ok(match self.engine.image_id(r).await? {
                Some(id) => id,
                None => {
                    missing.push(r.to_string());
                    String::new()
                }
            })
        };
        let images = Images {
            app: id(&refs.app).await?,
            postgres: id(&refs.postgres).await?,
            redis: match &refs.redis {
                Some(r) => Some(id(r).await?),
                None => None,
            },
            pooler: match &refs.pooler {
                Some(r) => Some(id(r).await?),
                None => None,
            },
            balancer: id(&refs.balancer).await?,
        };
        if !missing.is_empty() {
            return Err(DeployError::MissingImages {
                missing,
                app_image: refs.app,
            });
        }
        Ok(images)
    }

    /// On a swarm every host pulls the images itself: the app image is pinned
    /// to the digest the registry holds now (through the manager, which must
    /// reach it as the hosts do); the service images are the references the
    /// file names (official images, or copies each host already has).
    async fn swarm_images(&self, s: &SwarmSpec) -> Result<Images> {
        let refs = Images::refs(&self.loaded.spec);
        let app = swarm_ref(s.registry().as_str(), &refs.app);
        let found = self
            .engine
            .docker
            .inspect_registry_image(&app, None)
            .await
            .map_err(|source| DeployError::NotInRegistry {
                image: app.clone(),
                registry: s.registry().to_string(),
                source,
            })?;
        let digest = found.descriptor.digest.unwrap_or_default();
        Ok(Images {
            app: format!("{app}@{digest}"),
            ..refs
        })
    }

    /// A revision's images, each checked to be still there: on the engine (by image ID),
    /// or on a swarm the app image's digest in the registry.
    async fn pinned_images(&self, pin: &Pin) -> Result<Images> {
        let (ids, refs) = (&pin.images.ids, &pin.images.refs);
        let gone = |role: &'static str, id: &str, reference: &str, where_: String| {
            DeployError::PinnedImageGone {
                revision: pin.revision,
                role,
                id: id.to_string(),
                reference: reference.to_string(),
                where_,
            }
        };
        if let TargetSpec::Swarm(s) = self.loaded.spec.target() {
            // `registry/repo:tag@sha256:…` → `registry/repo@sha256:…`: the digest alone.
            let by_digest = match ids.app.split_once('@') {
                Some((name, digest)) => {
                    let repo = match name.rsplit_once(':') {
                        Some((repo, tag)) if !tag.contains('/') => repo,
                        _ => name,
                    };
                    format!("{repo}@{digest}")
                }
                None => ids.app.clone(),
            };
            if let Err(e) = self
                .engine
                .docker
                .inspect_registry_image(&by_digest, None)
                .await
            {
                return Err(gone(
                    "app",
                    &ids.app,
                    &refs.app,
                    format!("in the registry {} (the manager says: {e})", s.registry()),
                ));
            }
            return Ok(ids.clone());
        }
        let roles = [
            ("app", Some(&ids.app), Some(&refs.app)),
            ("PostgreSQL", Some(&ids.postgres), Some(&refs.postgres)),
            ("Redis", ids.redis.as_ref(), refs.redis.as_ref()),
            ("PgBouncer", ids.pooler.as_ref(), refs.pooler.as_ref()),
            ("balancer", Some(&ids.balancer), Some(&refs.balancer)),
        ];
        for (role, id, reference) in roles {
            let (Some(id), Some(reference)) = (id, reference) else {
                continue;
            };
            if self.engine.image_id(id).await?.is_none() {
                return Err(gone(role, id, reference, "on the Docker engine".into()));
            }
        }
        Ok(ids.clone())
    }

    /// The desired model on this engine (images resolved, final nginx config).
    pub async fn model(&self) -> Result<Model> {
        let images = self.images().await?;
        self.model_of(&images)
    }

    fn model_of(&self, images: &Images) -> Result<Model> {
        let nginx_conf = self
            .templates
            .nginx(&self.loaded.spec, &model::upstream(&self.loaded.spec))?;
        Ok(model::model(&self.loaded.spec, images, nginx_conf))
    }

    /// Observes, plans and schedules the way to `goal`. Changes nothing.
    pub async fn prepare(&self, goal: Goal) -> Result<Prepared> {
        let observed = self.observe().await?;
        let (images, model) = match goal {
            Goal::Converge => {
                // Someone else's network or volume is named before a missing image.
                plan::check_ownership(&self.names, &observed)?;
                self.check_secrets(&observed)?;
                let images = self.images().await?;
                let model = self.model_of(&images)?;
                (Some(images), model)
            }
            Goal::Destroy { .. } => (None, Model::empty(self.names.clone())),
        };
        let plan = plan::plan(&model, &observed, goal)?;
        let steps = self.target(model.clone(), None).schedule(&plan);
        Ok(Prepared {
            goal,
            images,
            model,
            observed,
            plan,
            steps,
        })
    }

    /// Carries out a prepared plan's steps, then plans again from what is
    /// observed. Converging also writes `generated/` so it holds exactly what
    /// was applied. The caller holds the [`Lock`].
    pub async fn apply(&self, prepared: &Prepared, events: &dyn Events) -> Result<Applied> {
        let secrets = match prepared.goal {
            Goal::Converge => {
                let secrets = self.secrets()?;
                Generated::render(&self.file, &self.templates, &self.loaded.spec, None)?.write()?;
                Some(secrets)
            }
            Goal::Destroy { .. } => None,
        };
        let target = self.target(prepared.model.clone(), secrets);
        apply::apply(&target, &prepared.steps, events)
            .await
            .map_err(|source| DeployError::Apply {
                action: match prepared.goal {
                    Goal::Converge => "apply",
                    Goal::Destroy { .. } => "destroy",
                },
                cluster: self.names.cluster().to_string(),
                recorded: None,
                source,
            })?;
        let after = target.observe().await.map_err(DeployError::Observe)?;
        if prepared.goal == Goal::Converge && !serving(&prepared.observed) && serving(&after) {
            // No node served before (from nothing, or every node stopped — a restore): the
            // balancer finds them by DNS within its resolve interval. Return once it
            // serves, so the first client after `apply` is answered.
            match self
                .wait_until_balancer_serves(std::time::Duration::from_secs(15))
                .await
            {
                Ok(true) => {}
                Ok(false) => events.event(crate::events::Event::Note(
                    "warning: the balancer did not answer /api/health within 15s of the nodes starting",
                )),
                Err(e) => events.event(crate::events::Event::Note(&format!(
                    "warning: could not ask the balancer whether it serves: {e}"
                ))),
            }
        }
        Ok(Applied {
            left: plan::plan(&prepared.model, &after, prepared.goal)?,
        })
    }
}

/// `deployer logs`: the units' lines, read on the cluster's target.
impl Deployment {
    /// The selected units' lines in time order, the last `tail` of each.
    pub async fn logs(&self, req: &Request, events: &dyn Events) -> Result<Vec<Line>> {
        let (engine, names, selection) = (
            self.engine.clone(),
            self.names.clone(),
            req.selection.clone(),
        );
        Ok(match self.loaded.spec.target() {
            TargetSpec::Docker => {
                engine_logs::fetch(&DockerLogs::new(engine, names, selection), req, events).await?
            }
            TargetSpec::Swarm(_) => {
                engine_logs::fetch(&SwarmLogs::new(engine, names, selection), req, events).await?
            }
        })
    }

    /// Sends what [`Deployment::logs`] returns, then every new line as it
    /// comes — a node replaced meanwhile under the same name —, until `out`
    /// is closed.
    pub async fn follow_logs(
        &self,
        req: &Request,
        out: tokio::sync::mpsc::Sender<Line>,
        events: &dyn Events,
    ) -> Result<()> {
        let (engine, names, selection) = (
            self.engine.clone(),
            self.names.clone(),
            req.selection.clone(),
        );
        match self.loaded.spec.target() {
            TargetSpec::Docker => {
                let s = DockerLogs::new(engine, names, selection);
                engine_logs::follow(&s, req, out, events).await?
            }
            TargetSpec::Swarm(_) => {
                let s = SwarmLogs::new(engine, names, selection);
                engine_logs::follow(&s, req, out, events).await?
            }
        }
        Ok(())
    }
}

impl Deployment {
    /// Converges as [`Deployment::apply`] does, and records the outcome in the cluster's
    /// history (`cause`: an apply of the file, or a rollback): a revision that applied, or
    /// one that failed, with what a failed health gate rolled back. A failure before any
    /// step ran (secrets, templates) changes nothing and is not recorded.
    pub async fn apply_and_record(
        &self,
        prepared: &Prepared,
        events: &dyn Events,
        cause: Cause,
    ) -> Result<Recorded> {
        let result = match self.apply(prepared, events).await {
            Err(e @ DeployError::Apply { .. }) => Err(e),
            Err(e) => return Err(e),
            Ok(applied) => Ok(applied),
        };
        let failure = result.as_ref().err().map(|e| Failure {
            error: error_lines(e),
            rolled_back: rolled_back(e),
        });
        let outcome = match failure {
            None => Outcome::Applied,
            Some(_) => Outcome::Failed,
        };
        let revision = self.revision(prepared, cause, outcome, failure).await?;
        let revision = self.history().record(revision)?;
        match result {
            Ok(applied) => Ok(Recorded { applied, revision }),
            Err(DeployError::Apply {
                cluster, source, ..
            }) => Err(DeployError::Apply {
                action: match cause {
                    Cause::Apply => "apply",
                    Cause::Rollback { .. } => "rollback",
                },
                cluster,
                recorded: Some(revision.number),
                source,
            }),
            Err(e) => Err(e),
        }
    }

    /// The revision this deployment's file and `prepared` images make, numbered when recorded.
    async fn revision(
        &self,
        prepared: &Prepared,
        cause: Cause,
        outcome: Outcome,
        failure: Option<Failure>,
    ) -> Result<Revision> {
        let spec = &self.loaded.spec;
        let refs = Images::refs(spec);
        let images = RevisionImages {
            ids: prepared.images.clone().unwrap_or_else(|| refs.clone()),
            refs,
        };
        let previous = history::deployed(&self.history().list()?).cloned();
        let mut revision = Revision {
            number: 0,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            cluster: self.names.cluster().to_string(),
            target: match spec.target() {
                TargetSpec::Docker => "docker",
                TargetSpec::Swarm(_) => "swarm",
            }
            .to_string(),
            cause,
            outcome,
            failure,
            changes: Vec::new(),
            images,
            migrations: self.migrations().await.ok(),
            toml: self.loaded.source.clone(),
        };
        revision.changes = history::changes::between(&self.file, previous.as_ref(), &revision);
        Ok(revision)
    }

    /// The migrations the cluster's database has (`_sqlx_migrations`), read inside the cluster.
    pub async fn migrations(&self) -> std::result::Result<Vec<Migration>, ConnectionsError> {
        let rows = self.sql(migrations::SQL).await?;
        migrations::parse(&rows).map_err(ConnectionsError::Migrations)
    }
}

/// An error and its causes, one per line.
fn error_lines(e: &dyn std::error::Error) -> String {
    let mut lines = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        lines.push(c.to_string());
        cause = c.source();
    }
    lines.join("\n")
}

/// What was undone when a health gate failed: the guarded group's reason on one engine,
/// Swarm's own rollback of the service on a swarm.
fn rolled_back(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(ApplyError::RolledBack { why, .. }) = c.downcast_ref::<ApplyError>() {
            return Some(why.clone());
        }
        if let Some(TargetError::Swarm(SwarmError::RolledBack { service, message })) =
            c.downcast_ref::<TargetError>()
        {
            return Some(format!("Swarm rolled {service} back ({message})"));
        }
        cause = c.source();
    }
    None
}

impl Deployment {
    /// Stops every app node of the cluster as `observed`, through the applier, so
    /// nothing writes to the database (a restore); the steps carried out. A
    /// convergence ([`Deployment::prepare`], [`Deployment::apply`]) brings them
    /// back, health-gated.
    pub async fn stop_nodes(
        &self,
        model: &Model,
        observed: &Observed,
        events: &dyn Events,
    ) -> Result<Vec<Step>> {
        let target = self.target(model.clone(), Some(self.secrets()?));
        let steps = target.stop_nodes(observed);
        apply::apply(&target, &steps, events)
            .await
            .map_err(|source| DeployError::StopNodes {
                cluster: self.names.cluster().to_string(),
                source,
            })?;
        Ok(steps)
    }
}

/// How `verify` looks inside the cluster on this deployment's target.
pub type TargetProbes = crate::target::AnyProbes;

impl Deployment {
    /// The target's probes, with the cluster's database password (from the
    /// secrets an apply created next to the file).
    pub async fn probes(&self) -> std::result::Result<TargetProbes, ConnectionsError> {
        let password =
            std::fs::read_to_string(secrets::dir_for(&self.file).join(secrets::DB_PASSWORD_FILE))
                .map_err(ConnectionsError::Password)?;
        if self.loaded.spec.target().swarm().is_some() {
            let target = self
                .swarm_target()
                .await
                .map_err(|e| ConnectionsError::Swarm(Box::new(e)))?;
            return Ok(crate::target::AnyProbes::Swarm(
                crate::target::swarm::probes::SwarmProbes::new(
                    target,
                    self.loaded.spec.app().port(),
                ),
            ));
        }
        Ok(crate::target::AnyProbes::Docker(
            crate::target::docker::probes::DockerProbes::new(
                self.engine.clone(),
                &self.loaded.spec,
                &password,
            ),
        ))
    }
}

impl Deployment {
    /// Waits (up to `timeout`) until the balancer answers `GET /api/health` with 200 from
    /// inside the cluster's network: after every node was stopped and started again (a
    /// restore), nginx finds them by DNS within its resolve interval, and a client should not
    /// meet that second. False when it did not within `timeout`.
    pub async fn wait_until_balancer_serves(
        &self,
        timeout: std::time::Duration,
    ) -> std::result::Result<bool, ConnectionsError> {
        let spec = &self.loaded.spec;
        let url = match spec.balancer().tls() {
            Some(_) => format!(
                "https://{}:{}/api/health",
                self.names.balancer(),
                crate::names::BALANCER_TLS_LISTEN_PORT
            ),
            None => format!(
                "http://{}:{}/api/health",
                self.names.balancer(),
                crate::names::BALANCER_LISTEN_PORT
            ),
        };
        let tries = (timeout.as_millis() / 200).max(1);
        let script = format!(
            "i=0; while [ $i -lt {tries} ]; do \
             [ \"$(curl -sk -m 2 -o /dev/null -w '%{{http_code}}' {url})\" = 200 ] && exit 0; \
             i=$((i+1)); sleep 0.2; done; exit 1"
        );
        let probes = self.probes().await?;
        let (code, _) = crate::target::Probes::in_cluster(&probes, &script, &[])
            .await
            .map_err(ConnectionsError::Console)?;
        Ok(code == 0)
    }
}

/// Whether any app node runs in `observed`.
fn serving(observed: &Observed) -> bool {
    observed
        .units
        .iter()
        .any(|u| u.role == crate::names::Role::App && u.running)
}

/// Why the connections in use could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionsError {
    #[error("postgres is not running")]
    NotRunning,
    #[error("the pooler is not running")]
    PoolerNotRunning,
    #[error("querying the pooler's admin console")]
    Console(#[source] crate::target::TargetError),
    #[error("reading SHOW POOLS: {0}")]
    Pools(String),
    #[error("looking inside the swarm through one-off tasks")]
    Swarm(#[source] Box<DeployError>),
    #[error("cannot read the database password")]
    Password(#[source] std::io::Error),
    #[error("reading _sqlx_migrations: {0}")]
    Migrations(String),
    #[error("querying pg_stat_activity")]
    Query(#[source] EngineError),
}

impl Deployment {
    /// The pooler's pools (`SHOW POOLS`), read on its admin console inside its
    /// container; `None` without a pooler.
    pub async fn pooler_pools(
        &self,
        observed: &Observed,
    ) -> std::result::Result<Option<Vec<crate::pooler::PoolStats>>, ConnectionsError> {
        let Some(name) = crate::model::pooler_name(&self.loaded.spec) else {
            return Ok(None);
        };
        observed
            .get(&name)
            .filter(|c| c.running)
            .ok_or(ConnectionsError::PoolerNotRunning)?;
        let probes = self.probes().await?;
        let rows = crate::target::Probes::pooler_console(&probes, "SHOW POOLS")
            .await
            .map_err(ConnectionsError::Console)?;
        crate::pooler::PoolStats::parse(&rows)
            .map(Some)
            .map_err(ConnectionsError::Pools)
    }

    /// Connections per `application_name` (every client), read inside the
    /// PostgreSQL container: the database is never published.
    pub async fn connections(
        &self,
        observed: &Observed,
    ) -> std::result::Result<Vec<(String, u32)>, ConnectionsError> {
        observed
            .get(&self.names.postgres())
            .filter(|c| c.running)
            .ok_or(ConnectionsError::NotRunning)?;
        Ok(self
            .sql(CONNECTIONS_SQL)
            .await?
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.trim().parse().ok()?)))
            .collect())
    }

    /// Rows of one SQL statement in the cluster's database, read inside the
    /// cluster (the database is never published): psql in the PostgreSQL
    /// container on one engine, in a one-off task on a swarm.
    pub async fn sql(&self, sql: &str) -> std::result::Result<Vec<Vec<String>>, ConnectionsError> {
        let password = std::fs::read_to_string(secrets::dir_for(&self.file).join("db_password"))
            .map_err(ConnectionsError::Password)?;
        if self.loaded.spec.target().swarm().is_some() {
            return self
                .swarm_sql(sql)
                .await
                .map_err(|e| ConnectionsError::Swarm(Box::new(e)));
        }
        crate::target::docker::engine::Psql::new(&self.engine, &self.loaded.spec, &password)
            .query(sql)
            .await
            .map_err(ConnectionsError::Query)
    }
}

/// The connections per `application_name`, as [`Deployment::connections`] reads them.
const CONNECTIONS_SQL: &str =
    "SELECT coalesce(nullif(application_name, ''), '(none)'), count(*) FROM pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1";

impl Deployment {
    /// On a swarm, psql runs in a one-off task on the cluster's network.
    async fn swarm_sql(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        Ok(self.swarm_target().await?.sql(sql).await?)
    }

    /// The swarm target with the cluster's secrets, for one-off jobs.
    async fn swarm_target(&self) -> Result<SwarmTarget> {
        let secrets = self.secrets()?;
        Ok(SwarmTarget::new(
            self.engine.clone(),
            self.loaded.spec.clone(),
            self.model().await?,
            Some(secrets),
        )
        .expect("a swarm spec"))
    }

    /// Each task of the cluster on a swarm: its service, slot, host, state.
    pub async fn tasks(&self) -> Result<Vec<swarm::TaskRow>> {
        Ok(swarm::task_rows(&self.engine, &self.names).await?)
    }
}

/// `generated/` (or another output directory) as rendered from a spec, not yet written.
#[derive(Debug, Clone)]
pub struct Generated {
    pub out: PathBuf,
    pub files: Vec<Rendered>,
    secrets_dir: PathBuf,
    db_user: String,
    tls: Option<TlsFiles>,
}

impl Generated {
    /// Renders the files for the cluster file `file` into `out` (default:
    /// `generated/` next to it), referring to its secrets directory.
    pub fn render(
        file: &Path,
        templates: &Templates,
        spec: &ClusterSpec,
        out: Option<&Path>,
    ) -> Result<Generated> {
        let out = out.map_or_else(|| base_dir(file).join("generated"), Path::to_path_buf);
        let secrets_dir = secrets::dir_for(file);
        let files = templates.render_all(spec, &render::relative_path(&out, &secrets_dir))?;
        Ok(Generated {
            out,
            files,
            secrets_dir,
            db_user: spec.database().user().to_string(),
            tls: tls_files(spec),
        })
    }

    /// The files on disk that differ from these (empty when up to date).
    pub fn drift(&self) -> Vec<Drift> {
        render::check(&self.out, &self.files)
    }

    /// Creates the secrets the compose file refers to, then writes the files
    /// that changed; returns their names.
    pub fn write(&self) -> Result<Vec<&'static str>> {
        secrets::ensure(&self.secrets_dir, &self.db_user, self.tls.clone())?;
        let changed = self.drift().iter().map(|d| d.name).collect();
        render::write_all(&self.out, &self.files)?;
        Ok(changed)
    }
}

/// The app image's reference in a swarm's registry: `registry/<repo:tag>`,
/// unless the reference already names a registry.
pub fn swarm_ref(registry: &str, image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        image.to_string()
    } else {
        format!("{registry}/{image}")
    }
}

/// The balancer's certificate chain and key as validated, with HTTPS.
fn tls_files(spec: &ClusterSpec) -> Option<TlsFiles> {
    spec.balancer().tls().map(|t| TlsFiles {
        cert: t.certificate().chain_pem().to_string(),
        key: t.key().pem().to_string(),
    })
}

/// The directory cluster.toml lives in.
pub fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(source: ApplyError) -> DeployError {
        DeployError::Apply {
            action: "apply",
            cluster: "t".into(),
            recorded: None,
            source,
        }
    }

    #[test]
    fn a_failed_apply_says_what_was_rolled_back_on_either_target() {
        let step = |source: TargetError| ApplyError::Step {
            step: "deploy t-app".into(),
            source: Box::new(source),
        };
        let swarm = failed(step(TargetError::Swarm(SwarmError::RolledBack {
            service: "t-app".into(),
            message: "update rolled back due to failure or early termination of task".into(),
        })));
        assert_eq!(
            rolled_back(&swarm).as_deref(),
            Some("Swarm rolled t-app back (update rolled back due to failure or early termination of task)")
        );
        let docker = failed(ApplyError::RolledBack {
            why: "the new t-app-1 must pass its health gate; the old one keeps serving".into(),
            source: Box::new(step(TargetError::Swarm(SwarmError::NotAManager {
                address: "x".into(),
                state: "inactive".into(),
            }))),
        });
        assert_eq!(
            rolled_back(&docker).as_deref(),
            Some("the new t-app-1 must pass its health gate; the old one keeps serving")
        );
        let plain = failed(step(TargetError::Swarm(SwarmError::NotAManager {
            address: "x".into(),
            state: "inactive".into(),
        })));
        assert_eq!(rolled_back(&plain), None);
        assert_eq!(
            error_lines(&plain),
            "apply of cluster `t` failed; run `deployer apply` again to converge from here\n\
             step `deploy t-app` failed\n\
             the engine at x is not a swarm manager (inactive); run `docker swarm init` there, or point [swarm] manager at a manager"
        );
    }
}
