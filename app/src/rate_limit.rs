//! Failed-login rate limiting shared by every node: a fixed window per email + client IP, kept in
//! Redis when configured and in PostgreSQL otherwise (a per-node limit would be multiplied by the
//! node count).

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::LoginLimitSettings;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("the Redis rate-limit store failed")]
    Redis(#[source] redis::RedisError),
    #[error("the PostgreSQL rate-limit store failed")]
    Postgres(#[source] sqlx::Error),
}

#[derive(Clone)]
enum Store {
    Redis {
        connection: ConnectionManager,
        prefix: String,
    },
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct LoginLimiter {
    store: Store,
    settings: LoginLimitSettings,
}

/// What an attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer failures than the limit; `failures` in the current window.
    Allowed { failures: u32 },
    /// Too many failures in the window; retry after this many seconds.
    Blocked { retry_after_secs: u64 },
}

impl LoginLimiter {
    pub fn redis(
        connection: ConnectionManager,
        prefix: &str,
        settings: LoginLimitSettings,
    ) -> Self {
        Self {
            store: Store::Redis {
                connection,
                prefix: prefix.to_owned(),
            },
            settings,
        }
    }

    pub fn postgres(pool: PgPool, settings: LoginLimitSettings) -> Self {
        Self {
            store: Store::Postgres(pool),
            settings,
        }
    }

    /// The limiter key for an email (case-insensitive) and a client address.
    pub fn key(email: &str, client: &str) -> String {
        format!("{}|{client}", email.trim().to_lowercase())
    }

    /// A login attempt's verdict together with the user row (id, password hash) for `email`.
    /// With the PostgreSQL store both come from one query, so a login costs one round trip
    /// before the hash instead of two; with Redis the two lookups run concurrently. The user
    /// lookup's error is the outer one (no login without it); the limiter's is the inner one
    /// (the caller fails open).
    pub async fn check_with_user(
        &self,
        pool: &PgPool,
        email: &str,
        key: &str,
    ) -> Result<(Result<Verdict, LimitError>, Option<LoginUser>), sqlx::Error> {
        match &self.store {
            Store::Redis { connection, prefix } => {
                let max = i64::from(self.settings.max_failures);
                let (verdict, user) = tokio::join!(
                    check_redis(connection.clone(), redis_key(prefix, key), max),
                    find_user(pool, email)
                );
                Ok((verdict, user?))
            }
            Store::Postgres(_) => {
                let (id, password_hash, failures, remaining): (
                    Option<Uuid>,
                    Option<String>,
                    Option<i32>,
                    Option<f64>,
                ) = sqlx::query_as(
                    "SELECT u.id, u.password_hash, f.failures,
                            EXTRACT(EPOCH FROM f.window_ends_at - now())::float8
                     FROM (VALUES (1)) AS attempt (one)
                     LEFT JOIN users u ON lower(u.email) = lower($1)
                     LEFT JOIN login_failures f ON f.key = $2 AND f.window_ends_at > now()",
                )
                .bind(email)
                .bind(key)
                .fetch_one(pool)
                .await?;
                let max = i64::from(self.settings.max_failures);
                let verdict = match (failures, remaining) {
                    (Some(failures), Some(remaining)) => {
                        verdict(i64::from(failures), max, remaining.ceil() as i64)
                    }
                    _ => Verdict::Allowed { failures: 0 },
                };
                let user = id
                    .zip(password_hash)
                    .map(|(id, password_hash)| LoginUser { id, password_hash });
                Ok((Ok(verdict), user))
            }
        }
    }

    pub async fn record_failure(&self, key: &str) -> Result<(), LimitError> {
        let window = self.settings.window.as_secs().max(1);
        match &self.store {
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let redis_key = redis_key(prefix, key);
                let _: (i64, i64) = redis::pipe()
                    .atomic()
                    .incr(&redis_key, 1)
                    .cmd("EXPIRE")
                    .arg(&redis_key)
                    .arg(window)
                    .arg("NX")
                    .query_async(&mut connection)
                    .await
                    .map_err(LimitError::Redis)?;
            }
            Store::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO login_failures (key, failures, window_ends_at)
                     VALUES ($1, 1, now() + make_interval(secs => $2))
                     ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN login_failures.window_ends_at <= now() THEN 1
                                       ELSE login_failures.failures + 1 END,
                       window_ends_at = CASE WHEN login_failures.window_ends_at <= now()
                                             THEN now() + make_interval(secs => $2)
                                             ELSE login_failures.window_ends_at END",
                )
                .bind(key)
                .bind(window as f64)
                .execute(pool)
                .await
                .map_err(LimitError::Postgres)?;
            }
        }
        Ok(())
    }

    /// Forgets the failures of a key after a successful login.
    pub async fn reset(&self, key: &str) -> Result<(), LimitError> {
        match &self.store {
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let _: i64 = redis::cmd("DEL")
                    .arg(redis_key(prefix, key))
                    .query_async(&mut connection)
                    .await
                    .map_err(LimitError::Redis)?;
            }
            Store::Postgres(pool) => {
                sqlx::query("DELETE FROM login_failures WHERE key = $1")
                    .bind(key)
                    .execute(pool)
                    .await
                    .map_err(LimitError::Postgres)?;
            }
        }
        Ok(())
    }
}

async fn check_redis(
    mut connection: ConnectionManager,
    redis_key: String,
    max: i64,
) -> Result<Verdict, LimitError> {
    let (failures, ttl): (Option<i64>, i64) = redis::pipe()
        .get(&redis_key)
        .ttl(&redis_key)
        .query_async(&mut connection)
        .await
        .map_err(LimitError::Redis)?;
    Ok(verdict(failures.unwrap_or(0), max, ttl))
}

/// The user a login names.
#[derive(Debug)]
pub struct LoginUser {
    pub id: Uuid,
    pub password_hash: String,
}

async fn find_user(pool: &PgPool, email: &str) -> Result<Option<LoginUser>, sqlx::Error> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id, password_hash)| LoginUser { id, password_hash }))
}

/// Deletes expired PostgreSQL counters; any node may run it.
pub async fn prune_postgres(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM login_failures WHERE window_ends_at <= now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

fn redis_key(prefix: &str, key: &str) -> String {
    format!("{prefix}:login_failures:{key}")
}

fn verdict(failures: i64, max: i64, remaining_secs: i64) -> Verdict {
    if failures >= max {
        Verdict::Blocked {
            retry_after_secs: remaining_secs.max(1) as u64,
        }
    } else {
        Verdict::Allowed {
            failures: failures.clamp(0, i64::from(u32::MAX)) as u32,
        }
    }
}
