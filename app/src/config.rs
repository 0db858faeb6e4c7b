//! Settings from the environment the deployer sets. Raw strings are parsed once here into
//! validated settings; nothing past this module sees an unchecked value.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

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
        "no JWT signing key: set JWT_SECRET_FILE (preferred) or JWT_SECRET to a key of at least {MIN_JWT_SECRET_LEN} bytes"
    )]
    MissingJwtSecret,
    #[error(
        "the JWT signing key from {source_name} is {len} bytes long; it must be at least {MIN_JWT_SECRET_LEN} bytes"
    )]
    ShortJwtSecret {
        source_name: &'static str,
        len: usize,
    },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&ProcessEnv)
    }

    pub fn from_lookup(env: &impl Env) -> Result<Self, ConfigError> {
        match env.get("LOG_FORMAT").as_deref() {
            None | Some("json") => Ok(Self::Json),
            Some("text") => Ok(Self::Text),
            Some(other) => Err(ConfigError::Invalid {
                name: "LOG_FORMAT",
                reason: format!("expected `json` or `text`, got `{other}`"),
            }),
        }
    }
}

/// How to reach PostgreSQL and how many pool connections a node may open.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Connect options with the password and `application_name` already applied.
    pub connect_options: PgConnectOptions,
    /// The pool's maximum, exactly. The node opens one more connection for LISTEN.
    pub pool_size: u32,
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&ProcessEnv)
    }

    pub fn from_lookup(env: &impl Env) -> Result<Self, ConfigError> {
        let url = env
            .get("DATABASE_URL")
            .ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let mut connect_options =
            PgConnectOptions::from_str(&url).map_err(|error| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: error.to_string(),
            })?;
        if let Some(path) = env.get("DATABASE_PASSWORD_FILE") {
            let password = read_secret_file("DATABASE_PASSWORD_FILE", &path)?;
            connect_options = connect_options.password(&password);
        }
        let node_name = node_name(env)?;
        let pool_size = parse_or("DATABASE_POOL_SIZE", env, 10u32)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "DATABASE_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            connect_options: connect_options.application_name(&node_name),
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
}

impl PasswordSettings {
    /// OWASP's recommendation for argon2id: m = 19 MiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            concurrency: default_concurrency(),
        }
    }

    /// Cheap parameters for tests: never use these in production.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency: default_concurrency(),
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
}

/// Failed-login rate limiting.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimitSettings {
    pub max_failures: u32,
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
    pub shutdown_timeout: Duration,
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
        let port = parse_or("PORT", env, 4000u16)?;
        let secret = jwt_secret(env)?;
        let jwt = JwtSettings {
            secret,
            ttl: Duration::from_secs(positive("JWT_TTL_SECS", env, 900)?),
            issuer: env.get("JWT_ISSUER").unwrap_or_else(|| "app".into()),
        };
        let redis = env.get("REDIS_URL").map(|url| RedisSettings {
            url,
            key_prefix: env.get("REDIS_KEY_PREFIX").unwrap_or_else(|| "app".into()),
        });
        let log_format = LogFormat::from_lookup(env)?;
        let jobs = JobSettings {
            workers: positive("JOB_WORKERS", env, 4)? as usize,
            lease: Duration::from_secs(positive("JOB_LEASE_SECS", env, 30)?),
            poll_interval: Duration::from_millis(positive("JOB_POLL_INTERVAL_MS", env, 1000)?),
            backoff_base: Duration::from_millis(positive("JOB_BACKOFF_BASE_MS", env, 2000)?),
            retention: Duration::from_secs(3600 * positive("JOB_RETENTION_HOURS", env, 168)?),
        };
        let owasp = PasswordSettings::owasp();
        let passwords = PasswordSettings {
            memory_kib: positive("ARGON2_MEMORY_KIB", env, owasp.memory_kib.into())? as u32,
            iterations: positive("ARGON2_ITERATIONS", env, owasp.iterations.into())? as u32,
            parallelism: positive("ARGON2_PARALLELISM", env, owasp.parallelism.into())? as u32,
            concurrency: positive("PASSWORD_HASH_CONCURRENCY", env, owasp.concurrency as u64)?
                as usize,
        };
        argon2::Params::new(
            passwords.memory_kib,
            passwords.iterations,
            passwords.parallelism,
            None,
        )
        .map_err(|error| ConfigError::Invalid {
            name: "ARGON2_MEMORY_KIB/ARGON2_ITERATIONS/ARGON2_PARALLELISM",
            reason: error.to_string(),
        })?;
        let login_limit = LoginLimitSettings {
            max_failures: positive("LOGIN_MAX_FAILURES", env, 10)? as u32,
            window: Duration::from_secs(positive("LOGIN_FAILURE_WINDOW_SECS", env, 300)?),
        };
        let shutdown_timeout = Duration::from_secs(positive("SHUTDOWN_TIMEOUT_SECS", env, 20)?);
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
            shutdown_timeout,
            body_limit: 64 * 1024,
        })
    }
}

fn node_name(env: &impl Env) -> Result<String, ConfigError> {
    let name = env.get("NODE_NAME").unwrap_or_else(|| "app".into());
    let valid = name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(ConfigError::Invalid {
            name: "NODE_NAME",
            reason: "use at most 63 letters, digits, `-`, `_` or `.`".into(),
        })
    }
}

fn jwt_secret(env: &impl Env) -> Result<Vec<u8>, ConfigError> {
    let (source_name, secret) = if let Some(path) = env.get("JWT_SECRET_FILE") {
        (
            "JWT_SECRET_FILE",
            read_secret_file("JWT_SECRET_FILE", &path)?,
        )
    } else if let Some(secret) = env.get("JWT_SECRET") {
        ("JWT_SECRET", secret)
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
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://app@db:5432/app");
    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults_apply() {
        let settings = Settings::from_lookup(&env(&[URL, SECRET])).unwrap();
        assert_eq!(settings.port, 4000);
        assert_eq!(settings.database.pool_size, 10);
        assert_eq!(settings.jobs.workers, 4);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(20));
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
    }

    #[test]
    fn short_secret_is_refused() {
        let error = Settings::from_lookup(&env(&[URL, ("JWT_SECRET", "short")])).unwrap_err();
        assert!(
            matches!(error, ConfigError::ShortJwtSecret { len: 5, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn secret_file_is_preferred_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("app-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("jwt");
        std::fs::write(&key, format!("{}\n", "k".repeat(32))).unwrap();
        let password = dir.join("pw");
        std::fs::write(&password, "s3cret\n").unwrap();
        let settings = Settings::from_lookup(&env(&[
            URL,
            ("JWT_SECRET", "ignored-because-the-file-wins-xxxxxxxxxxxx"),
            ("JWT_SECRET_FILE", key.to_str().unwrap()),
            ("DATABASE_PASSWORD_FILE", password.to_str().unwrap()),
            ("NODE_NAME", "demo-app-2"),
            ("DATABASE_POOL_SIZE", "7"),
        ]))
        .unwrap();
        assert_eq!(settings.jwt.secret, "k".repeat(32).into_bytes());
        assert_eq!(settings.database.pool_size, 7);
        assert_eq!(
            settings.database.connect_options.get_application_name(),
            Some("demo-app-2")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let error =
            Settings::from_lookup(&env(&[URL, SECRET, ("DATABASE_POOL_SIZE", "0")])).unwrap_err();
        assert!(error.to_string().contains("DATABASE_POOL_SIZE"));
        let error = Settings::from_lookup(&env(&[URL, SECRET, ("PORT", "http")])).unwrap_err();
        assert!(error.to_string().contains("PORT"));
        let error = Settings::from_lookup(&env(&[URL, SECRET, ("LOG_FORMAT", "xml")])).unwrap_err();
        assert!(error.to_string().contains("LOG_FORMAT"));
    }
}
