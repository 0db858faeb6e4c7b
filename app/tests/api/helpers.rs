//! `spawn_app()` and `TestApp`: a node on port 0 over a fresh database that is dropped afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app::config::{
    DatabaseSettings, JobSettings, JwtSettings, LogFormat, LoginLimitSettings, PasswordSettings,
    RedisSettings, Settings, SignupLimitSettings,
};
use app::startup::Application;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::infra::infra;

pub const JWT_SECRET: &[u8] = b"test-signing-key-of-more-than-32-bytes!";
pub const PASSWORD: &str = "correct horse battery";

/// A database created for one test and dropped when the last `TestApp` on it is dropped.
pub struct TestDatabase {
    pub name: String,
    pub options: PgConnectOptions,
    /// The test's own pool, for looking at rows.
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn create() -> Arc<Self> {
        let database = Self::create_empty().await;
        app::db::migrate_with(&database.options)
            .await
            .expect("failed to migrate the test database");
        database
    }

    /// A database with no tables yet.
    pub async fn create_empty() -> Arc<Self> {
        let admin = infra().admin.clone();
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut connection = PgConnection::connect_with(&admin)
            .await
            .expect("failed to connect to the test PostgreSQL");
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut connection)
            .await
            .expect("failed to create the test database");
        let _ = connection.close().await;
        let options = admin.database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.clone().application_name("test-harness"));
        Arc::new(Self {
            name,
            options,
            pool,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = infra().admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut connection = PgConnection::connect_with(&admin).await?;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .execute(&mut connection)
                    .await?;
                connection.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: failed to drop test database {}", self.name);
        }
    }
}

/// A running node.
pub struct TestApp {
    pub address: String,
    pub node: String,
    pub db: Arc<TestDatabase>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

static NODES: AtomicUsize = AtomicUsize::new(0);

/// Settings for a test node on `database`: cheap argon2, short leases, fast polling.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let node = format!(
        "test-node-{}-{}",
        std::process::id(),
        NODES.fetch_add(1, Ordering::Relaxed)
    );
    Settings {
        database: DatabaseSettings {
            connect_options: database.options.clone(),
            direct_options: None,
            pool_size: 5,
        },
        node_name: node,
        port: 0,
        jwt: JwtSettings {
            secret: JWT_SECRET.to_vec(),
            ttl: Duration::from_secs(900),
            issuer: "app".into(),
        },
        redis: None,
        log_format: LogFormat::Text,
        jobs: JobSettings {
            workers: 4,
            lease: Duration::from_secs(2),
            poll_interval: Duration::from_millis(200),
            backoff_base: Duration::from_millis(50),
            retention: Duration::from_secs(3600),
            // The tests run the test kinds; tests of the flag itself turn it off.
            test_kinds: true,
            schedule_horizon: Duration::from_secs(30 * 86_400),
        },
        passwords: PasswordSettings::insecure_fast(),
        login_limit: LoginLimitSettings {
            max_failures: 10,
            window: Duration::from_secs(300),
        },
        signup_limit: SignupLimitSettings {
            max_per_window: 1000,
            window: Duration::from_secs(600),
        },
        shutdown_timeout: Duration::from_secs(5),
        shutdown_delay: Duration::ZERO,
        request_timeout: Duration::from_secs(15),
        body_limit: 64 * 1024,
    }
}

/// Redis settings with a key prefix of its own, so tests sharing the server do not collide.
pub fn test_redis(prefix: &str) -> RedisSettings {
    RedisSettings {
        url: infra().redis_url.clone(),
        key_prefix: prefix.to_owned(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::create().await;
    TestApp::spawn_on(database, configure).await
}

impl TestApp {
    pub async fn spawn_on(db: Arc<TestDatabase>, configure: impl FnOnce(&mut Settings)) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            app::telemetry::init_tracing(LogFormat::Text);
        }
        let mut settings = test_settings(&db);
        configure(&mut settings);
        settings.database.connect_options = settings
            .database
            .connect_options
            .clone()
            .application_name(&settings.node_name);
        settings.database.direct_options = settings
            .database
            .direct_options
            .take()
            .map(|o| o.application_name(&settings.node_name));
        let application = Application::build(settings.clone())
            .await
            .expect("failed to build the app");
        let address = format!("http://127.0.0.1:{}", application.port());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            node: settings.node_name.clone(),
            db,
            client: reqwest::Client::new(),
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Another node on the same database.
    pub async fn spawn_peer(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(Arc::clone(&self.db), configure).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.take().expect("running")
    }

    /// Kills the node: its tasks stop where they are, nothing is handed back.
    pub async fn kill(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request failed")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request failed")
    }

    pub async fn post_user(&self, body: &Value) -> reqwest::Response {
        self.post_json("/api/users", body).await
    }

    /// Signs up a user and returns its JSON.
    pub async fn sign_up(&self, email: &str) -> Value {
        let response = self
            .post_user(&json!({
                "email": email,
                "full_name": "Test User",
                "password": PASSWORD,
                "password_confirmation": PASSWORD,
            }))
            .await;
        assert_eq!(response.status(), 201, "sign-up failed");
        response.json::<Value>().await.unwrap()["data"].clone()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs up a fresh user and returns a token for it.
    pub async fn token(&self) -> String {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        self.sign_up(&email).await;
        self.token_for(&email).await
    }

    /// Signs up a fresh user, makes it an admin the way an operator does (`app admin grant`)
    /// and returns a token for it.
    pub async fn admin_token(&self) -> String {
        let email = format!("admin-{}@example.com", Uuid::new_v4().simple());
        self.sign_up(&email).await;
        let granted = app::db::set_role(self.pool(), &email, app::auth::Role::Admin)
            .await
            .unwrap();
        assert!(granted);
        self.token_for(&email).await
    }

    pub async fn token_for(&self, email: &str) -> String {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200, "login failed");
        let body: Value = response.json().await.unwrap();
        body["data"]["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn me(&self, token: &str) -> reqwest::Response {
        self.get_authed("/api/auth/me", token).await
    }

    pub async fn post_job(&self, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/jobs"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request failed")
    }

    /// Enqueues a job and returns its (public) id.
    pub async fn enqueue(&self, token: &str, body: &Value) -> Uuid {
        let response = self.post_job(token, body).await;
        assert_eq!(response.status(), 202, "enqueue failed");
        let body: Value = response.json().await.unwrap();
        body["data"]["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn job(&self, token: &str, id: Uuid) -> Value {
        let response = self.get_authed(&format!("/api/jobs/{id}"), token).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["data"].clone()
    }

    /// Polls a job until `done` holds for it, or panics after `within`.
    pub async fn wait_for_job(
        &self,
        token: &str,
        id: Uuid,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.job(token, id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not reach the expected state in {within:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Waits until `condition` holds, polling, or panics after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The URL of a test database (the throwaway server trusts local connections).
pub fn database_url(db: &TestDatabase) -> String {
    let options = &db.options;
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        db.name
    )
}

/// The real `app` binary, started the way the deployer starts a node: the env contract
/// in (a JWT key file, JSON logs, port 0; `env` adds or overrides), its JSON log lines out.
pub struct Binary {
    pub child: std::process::Child,
    /// Every log line, parsed; a line that is not JSON ends the stream with a panic.
    pub lines: std::sync::mpsc::Receiver<Value>,
    /// The port from the `node started` line.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Binary {
    pub fn start(db: &TestDatabase, node: &str, env: &[(&str, &str)]) -> Binary {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("jwt");
        std::fs::write(&secret, "k".repeat(40) + "\n").unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
        command
            .env("DATABASE_URL", database_url(db))
            .env("NODE_NAME", node)
            .env("PORT", "0")
            .env("JWT_SECRET_FILE", &secret)
            .env("LOG_FORMAT", "json")
            .env_remove("JWT_SECRET")
            .env_remove("REDIS_URL");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let parsed = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("a log line that is not JSON: {line}"));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let started = lines
            .iter()
            .find(|line| line["message"] == "node started")
            .expect("a `node started` log line");
        let port = started["port"].as_u64().expect("the port in the log") as u16;
        assert_eq!(started["node"], node);
        Binary {
            child,
            lines,
            port,
            _dir: dir,
        }
    }
}
