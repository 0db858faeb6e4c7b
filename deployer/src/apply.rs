//! The one place with effects: carries out a [`Plan`] on the engine, in
//! dependency order, health-gated, with zero-downtime node changes.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use crate::budget::Budget;
use crate::config::ClusterSpec;
use crate::desired::{self, Desired, DesiredContainer, Images, Role};
use crate::engine::{archive, Engine, EngineError};
use crate::names::{self, Names};
use crate::plan::{Change, Plan};
use crate::render::Templates;
use crate::secrets::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the connection budget does not fit the running database: {0}")]
    LiveBudget(String),
    #[error("the new nginx config was rejected by `nginx -t`; the running config was kept:\n{0}")]
    BadConfig(String),
    #[error("rendering the nginx config")]
    Render(#[from] crate::render::RenderError),
    #[error("packing files for a container")]
    Archive(#[source] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ApplyError>;

/// Step-by-step progress with timings since the start of the apply: plain lines,
/// plus a spinner for each wait when stdout is a terminal.
pub struct Progress {
    start: Instant,
    quiet: bool,
    multi: Option<indicatif::MultiProgress>,
}

/// A spinner shown while something is awaited; it disappears when dropped.
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let multi = (!quiet && std::io::stdout().is_terminal()).then(indicatif::MultiProgress::new);
        Progress {
            start: Instant::now(),
            quiet,
            multi,
        }
    }

    pub fn step(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let line = format!(
            "[{:>6.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            msg.as_ref()
        );
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => println!("{line}"),
        }
    }

    /// A spinner saying what is awaited (only on a terminal).
    pub fn wait(&self, msg: impl Into<String>) -> Spinner {
        let Some(m) = &self.multi else {
            return Spinner(None);
        };
        let bar = m.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(msg.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

pub struct Applier<'a> {
    pub engine: &'a Engine,
    pub spec: &'a ClusterSpec,
    pub images: &'a Images,
    pub secrets: &'a Secrets,
    pub templates: &'a Templates,
    pub desired: &'a Desired,
    pub progress: &'a Progress,
}

impl Applier<'_> {
    fn names(&self) -> Names {
        Names::of(self.spec)
    }

    fn health_timeout(&self) -> Duration {
        Duration::from_secs(self.spec.rollout.health_timeout as u64)
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.spec.rollout.stop_grace_seconds as u64)
    }

    /// The secret files a container of `role` reads, owned by its user.
    fn secret_files(&self, role: Role) -> Result<Option<Vec<u8>>> {
        let (uid, files): (u64, Vec<(&str, &str)>) = match role {
            Role::Postgres => (999, vec![("db_password", &self.secrets.db_password)]),
            Role::App | Role::Migrate => (
                10001,
                vec![
                    ("db_password", &self.secrets.db_password),
                    ("jwt_secret", &self.secrets.jwt_secret),
                ],
            ),
            _ => return Ok(None),
        };
        let paths: Vec<String> = files
            .iter()
            .map(|(n, _)| format!("{}/{n}", desired::SECRETS_DIR))
            .collect();
        let entries: Vec<archive::File> = files
            .iter()
            .zip(&paths)
            .map(|((_, v), p)| archive::File {
                path: p,
                contents: v.as_bytes(),
                mode: 0o400,
                uid,
                gid: uid,
            })
            .collect();
        archive::tar(&entries)
            .map(Some)
            .map_err(ApplyError::Archive)
    }

    /// Creates `c` under `name`, places its files, starts it.
    async fn create_and_start(&self, c: &DesiredContainer, name: &str) -> Result<()> {
        let body = desired::create_body(self.spec, self.images, c);
        self.engine.create(name, body).await?;
        if let Some(tar) = self.secret_files(c.role)? {
            self.engine.upload(name, tar).await?;
        }
        if c.role == Role::Balancer {
            self.engine
                .upload(name, self.nginx_tar(&self.desired.nginx_conf)?)
                .await?;
        }
        self.engine.start(name).await?;
        Ok(())
    }

    async fn bring_up(&self, c: &DesiredContainer, name: &str) -> Result<()> {
        let t = Instant::now();
        let _spinner = self
            .progress
            .wait(format!("{name}: starting, waiting for its health check"));
        self.create_and_start(c, name).await?;
        self.engine
            .wait_healthy(name, self.health_timeout())
            .await?;
        self.progress.step(format!(
            "{name}: healthy ({:.1}s)",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Starts an existing (stopped) container and waits for its health check.
    async fn start_healthy(&self, name: &str) -> Result<()> {
        let _spinner = self
            .progress
            .wait(format!("{name}: starting, waiting for its health check"));
        self.engine.start(name).await?;
        self.engine
            .wait_healthy(name, self.health_timeout())
            .await?;
        self.progress.step(format!("{name}: started, healthy"));
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let _spinner = self.progress.wait(format!(
            "{name}: stopping (SIGTERM, up to {}s)",
            self.grace().as_secs()
        ));
        self.engine.stop(name, self.grace()).await?;
        self.engine.remove(name).await?;
        Ok(())
    }

    fn nginx_tar(&self, conf: &str) -> Result<Vec<u8>> {
        archive::tar(&[archive::File {
            path: "/etc/nginx/nginx.conf",
            contents: conf.as_bytes(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }])
        .map_err(ApplyError::Archive)
    }

    /// Puts `conf` in the balancer, checks it with `nginx -t` and reloads nginx
    /// (workers finish their requests; no restart). A rejected config is rolled back.
    async fn reload(&self, conf: &str, why: &str) -> Result<()> {
        let lb = self.names().balancer();
        match self.engine.inspect(&lb).await? {
            Some(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            _ => return Ok(()), // no balancer yet: it is created with the final config
        }
        let previous = self.engine.read_file(&lb, "/etc/nginx/nginx.conf").await?;
        self.engine.upload(&lb, self.nginx_tar(conf)?).await?;
        let (code, out) = self
            .engine
            .exec(&lb, &["nginx", "-t", "-q"], Some(names::NGINX_USER), &[])
            .await?;
        if code != 0 {
            if let Some(prev) = previous {
                let prev = String::from_utf8_lossy(&prev).into_owned();
                self.engine.upload(&lb, self.nginx_tar(&prev)?).await?;
            }
            return Err(ApplyError::BadConfig(out));
        }
        self.engine
            .exec_ok(&lb, &["nginx", "-s", "reload"], Some(names::NGINX_USER))
            .await?;
        self.progress.step(format!("{lb}: nginx reloaded ({why})"));
        Ok(())
    }

    /// Waits `drain` for requests already sent to nodes on their way out, with a spinner.
    async fn drain(&self, drain: Duration) {
        let _spinner = self
            .progress
            .wait(format!("draining for {}s", drain.as_secs()));
        tokio::time::sleep(drain).await;
    }

    fn conf_for(&self, upstream: &[String]) -> Result<String> {
        if upstream == self.canonical_upstream() {
            return Ok(self.desired.nginx_conf.clone());
        }
        Ok(self.templates.nginx(self.spec, upstream)?)
    }

    fn canonical_upstream(&self) -> Vec<String> {
        self.desired.nodes().map(|n| n.name.clone()).collect()
    }

    /// Reads the live max_connections and the connections held by clients other
    /// than this cluster's nodes, and refuses a peak that would not fit.
    async fn check_live_budget(&self) -> Result<()> {
        let n = self.names();
        let sql = format!(
            "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'), \
             count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
             AND application_name NOT LIKE '{c}-app-%' AND application_name <> '{c}-migrate') \
             FROM pg_stat_activity",
            c = n.cluster
        );
        let rows = crate::engine::Psql::new(self.engine, self.spec, &self.secrets.db_password)
            .query(&sql)
            .await
            .map_err(|e| ApplyError::LiveBudget(format!("cannot read pg_stat_activity: {e}")))?;
        let nums: Vec<u32> = rows
            .first()
            .map(|r| r.iter().filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_default();
        let [max, reserved, others] = nums[..] else {
            return Err(ApplyError::LiveBudget(format!(
                "unexpected answer {rows:?}"
            )));
        };
        let budget = Budget::of(self.spec);
        let limit = max.saturating_sub(reserved);
        let need = budget.peak + others;
        if need > limit {
            return Err(ApplyError::LiveBudget(format!(
                "the running PostgreSQL allows {limit} connections ({max} max_connections − {reserved} reserved); \
                 other clients hold {others}, and the cluster's peak is {}: {need} > {limit}. \
                 Lower pool_size or close the other connections.",
                budget.peak
            )));
        }
        self.progress.step(format!(
            "budget: peak {} + {others} other connection(s) ≤ {limit} on the running database",
            budget.peak
        ));
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let n = self.names();
        let name = n.migrate();
        let t = Instant::now();
        self.engine.remove(&name).await?;
        let c = DesiredContainer {
            name: name.clone(),
            role: Role::Migrate,
            node: None,
            fingerprint: self
                .desired
                .nodes()
                .next()
                .map(|d| d.fingerprint.clone())
                .unwrap_or_default(),
        };
        let _spinner = self.progress.wait("migrations: running `app migrate`");
        self.create_and_start(&c, &name).await?;
        let result = self.engine.wait_exit(&name).await;
        self.engine.remove(&name).await?;
        result?;
        self.progress.step(format!(
            "migrations: done ({:.1}s)",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    async fn replace_stop_first(
        &self,
        batch: &[(&String, &String)],
        upstream: &[String],
        drain: Duration,
    ) -> Result<()> {
        let names: Vec<&String> = batch.iter().map(|(n, _)| *n).collect();
        let remaining: Vec<String> = upstream
            .iter()
            .filter(|u| !names.contains(u))
            .cloned()
            .collect();
        for (name, reason) in batch {
            self.progress.step(format!(
                "{name}: replacing stop-first ({reason}; it publishes a host port)"
            ));
        }
        if remaining.is_empty() {
            self.progress
                .step("no other node serves meanwhile: requests fail until the new node is ready");
        } else {
            self.reload(&self.conf_for(&remaining)?, "nodes out for replacement")
                .await?;
            self.drain(drain).await;
        }
        try_join_all(names.iter().map(|name| self.remove(name))).await?;
        try_join_all(
            names
                .iter()
                .map(|name| self.bring_up(self.desired.get(name).expect("planned"), name)),
        )
        .await?;
        self.reload(
            &self.conf_for(upstream)?,
            "replaced nodes back in the upstream",
        )
        .await
    }

    /// Carries out `plan`. Safe to run again after a failure or an interruption:
    /// the next plan starts from what is observed then.
    pub async fn apply(&self, plan: &Plan) -> Result<()> {
        let n = self.names();
        let labels = desired::cluster_labels(self.spec);
        let desired_of = |name: &str| self.desired.get(name).expect("planned from desired");

        // 1. Network and volume.
        for c in &plan.changes {
            match c {
                Change::CreateNetwork { name } => {
                    self.engine.create_network(name, labels.clone()).await?;
                    self.progress.step(format!("network {name}: created"));
                }
                Change::CreateVolume { name } => {
                    self.engine.create_volume(name, labels.clone()).await?;
                    self.progress.step(format!("volume {name}: created"));
                }
                _ => {}
            }
        }

        // 2. Postgres and Redis, concurrently; then wait until they are healthy.
        let services: Vec<_> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Create { name, role }
                | Change::Replace { name, role, .. }
                | Change::Start { name, role, .. }
                    if matches!(role, Role::Postgres | Role::Redis) =>
                {
                    Some((c, name.clone()))
                }
                _ => None,
            })
            .collect();
        try_join_all(services.iter().map(|(c, name)| async move {
            match c {
                Change::Replace { .. } => {
                    self.remove(name).await?;
                    self.bring_up(desired_of(name), name).await
                }
                Change::Start { .. } => self.start_healthy(name).await,
                _ => self.bring_up(desired_of(name), name).await,
            }
        }))
        .await?;

        if plan.touches_nodes() {
            self.engine
                .wait_healthy(&n.postgres(), self.health_timeout())
                .await?;
            self.check_live_budget().await?;
        }

        // 3. A migration left over by an interrupted run goes first.
        for c in &plan.changes {
            if let Change::Remove {
                name,
                role: Role::Migrate,
                reason,
            } = c
            {
                self.engine.remove(name).await?;
                self.progress.step(format!("{name}: removed ({reason})"));
            }
        }

        // 4. Migrations, once, before any new node takes traffic.
        if plan.changes.contains(&Change::Migrate) {
            self.migrate().await?;
        }

        // 5. New and stopped nodes, concurrently, each health-gated.
        let starts: Vec<(&String, bool)> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Create {
                    name,
                    role: Role::App,
                } => Some((name, true)),
                Change::Start {
                    name,
                    role: Role::App,
                    ..
                } => Some((name, false)),
                _ => None,
            })
            .collect();
        try_join_all(starts.iter().map(|(name, create)| async move {
            if *create {
                self.bring_up(desired_of(name), name).await
            } else {
                self.start_healthy(name).await
            }
        }))
        .await?;

        // nginx resolves node names when it loads its config: a node that was
        // created or restarted (new address) needs a reload to get traffic.
        let surplus: Vec<String> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Remove {
                    name,
                    role: Role::App,
                    ..
                } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut upstream: Vec<String> = self.canonical_upstream();
        upstream.extend(surplus.iter().filter(|s| !s.ends_with("-old")).cloned());
        let leftovers = surplus.iter().any(|s| s.ends_with("-old"));
        if !starts.is_empty() || leftovers {
            // Every node nginx is about to resolve must be ready first (one left
            // behind by an interrupted apply may still be starting).
            try_join_all(self.desired.nodes().map(|d| async move {
                match self.engine.inspect(&d.name).await? {
                    Some(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {
                        self.engine
                            .wait_healthy(&d.name, self.health_timeout())
                            .await?;
                    }
                    _ => {}
                }
                Ok::<_, ApplyError>(())
            }))
            .await?;
            let conf = self.conf_for(&upstream)?;
            let why = if starts.is_empty() {
                "nodes re-resolved"
            } else {
                "new nodes in the upstream"
            };
            self.reload(&conf, why).await?;
        }

        // 6. Rolling replacement, max_surge nodes at a time. The old container
        // steps aside under `-old`, the new one takes the node's name and passes
        // its health check, one nginx reload moves traffic (the config text does
        // not change), then the old one drains and stops.
        let rolls: Vec<(&String, &String)> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Roll { name, reason, .. } => Some((name, reason)),
                _ => None,
            })
            .collect();
        let drain = Duration::from_secs(self.spec.rollout.drain_seconds as u64);
        for batch in rolls.chunks(self.spec.rollout.max_surge.max(1) as usize) {
            if self.spec.app.host_port_base.is_some() {
                // A node publishing a host port cannot have its replacement beside
                // it (the port is taken): it leaves the upstream, drains and stops
                // first, then the new one takes its name and port.
                self.replace_stop_first(batch, &upstream, drain).await?;
                continue;
            }
            let olds: Vec<(String, String)> = batch
                .iter()
                .map(|(name, _)| {
                    let i = desired_of(name).node.unwrap_or_default();
                    ((*name).clone(), n.node_old(i))
                })
                .collect();
            for ((name, reason), (_, old)) in batch.iter().zip(&olds) {
                self.engine.rename(name, old).await?;
                self.progress.step(format!(
                    "{name}: rolling ({reason}); old container is now {old}"
                ));
            }
            let up = try_join_all(
                olds.iter()
                    .map(|(name, _)| self.bring_up(desired_of(name), name)),
            )
            .await;
            if let Err(e) = up {
                // Put the old nodes back; nginx never stopped sending them traffic.
                for (name, old) in &olds {
                    let _ = self.engine.remove(name).await;
                    let _ = self.engine.rename(old, name).await;
                }
                self.progress
                    .step("rollout stopped: the old nodes keep serving");
                return Err(e);
            }
            self.reload(&self.conf_for(&upstream)?, "traffic to the new nodes")
                .await?;
            self.drain(drain).await;
            try_join_all(olds.iter().map(|(name, old)| async move {
                self.remove(old).await?;
                self.progress
                    .step(format!("{name}: replaced; {old} drained, stopped, removed"));
                Ok::<_, ApplyError>(())
            }))
            .await?;
        }

        // 7. Scale down (and leftovers): out of the upstream, drain, SIGTERM with a grace period.
        if !surplus.is_empty() {
            upstream.retain(|u| !surplus.contains(u));
            let gone: Vec<&str> = surplus
                .iter()
                .filter(|s| !s.ends_with("-old"))
                .map(String::as_str)
                .collect();
            if !gone.is_empty() {
                self.reload(
                    &self.conf_for(&upstream)?,
                    &format!("upstream - {}", gone.join(", ")),
                )
                .await?;
            }
            self.drain(drain).await;
            try_join_all(surplus.iter().map(|name| async move {
                self.remove(name).await?;
                self.progress
                    .step(format!("{name}: drained, stopped, removed"));
                Ok::<_, ApplyError>(())
            }))
            .await?;
        }
        for c in &plan.changes {
            if let Change::Remove { name, role, reason } = c {
                if !matches!(role, Role::App | Role::Migrate) {
                    self.remove(name).await?;
                    self.progress.step(format!("{name}: removed ({reason})"));
                }
            }
        }

        // 8. The balancer: created/replaced with the final config, or reloaded.
        for c in &plan.changes {
            match c {
                Change::Create {
                    name,
                    role: Role::Balancer,
                } => {
                    self.bring_up(desired_of(name), name).await?;
                }
                Change::Replace {
                    name,
                    role: Role::Balancer,
                    reason,
                } => {
                    self.progress.step(format!(
                        "{name}: replacing ({reason}); the port is briefly closed"
                    ));
                    self.remove(name).await?;
                    self.bring_up(desired_of(name), name).await?;
                }
                Change::Start {
                    name,
                    role: Role::Balancer,
                    ..
                } => self.start_healthy(name).await?,
                _ => {}
            }
        }
        let running = self
            .engine
            .read_file(&n.balancer(), "/etc/nginx/nginx.conf")
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if running.as_deref() != Some(self.desired.nginx_conf.as_str()) {
            self.reload(&self.desired.nginx_conf, "config changed")
                .await?;
        }
        Ok(())
    }
}
