//! Settings from the environment the deployer sets. Raw strings are parsed once here into
//! validated settings; nothing past this module sees an unchecked value.

use std::str::FromStr;
use std::time::Duration;

use node_contract::{var, Secret};
use sqlx::postgres::PgConnectOptions;

/// How the node writes its logs: the contract's type, so the deployer and the node agree.
pub use node_contract::LogFormat;

/// A running job's lease when `JOB_LEASE_SECS` is unset. With the heartbeat every quarter of
/// it and the rescuer looking every quarter, a dead node's job runs again about 8–10 s after
/// its last heartbeat; a node has to miss three heartbeats in a row to lose a job.
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(8);

/// The shortest JWT signing key accepted, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("failed to read {name} from {path}")]
    ReadFile {
        name: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no JWT signing key: set {} (preferred) or {} to a key of at least {MIN_JWT_SECRET_LEN} bytes",
        var::JWT_SECRET_FILE,
        var::JWT_SECRET
    )]
    MissingJwtSecret,
    #[error(
        "the JWT signing key from {source_name} is {len} bytes long; it must be at least {MIN_JWT_SECRET_LEN} bytes"
    )]
    ShortJwtSecret {
        source_name: &'static str,
        len: usize,
    },
    #[error(
        "{}/{}/{} is invalid: {error}",
        var::ARGON2_MEMORY_KIB,
        var::ARGON2_ITERATIONS,
        var::ARGON2_PARALLELISM
    )]
    InvalidArgon2Params { error: argon2::Error },
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// `LOG_FORMAT` from the process environment (read before the rest, to log their errors).
pub fn log_format_from_env() -> Result<LogFormat, ConfigError> {
    log_format(&ProcessEnv)
}

/// `LOG_FORMAT`: `json` (the default) or `text`.
pub fn log_format(env: &impl Env) -> Result<LogFormat, ConfigError> {
    match env.get(var::LOG_FORMAT) {
        None => Ok(LogFormat::Json),
        Some(raw) => LogFormat::parse(&raw).ok_or_else(|| ConfigError::Invalid {
            name: var::LOG_FORMAT,
            reason: format!("expected `json` or `text`, got `{raw}`"),
        }),
    }
}

/// How to reach PostgreSQL and how many pool connections a node may open.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Connect options with the password and `application_name` already applied: every
    /// query goes here (a pooler in transaction mode, when there is one).
    pub connect_options: PgConnectOptions,
    /// PostgreSQL itself, bypassing a pooler, for the connections that need a session of
    /// their own: the job queue's LISTEN and the migration's advisory lock. `None`: the
    /// same as `connect_options` (no pooler).
    pub direct_options: Option<PgConnectOptions>,
    /// The pool's maximum, exactly. The node opens one more connection for LISTEN.
    pub pool_size: u32,
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&ProcessEnv)
    }

    /// Where connections that need a session of their own (LISTEN, advisory locks) go.
    pub fn direct(&self) -> &PgConnectOptions {
        self.direct_options
            .as_ref()
            .unwrap_or(&self.connect_options)
    }

    pub fn from_lookup(env: &impl Env) -> Result<Self, ConfigError> {
        let url = env
            .get(var::DATABASE_URL)
            .ok_or(ConfigError::Missing(var::DATABASE_URL))?;
        let parse = |name: &'static str, url: &str| {
            PgConnectOptions::from_str(url).map_err(|error| ConfigError::Invalid {
                name,
                reason: error.to_string(),
            })
        };
        let mut connect_options = parse(var::DATABASE_URL, &url)?;
        let mut direct_options = env
            .get(var::DATABASE_DIRECT_URL)
            .map(|url| parse(var::DATABASE_DIRECT_URL, &url))
            .transpose()?;
        let password_file = Secret::DatabasePassword.env_var();
        if let Some(path) = env.get(password_file) {
            let password = read_secret_file(password_file, &path)?;
            connect_options = connect_options.password(&password);
            direct_options = direct_options.map(|o| o.password(&password));
        }
        let node_name = node_name(env)?;
        let pool_size = parse_or(var::DATABASE_POOL_SIZE, env, 10u32)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: var::DATABASE_POOL_SIZE,
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            connect_options: connect_options.application_name(&node_name),
            direct_options: direct_options.map(|o| o.application_name(&node_name)),
            pool_size,
        })
    }
}

/// Argon2id parameters and how many hashes may run at once.
#[derive(Debug, Clone, Copy)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many hashes or verifications run at once (the blocking pool is bounded by this).
    pub concurrency: usize,
    /// How many may wait for one of those slots; more get a 503 at once.
    pub queue: usize,
}

impl PasswordSettings {
    /// OWASP's recommendation for argon2id: m = 19 MiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            concurrency: default_concurrency(),
            queue: 64,
        }
    }

    /// Cheap parameters for tests: never use these in production.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency: default_concurrency(),
            queue: 64,
        }
    }
}

fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// JWT issuing and validation.
#[derive(Clone)]
pub struct JwtSettings {
    pub secret: Vec<u8>,
    pub ttl: Duration,
    pub issuer: String,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field(
                "secret",
                &format_args!("[{} bytes redacted]", self.secret.len()),
            )
            .field("ttl", &self.ttl)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// The job queue's knobs.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    /// How many jobs a node runs at once.
    pub workers: usize,
    /// How long a running job's lease lasts without a heartbeat before any node rescues it.
    pub lease: Duration,
    /// The fallback poll when no notification arrives (also what picks up scheduled jobs).
    pub poll_interval: Duration,
    /// Retry backoff: base × 2^(attempt − 1), capped at an hour, with jitter.
    pub backoff_base: Duration,
    /// How long completed and discarded jobs are kept before they are pruned.
    pub retention: Duration,
    /// Whether clients may enqueue the test kinds (`sleep`, `fail`).
    pub test_kinds: bool,
    /// How far ahead a client may schedule a job.
    pub schedule_horizon: Duration,
}

/// Failed-login rate limiting.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimitSettings {
    pub max_failures: u32,
    pub window: Duration,
}

/// Sign-ups per client address (each costs a full password hash).
#[derive(Debug, Clone, Copy)]
pub struct SignupLimitSettings {
    pub max_per_window: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix for every key this app writes, so clusters can share one Redis.
    pub key_prefix: String,
}

/// Everything a node needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub node_name: String,
    pub port: u16,
    pub jwt: JwtSettings,
    pub redis: Option<RedisSettings>,
    pub log_format: LogFormat,
    pub jobs: JobSettings,
    pub passwords: PasswordSettings,
    pub login_limit: LoginLimitSettings,
    pub signup_limit: SignupLimitSettings,
    pub shutdown_timeout: Duration,
    /// How long the node keeps serving as usual after the stop signal, before it drains: on a
    /// swarm the engine takes a task out of DNS itself, and the balancer must have asked again.
    pub shutdown_delay: Duration,
    /// A request that takes longer is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&ProcessEnv)
    }

    pub fn from_lookup(env: &impl Env) -> Result<Self, ConfigError> {
        let database = DatabaseSettings::from_lookup(env)?;
        let node_name = node_name(env)?;
        let port = parse_or(var::PORT, env, 4000u16)?;
        let secret = jwt_secret(env)?;
        let jwt = JwtSettings {
            secret,
            ttl: Duration::from_secs(positive(var::JWT_TTL_SECS, env, 900)?),
            issuer: env.get(var::JWT_ISSUER).unwrap_or_else(|| "app".into()),
        };
        let redis = env.get(var::REDIS_URL).map(|url| RedisSettings {
            url,
            key_prefix: env
                .get(var::REDIS_KEY_PREFIX)
                .unwrap_or_else(|| "app".into()),
        });
        let log_format = log_format(env)?;
        let jobs = JobSettings {
            workers: positive(var::JOB_WORKERS, env, 4)? as usize,
            lease: Duration::from_secs(positive(
                var::JOB_LEASE_SECS,
                env,
                DEFAULT_JOB_LEASE.as_secs(),
            )?),
            poll_interval: Duration::from_millis(positive(var::JOB_POLL_INTERVAL_MS, env, 1000)?),
            backoff_base: Duration::from_millis(positive(var::JOB_BACKOFF_BASE_MS, env, 2000)?),
            retention: retention(env)?,
            test_kinds: flag(var::JOB_TEST_KINDS, env)?,
            schedule_horizon: Duration::from_secs(
                86_400 * positive(var::JOB_SCHEDULE_HORIZON_DAYS, env, 30)?,
            ),
        };
        let owasp = PasswordSettings::owasp();
        let passwords = PasswordSettings {
            memory_kib: positive(var::ARGON2_MEMORY_KIB, env, owasp.memory_kib.into())? as u32,
            iterations: positive(var::ARGON2_ITERATIONS, env, owasp.iterations.into())? as u32,
            parallelism: positive(var::ARGON2_PARALLELISM, env, owasp.parallelism.into())? as u32,
            concurrency: positive(
                var::PASSWORD_HASH_CONCURRENCY,
                env,
                owasp.concurrency as u64,
            )? as usize,
            queue: parse_or(var::PASSWORD_HASH_QUEUE, env, owasp.queue)?,
        };
        argon2::Params::new(
            passwords.memory_kib,
            passwords.iterations,
            passwords.parallelism,
            None,
        )
        .map_err(|error| ConfigError::InvalidArgon2Params { error })?;
        let login_limit = LoginLimitSettings {
            max_failures: positive(var::LOGIN_MAX_FAILURES, env, 10)? as u32,
            window: Duration::from_secs(positive(var::LOGIN_FAILURE_WINDOW_SECS, env, 300)?),
        };
        let signup_limit = SignupLimitSettings {
            max_per_window: positive(var::SIGNUP_MAX_PER_WINDOW, env, 20)? as u32,
            window: Duration::from_secs(positive(var::SIGNUP_WINDOW_SECS, env, 600)?),
        };
        let shutdown_timeout = Duration::from_secs(positive(var::SHUTDOWN_TIMEOUT_SECS, env, 20)?);
        let shutdown_delay = Duration::from_secs(parse_or(var::SHUTDOWN_DELAY_SECS, env, 0u64)?);
        let request_timeout = Duration::from_secs(positive(var::REQUEST_TIMEOUT_SECS, env, 15)?);
        Ok(Self {
            database,
            node_name,
            port,
            jwt,
            redis,
            log_format,
            jobs,
            passwords,
            login_limit,
            signup_limit,
            shutdown_timeout,
            shutdown_delay,
            request_timeout,
            body_limit: 64 * 1024,
        })
    }
}

fn node_name(env: &impl Env) -> Result<String, ConfigError> {
    let name = env.get(var::NODE_NAME).unwrap_or_else(|| "app".into());
    let valid = name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(ConfigError::Invalid {
            name: var::NODE_NAME,
            reason: "use at most 63 letters, digits, `-`, `_` or `.`".into(),
        })
    }
}

fn jwt_secret(env: &impl Env) -> Result<Vec<u8>, ConfigError> {
    let secret_file = Secret::JwtSecret.env_var();
    let (source_name, secret) = if let Some(path) = env.get(secret_file) {
        (secret_file, read_secret_file(secret_file, &path)?)
    } else if let Some(secret) = env.get(var::JWT_SECRET) {
        (var::JWT_SECRET, secret)
    } else {
        return Err(ConfigError::MissingJwtSecret);
    };
    if secret.len() < MIN_JWT_SECRET_LEN {
        return Err(ConfigError::ShortJwtSecret {
            source_name,
            len: secret.len(),
        });
    }
    Ok(secret.into_bytes())
}

/// Reads a secret from a file, dropping the trailing newline editors and `echo` add.
fn read_secret_file(name: &'static str, path: &str) -> Result<String, ConfigError> {
    let content = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        name,
        path: path.to_owned(),
        source,
    })?;
    Ok(content.trim_end_matches(['\n', '\r']).to_owned())
}

fn parse_or<T: FromStr>(name: &'static str, env: &impl Env, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|error: T::Err| ConfigError::Invalid {
                name,
                reason: format!("`{raw}`: {error}"),
            }),
    }
}

/// `JOB_RETENTION_HOURS`: hours, fractions allowed (`0.01` is 36 s, for benchmarks).
fn retention(env: &impl Env) -> Result<Duration, ConfigError> {
    let name = var::JOB_RETENTION_HOURS;
    let hours: f64 = parse_or(name, env, 168.0)?;
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0 * 100.0) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("`{hours}`: must be more than 0 hours and at most 100 years"),
        });
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

/// A boolean variable: `true`/`1` or `false`/`0`, unset meaning false.
fn flag(name: &'static str, env: &impl Env) -> Result<bool, ConfigError> {
    match env.get(name).as_deref().map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected `true` or `false`, got `{other}`"),
        }),
    }
}

fn positive(name: &'static str, env: &impl Env, default: u64) -> Result<u64, ConfigError> {
    let value = parse_or(name, env, default)?;
    if value == 0 {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be at least 1".into(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::path::Path;

    use node_contract::{HealthCheck, NodeContract, REQUIRED_ONE_OF, VARS};

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn map_env(map: BTreeMap<String, String>) -> impl Env {
        move |name: &str| map.get(name).cloned()
    }

    /// Passes lookups through and records every name asked for.
    struct Recording<E> {
        inner: E,
        asked: RefCell<BTreeSet<String>>,
    }

    impl<E: Env> Recording<E> {
        fn new(inner: E) -> Self {
            Self {
                inner,
                asked: RefCell::new(BTreeSet::new()),
            }
        }
    }

    impl<E: Env> Env for Recording<E> {
        fn get(&self, name: &str) -> Option<String> {
            self.asked.borrow_mut().insert(name.to_owned());
            self.inner.get(name)
        }
    }

    /// Contract variables the settings do not read, and who reads them instead.
    const READ_OUTSIDE_SETTINGS: &[&str] = &[
        var::RUST_LOG, // telemetry::init_tracing, through tracing's EnvFilter
    ];

    const JWT_KEY: &str = "0123456789abcdef0123456789abcdef";
    const DB_PASSWORD: &str = "s3cret";

    /// Writes the secret files into `dir` and returns their paths.
    fn secret_files(dir: &Path) -> BTreeMap<Secret, String> {
        Secret::ALL
            .into_iter()
            .map(|secret| {
                let path = dir.join(secret.file_name());
                let content = match secret {
                    Secret::DatabasePassword => DB_PASSWORD,
                    Secret::JwtSecret => JWT_KEY,
                };
                std::fs::write(&path, format!("{content}\n")).unwrap();
                (secret, path.to_str().unwrap().to_owned())
            })
            .collect()
    }

    /// A valid value for every contract variable; secret files written into `dir`.
    fn complete_env(dir: &Path) -> BTreeMap<String, String> {
        let files = secret_files(dir);
        let values: &[(&str, &str)] = &[
            (var::DATABASE_URL, "postgres://app@db:5432/app"),
            (
                var::DATABASE_DIRECT_URL,
                "postgres://app@db-direct:5432/app",
            ),
            (
                var::DATABASE_PASSWORD_FILE,
                &files[&Secret::DatabasePassword],
            ),
            (var::DATABASE_POOL_SIZE, "5"),
            (var::NODE_NAME, "node-1"),
            (var::PORT, "4100"),
            (var::JWT_SECRET, "a-plain-key-that-is-32-bytes-long"),
            (var::JWT_SECRET_FILE, &files[&Secret::JwtSecret]),
            (var::JWT_TTL_SECS, "60"),
            (var::JWT_ISSUER, "issuer"),
            (var::REDIS_URL, "redis://redis:6379"),
            (var::REDIS_KEY_PREFIX, "prefix"),
            (var::LOG_FORMAT, "text"),
            (var::RUST_LOG, "debug"),
            (var::JOB_WORKERS, "2"),
            (var::JOB_LEASE_SECS, "10"),
            (var::JOB_POLL_INTERVAL_MS, "500"),
            (var::JOB_BACKOFF_BASE_MS, "100"),
            (var::JOB_RETENTION_HOURS, "1"),
            (var::ARGON2_MEMORY_KIB, "64"),
            (var::ARGON2_ITERATIONS, "1"),
            (var::ARGON2_PARALLELISM, "1"),
            (var::PASSWORD_HASH_CONCURRENCY, "2"),
            (var::LOGIN_MAX_FAILURES, "3"),
            (var::LOGIN_FAILURE_WINDOW_SECS, "30"),
            (var::SHUTDOWN_TIMEOUT_SECS, "5"),
            (var::SHUTDOWN_DELAY_SECS, "1"),
            (var::JOB_TEST_KINDS, "true"),
            (var::JOB_SCHEDULE_HORIZON_DAYS, "2"),
            (var::SIGNUP_MAX_PER_WINDOW, "5"),
            (var::SIGNUP_WINDOW_SECS, "60"),
            (var::PASSWORD_HASH_QUEUE, "8"),
            (var::REQUEST_TIMEOUT_SECS, "7"),
        ];
        values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const URL: (&str, &str) = (var::DATABASE_URL, "postgres://app@db:5432/app");
    const SECRET: (&str, &str) = (var::JWT_SECRET, JWT_KEY);

    #[test]
    fn defaults_apply() {
        let settings = Settings::from_lookup(&env(&[URL, SECRET])).unwrap();
        assert_eq!(settings.port, 4000);
        assert_eq!(settings.database.pool_size, 10);
        assert_eq!(settings.jobs.workers, 4);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(settings.shutdown_delay, Duration::ZERO);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.passwords.memory_kib, 19_456);
        assert_eq!(settings.passwords.iterations, 2);
        assert!(settings.redis.is_none());
        assert_eq!(
            settings.database.connect_options.get_application_name(),
            Some("app")
        );
    }

    #[test]
    fn missing_secret_is_refused() {
        let error = Settings::from_lookup(&env(&[URL])).unwrap_err();
        assert!(matches!(error, ConfigError::MissingJwtSecret), "{error}");
        assert_eq!(
            error.to_string(),
            "no JWT signing key: set JWT_SECRET_FILE (preferred) or JWT_SECRET to a key of at least 32 bytes"
        );
    }

    #[test]
    fn short_secret_is_refused() {
        let error = Settings::from_lookup(&env(&[URL, (var::JWT_SECRET, "short")])).unwrap_err();
        assert!(
            matches!(error, ConfigError::ShortJwtSecret { len: 5, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn secret_file_is_preferred_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("jwt");
        std::fs::write(&key, format!("{}\n", "k".repeat(32))).unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "s3cret\n").unwrap();
        let settings = Settings::from_lookup(&env(&[
            URL,
            (
                var::JWT_SECRET,
                "ignored-because-the-file-wins-xxxxxxxxxxxx",
            ),
            (var::JWT_SECRET_FILE, key.to_str().unwrap()),
            (var::DATABASE_PASSWORD_FILE, password.to_str().unwrap()),
            (var::NODE_NAME, "demo-app-2"),
            (var::DATABASE_POOL_SIZE, "7"),
        ]))
        .unwrap();
        assert_eq!(settings.jwt.secret, "k".repeat(32).into_bytes());
        assert_eq!(settings.database.pool_size, 7);
        assert_eq!(
            settings.database.connect_options.get_application_name(),
            Some("demo-app-2")
        );
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let error = Settings::from_lookup(&env(&[URL, SECRET, (var::DATABASE_POOL_SIZE, "0")]))
            .unwrap_err();
        assert!(error.to_string().contains(var::DATABASE_POOL_SIZE));
        let error = Settings::from_lookup(&env(&[URL, SECRET, (var::PORT, "http")])).unwrap_err();
        assert!(error.to_string().contains(var::PORT));
        let error =
            Settings::from_lookup(&env(&[URL, SECRET, (var::LOG_FORMAT, "xml")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "LOG_FORMAT is invalid: expected `json` or `text`, got `xml`"
        );
        let error =
            Settings::from_lookup(&env(&[URL, SECRET, (var::ARGON2_MEMORY_KIB, "1")])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("ARGON2_MEMORY_KIB/ARGON2_ITERATIONS/ARGON2_PARALLELISM is invalid: "),
            "{error}"
        );
    }

    #[test]
    fn complete_env_sets_every_contract_variable() {
        let dir = tempfile::tempdir().unwrap();
        let complete = complete_env(dir.path());
        for var in VARS {
            assert!(
                complete.contains_key(var.name),
                "{} has no test value",
                var.name
            );
        }
        let settings = Settings::from_lookup(&map_env(complete)).unwrap();
        assert_eq!(settings.jwt.ttl, Duration::from_secs(60));
        assert_eq!(settings.jwt.secret, JWT_KEY.as_bytes());
        assert_eq!(settings.database.connect_options.get_host(), "db");
        assert_eq!(settings.database.direct().get_host(), "db-direct");
        assert!(settings.jobs.test_kinds);
        assert_eq!(
            settings.jobs.schedule_horizon,
            Duration::from_secs(2 * 86_400)
        );
        assert_eq!(settings.signup_limit.max_per_window, 5);
        assert_eq!(settings.passwords.queue, 8);
        assert_eq!(settings.request_timeout, Duration::from_secs(7));
        assert_eq!(settings.shutdown_delay, Duration::from_secs(1));
    }

    #[test]
    fn without_a_direct_url_every_connection_uses_database_url() {
        let settings = Settings::from_lookup(&env(&[URL, SECRET])).unwrap();
        assert!(settings.database.direct_options.is_none());
        assert_eq!(
            settings.database.direct().get_host(),
            settings.database.connect_options.get_host()
        );
        let error = Settings::from_lookup(&env(&[
            URL,
            SECRET,
            (var::DATABASE_DIRECT_URL, "postgres://app@db:port/app"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("DATABASE_DIRECT_URL is invalid"),
            "{error}"
        );
    }

    #[test]
    fn hardening_defaults_are_safe() {
        let settings = Settings::from_lookup(&env(&[URL, SECRET])).unwrap();
        assert!(
            !settings.jobs.test_kinds,
            "test job kinds are off by default"
        );
        assert_eq!(settings.jobs.lease, Duration::from_secs(8));
        assert_eq!(settings.jobs.retention, Duration::from_secs(168 * 3600));
        assert_eq!(settings.request_timeout, Duration::from_secs(15));
        let short = Settings::from_lookup(&env(&[URL, SECRET, (var::JOB_RETENTION_HOURS, "0.01")]))
            .unwrap();
        assert_eq!(short.jobs.retention, Duration::from_secs(36));
        for bad in ["0", "-1", "NaN", "soon"] {
            let error =
                Settings::from_lookup(&env(&[URL, SECRET, (var::JOB_RETENTION_HOURS, bad)]))
                    .unwrap_err();
            assert!(
                error.to_string().contains(var::JOB_RETENTION_HOURS),
                "{error}"
            );
        }
        let error =
            Settings::from_lookup(&env(&[URL, SECRET, (var::JOB_TEST_KINDS, "yes")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "JOB_TEST_KINDS is invalid: expected `true` or `false`, got `yes`"
        );
    }

    #[test]
    fn settings_ask_for_every_contract_variable_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // A complete env reaches every branch but one: the secret file wins over
        // JWT_SECRET. A minimal env reaches that one (but not REDIS_KEY_PREFIX).
        let complete = Recording::new(map_env(complete_env(dir.path())));
        Settings::from_lookup(&complete).unwrap();
        let minimal = Recording::new(env(&[URL, SECRET]));
        Settings::from_lookup(&minimal).unwrap();
        let asked: BTreeSet<String> = complete
            .asked
            .into_inner()
            .union(&minimal.asked.into_inner())
            .cloned()
            .collect();
        for var in VARS {
            if READ_OUTSIDE_SETTINGS.contains(&var.name) {
                assert!(
                    !asked.contains(var.name),
                    "{} is read by Settings",
                    var.name
                );
            } else {
                assert!(
                    asked.contains(var.name),
                    "Settings never asks for {}",
                    var.name
                );
            }
        }
        for name in &asked {
            assert!(
                node_contract::lookup(name).is_some(),
                "Settings reads {name}, which is not in node_contract::VARS"
            );
        }
    }

    #[test]
    fn each_required_variable_is_refused_by_name_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let complete = complete_env(dir.path());
        let required: Vec<_> = VARS.iter().filter(|var| var.required).collect();
        assert!(!required.is_empty());
        for var in required {
            let mut without = complete.clone();
            without.remove(var.name);
            let error = Settings::from_lookup(&map_env(without))
                .expect_err(&format!("Settings started without {}", var.name));
            assert!(
                error.to_string().contains(var.name),
                "missing {}: `{error}` does not name it",
                var.name
            );
        }
        for group in REQUIRED_ONE_OF {
            let mut without = complete.clone();
            for name in *group {
                let mut without_one = complete.clone();
                without_one.remove(*name);
                Settings::from_lookup(&map_env(without_one))
                    .unwrap_or_else(|error| panic!("{name} alone missing refused: {error}"));
                without.remove(*name);
            }
            let error = Settings::from_lookup(&map_env(without))
                .expect_err(&format!("Settings started without any of {group:?}"));
            for name in *group {
                assert!(
                    error.to_string().contains(name),
                    "`{error}` does not name {name}"
                );
            }
        }
    }

    #[test]
    fn the_contracts_env_parses_into_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let contract = NodeContract {
            node_name: "demo-app-3".into(),
            port: 4100,
            database_url: "postgres://cluster@demo-pooler:5432/appdb".into(),
            database_direct_url: Some("postgres://cluster@demo-postgres:5432/appdb".into()),
            pool_size: 6,
            job_workers: 2,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(9),
            shutdown_delay: Duration::from_secs(3),
            redis_url: Some("redis://demo-redis:6379".into()),
            extra_env: BTreeMap::from([(var::JWT_TTL_SECS.to_owned(), "120".to_owned())]),
            secrets: Secret::ALL.to_vec(),
            health: HealthCheck::node(),
            stop_signal: node_contract::STOP_SIGNAL,
            stop_grace: Duration::from_secs(11),
            user: node_contract::NODE_USER,
        };
        // The contract's secret paths are the container's; point them at temp files.
        let files = secret_files(dir.path());
        let mut rewritten = 0;
        let pairs: BTreeMap<String, String> = contract
            .env()
            .into_iter()
            .map(
                |(name, value)| match Secret::ALL.into_iter().find(|s| s.env_var() == name) {
                    Some(secret) => {
                        assert_eq!(value, secret.path());
                        rewritten += 1;
                        (name, files[&secret].clone())
                    }
                    None => (name, value),
                },
            )
            .collect();
        assert_eq!(rewritten, Secret::ALL.len());

        let settings = Settings::from_lookup(&map_env(pairs)).unwrap();
        assert_eq!(settings.node_name, contract.node_name);
        assert_eq!(settings.port, contract.port);
        assert_eq!(settings.database.pool_size, contract.pool_size);
        assert_eq!(settings.jobs.workers, contract.job_workers as usize);
        assert_eq!(settings.log_format, contract.log_format);
        assert_eq!(settings.shutdown_timeout, contract.shutdown_timeout);
        assert_eq!(settings.shutdown_delay, contract.shutdown_delay);
        assert_eq!(
            settings.redis.as_ref().map(|redis| redis.url.as_str()),
            contract.redis_url.as_deref()
        );
        let db = &settings.database.connect_options;
        assert_eq!(db.get_application_name(), Some(contract.node_name.as_str()));
        assert_eq!(db.get_host(), "demo-pooler");
        assert_eq!(db.get_username(), "cluster");
        assert_eq!(db.get_database(), Some("appdb"));
        let direct = settings.database.direct();
        assert_eq!(direct.get_host(), "demo-postgres");
        assert_eq!(direct.get_username(), "cluster");
        assert_eq!(direct.get_database(), Some("appdb"));
        assert_eq!(
            direct.get_application_name(),
            Some(contract.node_name.as_str())
        );
        assert_eq!(settings.jwt.secret, JWT_KEY.as_bytes());
        assert_eq!(settings.jwt.ttl, Duration::from_secs(120));
    }
}
