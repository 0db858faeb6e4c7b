//! The node contract: the one description of what an app node is given.
//!
//! The deployer starts app nodes and hands each one its settings through environment
//! variables and secret files; the node reads them back at startup. Both sides use this
//! crate, so a variable's name, which variables the deployer sets, where the secrets live,
//! how the node's health is probed and how it is stopped are written down exactly once:
//!
//! - [`var`] and [`VARS`]: every environment variable the node reads, whether it is
//!   required and whether the deployer sets it; [`reserved`] is what `[app.env]` may not set.
//! - [`Secret`]: the secret files under [`SECRETS_DIR`] and the `*_FILE` variables naming them.
//! - [`HealthCheck`]: the node's readiness probe.
//! - [`NodeContract`]: everything one node is given, and the exact environment it gets.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The name of every environment variable the node reads.
pub mod var {
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const DATABASE_DIRECT_URL: &str = "DATABASE_DIRECT_URL";
    pub const DATABASE_PASSWORD_FILE: &str = "DATABASE_PASSWORD_FILE";
    pub const DATABASE_POOL_SIZE: &str = "DATABASE_POOL_SIZE";
    pub const NODE_NAME: &str = "NODE_NAME";
    pub const PORT: &str = "PORT";
    pub const JWT_SECRET: &str = "JWT_SECRET";
    pub const JWT_SECRET_FILE: &str = "JWT_SECRET_FILE";
    pub const JWT_TTL_SECS: &str = "JWT_TTL_SECS";
    pub const JWT_ISSUER: &str = "JWT_ISSUER";
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const RUST_LOG: &str = "RUST_LOG";
    pub const JOB_WORKERS: &str = "JOB_WORKERS";
    pub const JOB_LEASE_SECS: &str = "JOB_LEASE_SECS";
    pub const JOB_POLL_INTERVAL_MS: &str = "JOB_POLL_INTERVAL_MS";
    pub const JOB_BACKOFF_BASE_MS: &str = "JOB_BACKOFF_BASE_MS";
    pub const JOB_RETENTION_HOURS: &str = "JOB_RETENTION_HOURS";
    pub const ARGON2_MEMORY_KIB: &str = "ARGON2_MEMORY_KIB";
    pub const ARGON2_ITERATIONS: &str = "ARGON2_ITERATIONS";
    pub const ARGON2_PARALLELISM: &str = "ARGON2_PARALLELISM";
    pub const PASSWORD_HASH_CONCURRENCY: &str = "PASSWORD_HASH_CONCURRENCY";
    pub const LOGIN_MAX_FAILURES: &str = "LOGIN_MAX_FAILURES";
    pub const LOGIN_FAILURE_WINDOW_SECS: &str = "LOGIN_FAILURE_WINDOW_SECS";
    pub const SHUTDOWN_TIMEOUT_SECS: &str = "SHUTDOWN_TIMEOUT_SECS";
    pub const SHUTDOWN_DELAY_SECS: &str = "SHUTDOWN_DELAY_SECS";
    pub const JOB_TEST_KINDS: &str = "JOB_TEST_KINDS";
    pub const JOB_SCHEDULE_HORIZON_DAYS: &str = "JOB_SCHEDULE_HORIZON_DAYS";
    pub const SIGNUP_MAX_PER_WINDOW: &str = "SIGNUP_MAX_PER_WINDOW";
    pub const SIGNUP_WINDOW_SECS: &str = "SIGNUP_WINDOW_SECS";
    pub const PASSWORD_HASH_QUEUE: &str = "PASSWORD_HASH_QUEUE";
    pub const REQUEST_TIMEOUT_SECS: &str = "REQUEST_TIMEOUT_SECS";
}

/// One environment variable the node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Var {
    pub name: &'static str,
    /// The node refuses to start without it. (Groups where any one member will do are in
    /// [`REQUIRED_ONE_OF`]; their members are `required: false`.)
    pub required: bool,
    /// The deployer sets it on every node (`REDIS_URL` only when Redis is configured).
    pub set_by_deployer: bool,
    pub doc: &'static str,
}

const fn v(name: &'static str, required: bool, set_by_deployer: bool, doc: &'static str) -> Var {
    Var {
        name,
        required,
        set_by_deployer,
        doc,
    }
}

/// Every environment variable the node reads.
pub const VARS: &[Var] = &[
    v(
        var::DATABASE_URL,
        true,
        true,
        "PostgreSQL URL without the password: postgres://user@host:5432/db",
    ),
    v(
        var::DATABASE_DIRECT_URL,
        false,
        true,
        "PostgreSQL itself, bypassing a pooler, for what needs a session of its own (the job queue's LISTEN, the migration lock); unset: DATABASE_URL (the deployer sets it when [database] pooler is on, and DATABASE_URL then names the pooler)",
    ),
    v(
        var::DATABASE_PASSWORD_FILE,
        false,
        true,
        "file holding the database password (a trailing newline is dropped)",
    ),
    v(
        var::DATABASE_POOL_SIZE,
        false,
        true,
        "the node's pool maximum, at least 1 (default 10); the node opens one more connection for LISTEN",
    ),
    v(
        var::NODE_NAME,
        false,
        true,
        "the node's name, also its PostgreSQL application_name: at most 63 letters, digits, `-`, `_` or `.` (default `app`)",
    ),
    v(var::PORT, false, true, "the HTTP port (default 4000)"),
    v(
        var::JWT_SECRET,
        false,
        false,
        "the JWT signing key itself, at least 32 bytes; only when JWT_SECRET_FILE is unset (the deployer never passes a secret as plain env)",
    ),
    v(
        var::JWT_SECRET_FILE,
        false,
        true,
        "file holding the JWT signing key, at least 32 bytes (a trailing newline is dropped); wins over JWT_SECRET",
    ),
    v(
        var::JWT_TTL_SECS,
        false,
        false,
        "lifetime of an issued token in seconds (default 900)",
    ),
    v(var::JWT_ISSUER, false, false, "the tokens' issuer (default `app`)"),
    v(
        var::REDIS_URL,
        false,
        true,
        "Redis URL; unset means no Redis (the deployer sets it when Redis is configured)",
    ),
    v(
        var::REDIS_KEY_PREFIX,
        false,
        false,
        "prefix of every Redis key, so clusters can share one Redis (default `app`)",
    ),
    v(
        var::LOG_FORMAT,
        false,
        true,
        "`json` (default) or `text`",
    ),
    v(
        var::RUST_LOG,
        false,
        false,
        "the log filter (default `info`); read by the logger, not the settings",
    ),
    v(
        var::JOB_WORKERS,
        false,
        true,
        "how many jobs the node runs at once (default 4)",
    ),
    v(
        var::JOB_LEASE_SECS,
        false,
        false,
        "a running job's lease without a heartbeat, in seconds (default 8; renewed every quarter of it)",
    ),
    v(
        var::JOB_POLL_INTERVAL_MS,
        false,
        false,
        "the job queue's fallback poll in milliseconds (default 1000)",
    ),
    v(
        var::JOB_BACKOFF_BASE_MS,
        false,
        false,
        "retry backoff base in milliseconds (default 2000)",
    ),
    v(
        var::JOB_RETENTION_HOURS,
        false,
        false,
        "how long finished jobs and outbox emails are kept, in hours, fractions allowed (default 168)",
    ),
    v(
        var::ARGON2_MEMORY_KIB,
        false,
        false,
        "argon2id memory in KiB (default 19456)",
    ),
    v(
        var::ARGON2_ITERATIONS,
        false,
        false,
        "argon2id iterations (default 2)",
    ),
    v(
        var::ARGON2_PARALLELISM,
        false,
        false,
        "argon2id lanes (default 1)",
    ),
    v(
        var::PASSWORD_HASH_CONCURRENCY,
        false,
        false,
        "how many password hashes run at once (default: the available cores)",
    ),
    v(
        var::LOGIN_MAX_FAILURES,
        false,
        false,
        "login attempts per email and client address per window, counted before the password check; a success clears them (default 10)",
    ),
    v(
        var::LOGIN_FAILURE_WINDOW_SECS,
        false,
        false,
        "the failed-login window in seconds (default 300)",
    ),
    v(
        var::SHUTDOWN_TIMEOUT_SECS,
        false,
        true,
        "how long a stopping node drains before it exits, in seconds (default 20)",
    ),
    v(
        var::SHUTDOWN_DELAY_SECS,
        false,
        true,
        "how long a node keeps serving as usual after the stop signal, before it drains, in seconds: the time its removal from service discovery takes to reach the balancer (default 0; set on a swarm, where the engine, not the deployer, takes a task out)",
    ),
    v(
        var::JOB_TEST_KINDS,
        false,
        false,
        "`true` lets clients enqueue the test job kinds `sleep` and `fail` (default `false`); for tests and benchmarks, never production",
    ),
    v(
        var::JOB_SCHEDULE_HORIZON_DAYS,
        false,
        false,
        "how far ahead a client may schedule a job, in days (default 30)",
    ),
    v(
        var::SIGNUP_MAX_PER_WINDOW,
        false,
        false,
        "sign-ups allowed per client address per window (default 20)",
    ),
    v(
        var::SIGNUP_WINDOW_SECS,
        false,
        false,
        "the sign-up window in seconds (default 600)",
    ),
    v(
        var::PASSWORD_HASH_QUEUE,
        false,
        false,
        "password hashes that may wait for a free hashing slot; beyond that a login or sign-up gets 503 with Retry-After (default 64)",
    ),
    v(
        var::REQUEST_TIMEOUT_SECS,
        false,
        false,
        "a request that takes longer gets 503 `timeout`, in seconds (default 15, below the balancer's read timeout)",
    ),
];

/// Groups of variables of which at least one must be set, or the node refuses to start:
/// the JWT signing key comes from `JWT_SECRET_FILE` (preferred) or `JWT_SECRET`.
pub const REQUIRED_ONE_OF: &[&[&str]] = &[&[var::JWT_SECRET_FILE, var::JWT_SECRET]];

/// The table entry for `name`, if the node reads it.
pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|var| var.name == name)
}

/// The names `[app.env]` may not set: every variable the deployer sets, plus `JWT_SECRET`
/// (a secret is never passed as plain env).
pub fn reserved() -> impl Iterator<Item = &'static str> {
    VARS.iter()
        .filter(|var| var.set_by_deployer)
        .map(|var| var.name)
        .chain([var::JWT_SECRET])
}

/// The lowest port a node may listen on: it runs as a non-root user.
pub const APP_PORT_MIN: u16 = 1024;

/// The user and group a node runs as (the image's `app` user).
pub const NODE_USER: (u32, u32) = (10001, 10001);

/// The signal that asks a node to drain and exit.
pub const STOP_SIGNAL: &str = "SIGTERM";

/// Where secret files are mounted in a node's container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// A secret a node reads from a file under [`SECRETS_DIR`], never from plain env.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    DatabasePassword,
    JwtSecret,
}

impl Secret {
    /// Every secret, in the order their `*_FILE` variables are set.
    pub const ALL: [Secret; 2] = [Secret::DatabasePassword, Secret::JwtSecret];

    /// The file's name under [`SECRETS_DIR`].
    pub const fn file_name(self) -> &'static str {
        match self {
            Secret::DatabasePassword => "db_password",
            Secret::JwtSecret => "jwt_secret",
        }
    }

    /// The file's path in the container: [`SECRETS_DIR`]/[`file_name`](Self::file_name).
    pub const fn path(self) -> &'static str {
        match self {
            Secret::DatabasePassword => "/run/secrets/db_password",
            Secret::JwtSecret => "/run/secrets/jwt_secret",
        }
    }

    /// The variable that tells the node where the file is.
    pub const fn env_var(self) -> &'static str {
        match self {
            Secret::DatabasePassword => var::DATABASE_PASSWORD_FILE,
            Secret::JwtSecret => var::JWT_SECRET_FILE,
        }
    }
}

/// How the node writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines (the default).
    #[default]
    Json,
    Text,
}

impl LogFormat {
    /// The value of `LOG_FORMAT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }

    /// `json` or `text`, exactly; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        }
    }
}

/// A node's container health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// The HTTP path that answers 200 when the node is ready.
    pub path: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    pub retries: u32,
    pub start_period: Duration,
}

impl HealthCheck {
    /// The node's check: ready means the database answers.
    pub const fn node() -> Self {
        Self {
            path: "/api/ready",
            // Each check is an exec in the container (~60 ms of CPU between runc, containerd
            // and dockerd): every second, that is a fifth of a 2-core machine at 5 nodes.
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }

    /// The container's test command for a node listening on `port`.
    pub fn command(&self, port: u16) -> Vec<String> {
        vec![
            "CMD".into(),
            "bash".into(),
            "-c".into(),
            probe_script(port, self.path),
        ]
    }
}

/// A shell probe (bash's /dev/tcp: no curl in slim images) that succeeds when
/// `GET path` on the local port answers 200.
pub fn probe_script(port: u16, path: &str) -> String {
    format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"
    )
}

/// How long a node drains when it is given `stop_grace` between SIGTERM and SIGKILL:
/// two seconds less, so it exits on its own, but at least one second.
pub fn shutdown_timeout_for(stop_grace: Duration) -> Duration {
    Duration::from_secs(stop_grace.as_secs().saturating_sub(2).max(1))
}

/// Everything one node is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeContract {
    pub node_name: String,
    pub port: u16,
    /// The PostgreSQL URL without the password (that comes from [`Secret::DatabasePassword`]):
    /// the pooler when there is one. Every query goes through it.
    pub database_url: String,
    /// PostgreSQL itself when `database_url` names a pooler: for the connections that
    /// need a session of their own (LISTEN, the migration's advisory lock).
    pub database_direct_url: Option<String>,
    pub pool_size: u32,
    pub job_workers: u32,
    pub log_format: LogFormat,
    pub shutdown_timeout: Duration,
    /// How long the node keeps serving after the stop signal before it drains (zero: not set).
    pub shutdown_delay: Duration,
    pub redis_url: Option<String>,
    /// `[app.env]`: extra variables, set after the deployer's own. Names in [`reserved`]
    /// must have been refused before they get here.
    pub extra_env: BTreeMap<String, String>,
    /// The secret files mounted for the node; each sets its `*_FILE` variable.
    pub secrets: Vec<Secret>,
    pub health: HealthCheck,
    /// [`STOP_SIGNAL`].
    pub stop_signal: &'static str,
    /// Time between the stop signal and SIGKILL.
    pub stop_grace: Duration,
    /// User and group ids ([`NODE_USER`]).
    pub user: (u32, u32),
}

impl NodeContract {
    /// The node's environment, in order: `DATABASE_URL`, `DATABASE_DIRECT_URL` when set,
    /// the secrets' `*_FILE` variables
    /// (in [`Secret::ALL`] order), `DATABASE_POOL_SIZE`, `NODE_NAME`, `PORT`, `JOB_WORKERS`,
    /// `LOG_FORMAT`, `SHUTDOWN_TIMEOUT_SECS`, `SHUTDOWN_DELAY_SECS` when not zero, then
    /// `REDIS_URL` when set, then
    /// [`extra_env`](Self::extra_env) in key order.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(var::DATABASE_URL.to_owned(), self.database_url.clone())];
        if let Some(url) = &self.database_direct_url {
            env.push((var::DATABASE_DIRECT_URL.to_owned(), url.clone()));
        }
        env.extend(
            Secret::ALL
                .into_iter()
                .filter(|secret| self.secrets.contains(secret))
                .map(|secret| (secret.env_var().to_owned(), secret.path().to_owned())),
        );
        env.extend([
            (
                var::DATABASE_POOL_SIZE.to_owned(),
                self.pool_size.to_string(),
            ),
            (var::NODE_NAME.to_owned(), self.node_name.clone()),
            (var::PORT.to_owned(), self.port.to_string()),
            (var::JOB_WORKERS.to_owned(), self.job_workers.to_string()),
            (
                var::LOG_FORMAT.to_owned(),
                self.log_format.as_str().to_owned(),
            ),
            (
                var::SHUTDOWN_TIMEOUT_SECS.to_owned(),
                self.shutdown_timeout.as_secs().to_string(),
            ),
        ]);
        if !self.shutdown_delay.is_zero() {
            env.push((
                var::SHUTDOWN_DELAY_SECS.to_owned(),
                self.shutdown_delay.as_secs().to_string(),
            ));
        }
        if let Some(url) = &self.redis_url {
            env.push((var::REDIS_URL.to_owned(), url.clone()));
        }
        env.extend(
            self.extra_env
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        env
    }

    /// The user as Docker takes it: `uid:gid`.
    pub fn user_spec(&self) -> String {
        format!("{}:{}", self.user.0, self.user.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeContract {
        NodeContract {
            node_name: "demo-app-2".into(),
            port: 4000,
            database_url: "postgres://app@demo-pooler:5432/app".into(),
            database_direct_url: Some("postgres://app@demo-postgres:5432/app".into()),
            pool_size: 7,
            job_workers: 3,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(13),
            shutdown_delay: Duration::from_secs(2),
            redis_url: Some("redis://demo-redis:6379".into()),
            extra_env: BTreeMap::from([
                ("ZED".to_owned(), "last".to_owned()),
                ("JWT_TTL_SECS".to_owned(), "60".to_owned()),
            ]),
            secrets: vec![Secret::JwtSecret, Secret::DatabasePassword],
            health: HealthCheck::node(),
            stop_signal: STOP_SIGNAL,
            stop_grace: Duration::from_secs(15),
            user: NODE_USER,
        }
    }

    fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn env_is_the_deployers_order_and_values() {
        let env = sample().env();
        assert_eq!(
            pairs(&env),
            [
                ("DATABASE_URL", "postgres://app@demo-pooler:5432/app"),
                (
                    "DATABASE_DIRECT_URL",
                    "postgres://app@demo-postgres:5432/app"
                ),
                ("DATABASE_PASSWORD_FILE", "/run/secrets/db_password"),
                ("JWT_SECRET_FILE", "/run/secrets/jwt_secret"),
                ("DATABASE_POOL_SIZE", "7"),
                ("NODE_NAME", "demo-app-2"),
                ("PORT", "4000"),
                ("JOB_WORKERS", "3"),
                ("LOG_FORMAT", "text"),
                ("SHUTDOWN_TIMEOUT_SECS", "13"),
                ("SHUTDOWN_DELAY_SECS", "2"),
                ("REDIS_URL", "redis://demo-redis:6379"),
                ("JWT_TTL_SECS", "60"),
                ("ZED", "last"),
            ]
        );
    }

    #[test]
    fn env_without_redis_or_secrets_leaves_them_out() {
        let mut contract = sample();
        contract.redis_url = None;
        contract.database_direct_url = None;
        contract.secrets = vec![Secret::JwtSecret];
        contract.extra_env.clear();
        contract.shutdown_delay = Duration::ZERO;
        let env = contract.env();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "DATABASE_URL",
                "JWT_SECRET_FILE",
                "DATABASE_POOL_SIZE",
                "NODE_NAME",
                "PORT",
                "JOB_WORKERS",
                "LOG_FORMAT",
                "SHUTDOWN_TIMEOUT_SECS",
            ]
        );
    }

    #[test]
    fn every_var_the_deployer_sets_is_in_a_full_env() {
        let env = sample().env();
        for var in VARS.iter().filter(|var| var.set_by_deployer) {
            assert!(
                env.iter().any(|(name, _)| name == var.name),
                "{} is set_by_deployer but env() does not set it",
                var.name
            );
        }
        for (name, _) in env.iter().filter(|(name, _)| lookup(name).is_some()) {
            let var = lookup(name).unwrap();
            assert!(
                var.set_by_deployer || sample().extra_env.contains_key(name),
                "env() sets {name}, which the table says the deployer does not set"
            );
        }
    }

    #[test]
    fn reserved_is_every_deployer_var_and_jwt_secret() {
        let reserved: Vec<&str> = reserved().collect();
        for var in VARS.iter().filter(|var| var.set_by_deployer) {
            assert!(reserved.contains(&var.name), "{} not reserved", var.name);
        }
        assert!(reserved.contains(&var::JWT_SECRET));
        for name in [
            "DATABASE_URL",
            "DATABASE_DIRECT_URL",
            "DATABASE_PASSWORD_FILE",
            "DATABASE_POOL_SIZE",
            "NODE_NAME",
            "PORT",
            "JWT_SECRET",
            "JWT_SECRET_FILE",
            "REDIS_URL",
            "LOG_FORMAT",
            "JOB_WORKERS",
            "SHUTDOWN_TIMEOUT_SECS",
        ] {
            assert!(reserved.contains(&name), "{name} not reserved");
        }
        assert!(!reserved.contains(&var::RUST_LOG));
        assert!(!reserved.contains(&var::JWT_TTL_SECS));
    }

    #[test]
    fn table_names_are_unique_and_required_groups_are_in_it() {
        for (i, var) in VARS.iter().enumerate() {
            assert!(
                VARS[i + 1..].iter().all(|other| other.name != var.name),
                "{} twice",
                var.name
            );
            assert!(!var.doc.is_empty(), "{} has no doc", var.name);
        }
        let required: Vec<&str> = VARS.iter().filter(|v| v.required).map(|v| v.name).collect();
        assert_eq!(required, [var::DATABASE_URL]);
        for group in REQUIRED_ONE_OF {
            for name in *group {
                let var = lookup(name).unwrap_or_else(|| panic!("{name} not in VARS"));
                assert!(!var.required, "{name} is in a one-of group and required");
            }
        }
    }

    #[test]
    fn secrets_live_under_the_secrets_dir() {
        for secret in Secret::ALL {
            assert_eq!(
                secret.path(),
                format!("{SECRETS_DIR}/{}", secret.file_name())
            );
            assert!(lookup(secret.env_var()).is_some_and(|var| var.set_by_deployer));
        }
        assert_eq!(Secret::DatabasePassword.env_var(), "DATABASE_PASSWORD_FILE");
        assert_eq!(Secret::JwtSecret.env_var(), "JWT_SECRET_FILE");
    }

    #[test]
    fn probe_script_is_byte_identical() {
        assert_eq!(
            probe_script(4000, "/api/ready"),
            r"exec 3<>/dev/tcp/127.0.0.1/4000 && printf 'GET /api/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '"
        );
        let health = HealthCheck::node();
        assert_eq!(
            health.command(8080),
            ["CMD", "bash", "-c", &probe_script(8080, "/api/ready")]
        );
        assert_eq!(health.interval, Duration::from_secs(5));
        assert_eq!(health.timeout, Duration::from_secs(3));
        assert_eq!(health.retries, 3);
        assert_eq!(health.start_period, Duration::ZERO);
    }

    #[test]
    fn log_format_round_trips() {
        for format in [LogFormat::Json, LogFormat::Text] {
            assert_eq!(LogFormat::parse(format.as_str()), Some(format));
        }
        assert_eq!(LogFormat::parse("JSON"), None);
        assert_eq!(LogFormat::parse("xml"), None);
        assert_eq!(LogFormat::default(), LogFormat::Json);
    }

    #[test]
    fn shutdown_timeout_leaves_two_seconds_of_grace() {
        assert_eq!(
            shutdown_timeout_for(Duration::from_secs(22)),
            Duration::from_secs(20)
        );
        assert_eq!(
            shutdown_timeout_for(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(sample().user_spec(), "10001:10001");
    }
}
