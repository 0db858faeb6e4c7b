//! Shared harness for the end-to-end tests: a real cluster on the real Docker
//! engine, with a unique name and a free port, destroyed when the test ends even
//! if it fails.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use deployer::cli::{ApplyArgs, DestroyArgs, Outcome};

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
        let mut missing = Vec::new();
        for image in [spec.app.image.as_str(), spec.database.image.as_str(), spec.balancer.image.as_str(), "redis:7.0-bookworm"] {
            let ok = std::process::Command::new("docker")
                .args(["image", "inspect", image])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !ok {
                missing.push(image.to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "missing images {missing:?}: run scripts/test (it runs scripts/build-images.sh and `deployer build` first)"
        );
    });
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
    pub port: u16,
    pub rt: tokio::runtime::Runtime,
}

impl Cluster {
    /// `extra` is appended to the example with the name and port replaced.
    pub fn new(tag: &str) -> Cluster {
        require_docker();
        ensure_images();
        let name = format!("e2e-{tag}-{}", std::process::id() % 100_000);
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster {
            dir,
            name,
            port,
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
        std::fs::write(self.file(), edit(toml)).unwrap();
    }

    pub fn apply(&self) -> anyhow::Result<Outcome> {
        self.rt.block_on(deployer::ops::apply_cmd(
            &self.file(),
            &ApplyArgs { yes: true },
        ))
    }

    pub fn plan(&self) -> deployer::plan::Plan {
        self.rt.block_on(async {
            let s = deployer::ops::prepare(&self.file(), false)
                .await
                .unwrap()
                .expect("valid cluster file");
            deployer::plan::plan(&s.desired, &s.observed)
        })
    }

    pub fn observe(&self) -> deployer::observe::Observed {
        self.rt.block_on(async {
            let engine = deployer::engine::Engine::connect().await.unwrap();
            let names = deployer::names::Names {
                cluster: self.name.clone(),
            };
            deployer::observe::observe(&engine, &names).await.unwrap()
        })
    }

    /// name → container id of every container of the cluster.
    pub fn container_ids(&self) -> Vec<(String, String)> {
        self.observe()
            .containers
            .into_iter()
            .map(|c| (c.name, c.id))
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A client without connection reuse: each request is a new connection.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    pub fn destroy(&self) {
        let _ = self.rt.block_on(deployer::ops::destroy_cmd(
            &self.file(),
            &DestroyArgs {
                volumes: true,
                yes: true,
            },
        ));
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
