//! Shared harness for the end-to-end tests: a real cluster on the real Docker
//! engine, with a unique name and a free port, destroyed when the test ends even
//! if it fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use deployer::deploy::{Applied, Deployment};
use deployer::events::Silent;
use deployer::names::Names;
use deployer::observed::Observed;
use deployer::plan::{Goal, Plan};
use serde_json::{json, Value};

pub mod https;
pub mod keepalive;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Fails (never skips) when no Docker engine answers: the suite promises to
/// exercise a real engine.
pub fn require_docker() {
    let ok = std::process::Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no Docker engine answers `docker info`: run scripts/ensure-docker (or .ci/run, which does)"
    );
}

/// Docker tests run one at a time: the machine has two cores, and rollout
/// timings are what they check.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The images the example cluster names must exist: `scripts/test` builds them
/// (scripts/build-images.sh, then `deployer build`) before `cargo test` runs.
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let file = repo().join("cluster.toml");
        let loaded = deployer::config::load(&file).expect("the example cluster.toml is valid");
        let spec = &loaded.spec;
        require_images(&[
            spec.app().image().as_str(),
            spec.database().image().as_str(),
            spec.balancer().image().as_str(),
            "redis:7.0-bookworm",
        ]);
    });
}

/// Fails (never skips) unless every one of `images` is on the engine.
pub fn require_images(images: &[&str]) {
    let missing: Vec<&str> = images
        .iter()
        .copied()
        .filter(|image| {
            !std::process::Command::new("docker")
                .args(["image", "inspect", image])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "missing images {missing:?}: run scripts/test (it runs scripts/build-images.sh and `deployer build` first)"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster under test: a directory with its own cluster.toml.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub name: String,
    /// The balancer's port in cluster.toml.
    pub port: u16,
    /// Where this machine reaches the balancer (`127.0.0.1:port`; on the lab,
    /// the balancer host's port as the lab publishes it).
    pub reach: String,
    /// On the swarm lab: the `[swarm]` section.
    pub swarm: Option<String>,
    /// With HTTPS ([`Cluster::use_https`]): requests go there, trusting its test CA.
    pub https: Option<Https>,
    pub rt: tokio::runtime::Runtime,
}

/// A cluster's HTTPS under test: its port, where this machine reaches it, and the CA that
/// signed its certificate (the clients trust it).
pub struct Https {
    pub port: u16,
    pub reach: String,
    pub ca: https::TestCa,
}

impl Cluster {
    /// `extra` is appended to the example with the name and port replaced.
    pub fn new(tag: &str) -> Cluster {
        ensure_images();
        Cluster::without_images(tag)
    }

    /// Like [`Cluster::new`], without asserting the images exist: for tests that
    /// never start a container (refusals, destroy).
    pub fn without_images(tag: &str) -> Cluster {
        require_docker();
        let name = format!("e2e-{tag}-{}", std::process::id() % 100_000);
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster {
            dir,
            name,
            port,
            reach: format!("127.0.0.1:{port}"),
            swarm: None,
            https: None,
            rt: runtime(),
        };
        c.write(|t| t);
        c
    }

    /// A cluster on the swarm lab, its balancer published on the lab's
    /// balancer host at `port` (4000–4009: the ports the lab forwards).
    pub fn on_swarm(tag: &str, port: u16) -> Cluster {
        let lab = Lab::get();
        let host = lab.var("SWARM_LAB_BALANCER_HOST");
        let c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            name: format!("e2e-{tag}-{}", std::process::id() % 100_000),
            port,
            reach: lab.reach(&host, port),
            swarm: Some(format!(
                "\n[swarm]\nmanager = \"{}\"\nregistry = \"{}\"\ndatabase_host = \"{}\"\nbalancer_host = \"{host}\"\n",
                lab.var("DOCKER_HOST"),
                lab.var("SWARM_LAB_REGISTRY"),
                lab.var("SWARM_LAB_MANAGER"),
            )),
            https: None,
            rt: runtime(),
        };
        c.write(|t| t);
        c
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    /// Writes cluster.toml: the repository's example, with this cluster's name
    /// and port, edited by `edit`.
    pub fn write(&self, edit: impl FnOnce(String) -> String) {
        let example = std::fs::read_to_string(repo().join("cluster.toml")).unwrap();
        let toml = example
            .replace("name = \"demo\"", &format!("name = \"{}\"", self.name))
            .replace(
                "port = 4000                 # published",
                &format!("port = {}                 # published", self.port),
            )
            .replace("drain_seconds = 2", "drain_seconds = 1");
        let toml = match &self.https {
            Some(h) => toml.replace(
                "[balancer]\n",
                &format!(
                    "[balancer]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nhttps_port = {}\n",
                    https::CERT_FILE,
                    https::KEY_FILE,
                    h.port
                ),
            ),
            None => toml,
        };
        let toml = match &self.swarm {
            // The same example, on the swarm: its section, no host address to
            // bind (host mode publishes on the balancer's host), and a balancer
            // that re-resolves the tasks.
            Some(section) => {
                toml.replace(
                    &format!("name = \"{}\"", self.name),
                    &format!("name = \"{}\"\ntarget = \"swarm\"", self.name),
                )
                .lines()
                .filter(|l| !l.starts_with("bind = "))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .replace("image = \"nginx:1.22\"", "image = \"nginx:1.30\"")
                    + section
            }
            None => toml,
        };
        std::fs::write(self.file(), edit(toml)).unwrap();
    }

    /// The cluster file, loaded and opened on its target, as every command does.
    pub async fn deployment(&self) -> anyhow::Result<Deployment> {
        let file = self.file();
        let loaded = deployer::config::load(&file)?;
        Ok(Deployment::open(&file, loaded).await?)
    }

    /// `deployer apply --yes`, through the library: lock, plan, carry out the
    /// steps; an error when the cluster still differs afterwards.
    pub fn apply(&self) -> anyhow::Result<Applied> {
        self.converge(Goal::Converge)
    }

    fn converge(&self, goal: Goal) -> anyhow::Result<Applied> {
        self.rt.block_on(async {
            let d = self.deployment().await?;
            let _lock = d.lock()?;
            let prepared = d.prepare(goal).await?;
            if prepared.plan.is_empty() {
                return Ok(Applied {
                    left: prepared.plan,
                });
            }
            let applied = d.apply(&prepared, &Silent).await?;
            anyhow::ensure!(
                applied.left.is_empty(),
                "the cluster still differs after the apply:\n{}",
                applied.left
            );
            Ok(applied)
        })
    }

    pub fn plan(&self) -> Plan {
        self.try_plan()
            .expect("a valid cluster file, no foreign network or volume")
    }

    pub fn try_plan(&self) -> anyhow::Result<Plan> {
        self.rt
            .block_on(async { Ok(self.deployment().await?.prepare(Goal::Converge).await?.plan) })
    }

    /// What the cluster's target holds now (without reading the file: a
    /// broken file must not hide what runs).
    pub fn observe(&self) -> Observed {
        self.rt.block_on(async {
            let names = Names::for_cluster(&self.name);
            if self.swarm.is_some() {
                let lab = Lab::get();
                let engine = deployer::target::docker::engine::Engine::connect_to(Some(
                    &lab.var("DOCKER_HOST"),
                ))
                .await
                .unwrap();
                let spec = deployer::config::load(&self.file())
                    .expect("a valid swarm file")
                    .spec;
                return deployer::target::swarm::observe::observe(
                    &engine,
                    &names,
                    spec.target().swarm().unwrap(),
                )
                .await
                .unwrap();
            }
            let engine = deployer::target::docker::engine::Engine::connect()
                .await
                .unwrap();
            deployer::target::docker::observe::observe(&engine, &names)
                .await
                .unwrap()
        })
    }

    /// name → container id of every container of the cluster.
    pub fn container_ids(&self) -> Vec<(String, String)> {
        self.observe()
            .units
            .into_iter()
            .map(|c| (c.name, c.id))
            .collect()
    }

    /// On a swarm, the app tasks meant to run: (node name, host).
    pub fn app_tasks(&self) -> Vec<(String, String)> {
        self.rt.block_on(async {
            let d = self.deployment().await.unwrap();
            d.tasks()
                .await
                .unwrap()
                .into_iter()
                .filter(|t| t.service == format!("{}-app", self.name))
                .map(|t| (t.name, t.host))
                .collect()
        })
    }

    /// Where users reach `path`: over HTTPS when the cluster serves it, else HTTP.
    pub fn url(&self, path: &str) -> String {
        match &self.https {
            Some(h) => format!("https://{}{path}", h.reach),
            None => self.http_url(path),
        }
    }

    /// `path` on the balancer's plain HTTP port.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.reach)
    }

    /// A client builder that trusts the cluster's test CA (with HTTPS).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        match &self.https {
            Some(h) => b.add_root_certificate(h.ca.root()),
            None => b,
        }
    }

    /// A client without connection reuse: each request is a new connection.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }

    /// Serve HTTPS on `port` (`reach` is where this machine reaches it): a CA made now signs
    /// a certificate for `names`, written next to cluster.toml (mode 0600) and named in it;
    /// from now on [`Cluster::url`] and [`Cluster::client`] speak HTTPS, trusting that CA.
    pub fn use_https(&mut self, port: u16, reach: String, names: &[&str]) {
        let ca = https::TestCa::new(&self.name);
        let issued = ca.issue(names);
        issued.write(self.dir.path());
        self.https = Some(Https { port, reach, ca });
        self.write(|t| t);
    }

    /// `deployer destroy --volumes --yes`, through the library.
    pub fn destroy_all(&self) -> anyhow::Result<Applied> {
        self.converge(Goal::Destroy { volumes: true })
    }

    pub fn destroy(&self) {
        let _ = self.destroy_all();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A network or volume made by hand with `docker`, without the deployer's labels;
/// removed when dropped, even when the test fails.
pub struct HandMade {
    /// "network" or "volume".
    pub kind: &'static str,
    pub name: String,
}

impl HandMade {
    /// `docker <kind> create [args] <name>`.
    pub fn create(kind: &'static str, name: &str, args: &[&str]) -> HandMade {
        let out = std::process::Command::new("docker")
            .arg(kind)
            .arg("create")
            .args(args)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {kind} create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        HandMade {
            kind,
            name: name.to_string(),
        }
    }

    /// Whether it still exists on the engine.
    pub fn exists(&self) -> bool {
        std::process::Command::new("docker")
            .args([self.kind, "inspect", &self.name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for HandMade {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args([self.kind, "rm", &self.name])
            .output();
    }
}

/// GET /api/health through the balancer `n` times; the node names seen.
pub fn nodes_seen(c: &Cluster, n: usize) -> Vec<String> {
    c.rt.block_on(async {
        let client = c.client();
        let mut seen = Vec::new();
        for _ in 0..n {
            let r = client.get(c.url("/api/health")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            seen.push(v["node"].as_str().unwrap().to_string());
        }
        seen
    })
}

/// Waits until the balancer stopped sending to `node` (stopped outside the deployer): ten
/// answers in a row from the others. A request connecting to the vanished address at that
/// moment can get a 502 (nginx does not retry across a change of the upstream's addresses):
/// such a node never left DNS first, so errors only mean "not yet".
pub fn wait_until_dropped(c: &Cluster, node: &str) {
    wait_for(
        &format!("the balancer to drop {node}"),
        Duration::from_secs(10),
        || {
            c.rt.block_on(async {
                let client = c.client();
                for _ in 0..10 {
                    let r = client.get(c.url("/api/health")).send().await.ok()?;
                    let v: Value = r.json().await.ok()?;
                    if v["node"].as_str()? == node {
                        return None;
                    }
                }
                Some(())
            })
        },
    );
}

/// `GET /api/auth/me` with `token` `n` times through the balancer: each must be a 200; the bodies.
pub fn me(c: &Cluster, token: &str, n: usize) -> Vec<Value> {
    c.rt.block_on(async {
        let client = c.client();
        let mut bodies = Vec::new();
        for _ in 0..n {
            let r = client
                .get(c.url("/api/auth/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            bodies.push(r.json().await.unwrap());
        }
        bodies
    })
}

/// `deployer verify` on the cluster's file, through the library.
pub fn verify(
    c: &Cluster,
    options: &deployer::verify::Options,
) -> anyhow::Result<deployer::verify::Report> {
    let file = c.file();
    let loaded = deployer::config::load(&file)?;
    c.rt.block_on(deployer::verify::verify(
        &loaded,
        &file,
        options,
        &mut |_| {},
    ))
}

/// `docker ARGS` on this machine's engine (`-H …` first for another); stdout, or a failure.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bounded client loop in the background: GET `path` through the balancer (with a
/// bearer `token` when given), a new connection per request, until stopped (at most
/// 60 s), counting successes and failures (errors or non-200s).
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(c: &Cluster, concurrency: usize, path: &str, token: Option<String>) -> Load {
        Load::start_opts(c, concurrency, path, token, false)
    }

    /// GET /api/health with each worker keeping its connection, as browsers
    /// and load balancers do. A connection left idle for half a second is not used again:
    /// the balancer's old workers close a connection once it has been idle for a second
    /// after a reload (`keepalive_min_timeout`), and a client that writes on it at that
    /// very instant loses its request unless it retries, as browsers do (RFC 9112 §9.3.1);
    /// a client that reuses only fresher connections never meets that instant. Without
    /// this, the pool's spare connections (opened when all were busy, then left idle at
    /// the bottom of its stack) made that race, once in ~5,000 requests in CI.
    pub fn keep_alive(c: &Cluster, concurrency: usize) -> Load {
        Load::start_opts(c, concurrency, "/api/health", None, true)
    }

    fn start_opts(
        c: &Cluster,
        concurrency: usize,
        path: &str,
        token: Option<String>,
        keep_alive: bool,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let url = c.url(path);
        let builder = c.client_builder();
        let (s, o, f, e) = (stop.clone(), ok.clone(), failed.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let client = if keep_alive {
                    builder
                        .pool_max_idle_per_host(64)
                        .pool_idle_timeout(Duration::from_millis(500))
                } else {
                    builder.pool_max_idle_per_host(0)
                }
                .build()
                .unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let workers = (0..concurrency).map(|_| {
                    let (client, url, token) = (client.clone(), url.clone(), token.clone());
                    let (s, o, f, e) = (s.clone(), o.clone(), f.clone(), e.clone());
                    async move {
                        while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                            let mut request = client.get(&url);
                            if let Some(token) = &token {
                                request = request.bearer_auth(token);
                            }
                            match request.send().await {
                                Ok(r) if r.status() == 200 => {
                                    o.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(r) => {
                                    f.fetch_add(1, Ordering::Relaxed);
                                    e.lock().unwrap().push(format!("status {}", r.status()));
                                }
                                Err(err) => {
                                    f.fetch_add(1, Ordering::Relaxed);
                                    e.lock().unwrap().push(error_chain(&err));
                                }
                            }
                        }
                    }
                });
                futures_util::future::join_all(workers).await;
            });
        });
        Load {
            stop,
            ok,
            failed,
            errors,
            handle: Some(handle),
        }
    }

    /// Stops the loop and asserts that at least `min_ok` requests succeeded and none
    /// failed `during` what it measured ("the rollout").
    pub fn assert_none_failed(self, min_ok: usize, during: &str) {
        let (ok, failed, errors) = self.finish();
        assert!(ok >= min_ok, "the load loop ran only {ok} requests");
        assert_eq!(
            failed,
            0,
            "{failed} of {} requests failed during {during}: {errors:?}",
            ok + failed
        );
    }

    /// Stops the loop; (succeeded, failed, first errors).
    pub fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        let errors = self
            .errors
            .lock()
            .unwrap()
            .iter()
            .take(5)
            .cloned()
            .collect();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

/// Rows of tab-separated fields from psql inside the cluster's PostgreSQL container
/// (`database` = `pgbouncer` and `container` = the pooler's for PgBouncer's console).
pub fn psql(c: &Cluster, container: &str, database: &str, sql: &str) -> Vec<Vec<String>> {
    let password =
        std::fs::read_to_string(c.dir.path().join(".deployer/secrets/db_password")).unwrap();
    c.rt.block_on(async {
        let engine = deployer::target::docker::engine::Engine::connect()
            .await
            .unwrap();
        let (code, out) = engine
            .exec(
                container,
                &[
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "app",
                    "-d",
                    database,
                    "-XAtq",
                    "-F",
                    "\t",
                    "-c",
                    sql,
                ],
                None,
                &[format!("PGPASSWORD={}", password.trim())],
            )
            .await
            .unwrap();
        assert_eq!(code, 0, "psql in {container}: {out}");
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    })
}

/// Signs up a user through the balancer and returns a token for it.
pub fn token(c: &Cluster, who: &str) -> String {
    c.rt.block_on(async {
        let client = c.client();
        let password = "pooler-e2e-password";
        let email = format!("{who}-{}@example.com", std::process::id());
        let r = client
            .post(c.url("/api/users"))
            .json(&json!({"email": email, "full_name": who, "password": password, "password_confirmation": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = client
            .post(c.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["data"]["access_token"].as_str().unwrap().to_string()
    })
}

/// The multi-host lab (`scripts/swarm-lab`): its variables, read once from
/// `scripts/swarm-lab env`. Fails (never skips) when no lab runs: `scripts/test`
/// brings it up.
pub struct Lab {
    vars: std::collections::HashMap<String, String>,
}

impl Lab {
    pub fn get() -> &'static Lab {
        static LAB: OnceLock<Lab> = OnceLock::new();
        LAB.get_or_init(|| {
            require_docker();
            let out = std::process::Command::new(repo().join("scripts/swarm-lab"))
                .arg("env")
                .output()
                .expect("scripts/swarm-lab runs");
            assert!(
                out.status.success(),
                "no swarm lab answers (`scripts/swarm-lab env`: {}): run `scripts/swarm-lab up` (scripts/test does)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            let vars = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches(|c| c == '"' || c == '\'').to_string()))
                .collect();
            let lab = Lab { vars };
            lab.push_app_image();
            lab
        })
    }

    pub fn var(&self, key: &str) -> String {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("`scripts/swarm-lab env` has no {key}"))
            .clone()
    }

    /// Where this machine reaches `host`'s `port`
    /// (`SWARM_LAB_PORTS`: `host1:4000-4009=127.0.0.1:14000-14009 …`).
    pub fn reach(&self, host: &str, port: u16) -> String {
        for m in self.var("SWARM_LAB_PORTS").split_whitespace() {
            let Some((inside, outside)) = m.split_once('=') else {
                continue;
            };
            let Some((h, range)) = inside.split_once(':') else {
                continue;
            };
            let first = |r: &str| r.split('-').next().and_then(|p| p.parse::<u16>().ok());
            let (Some(lo), Some((ip, out))) = (first(range), outside.rsplit_once(':')) else {
                continue;
            };
            if h == host && port >= lo && port < lo + 10 {
                return format!("{ip}:{}", first(out).unwrap() + (port - lo));
            }
        }
        panic!("the lab publishes no port {port} of {host}");
    }

    /// The app image in the lab's registry, pushed by the deployer's own push
    /// (what `deployer build` does for a swarm).
    fn push_app_image(&self) {
        ensure_images();
        let registry = self.var("SWARM_LAB_REGISTRY");
        runtime().block_on(async {
            let engine = deployer::target::docker::engine::Engine::connect()
                .await
                .unwrap();
            deployer::build::push(&engine, "deployer-app:latest", &registry)
                .await
                .expect("pushing the app image to the lab's registry");
        });
    }

    /// `scripts/swarm-lab kill|start HOST`.
    pub fn host(&self, action: &str, host: &str) {
        let out = std::process::Command::new(repo().join("scripts/swarm-lab"))
            .args([action, host])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "swarm-lab {action} {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An error with its causes, `a: b: c` (reqwest's own message names only the URL).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
