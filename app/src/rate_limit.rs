//! Rate limits shared by every node — login attempts per email + client address, sign-ups per
//! client address — as fixed windows kept in Redis when configured and in PostgreSQL otherwise (a
//! per-node limit would be multiplied by the node count). An attempt is counted by one atomic
//! increment *before* the work it limits (the password hash), so the limit is exact however many
//! attempts arrive at once; a login that succeeds clears its count, one the node was too busy to
//! try is given back.

use std::time::Duration;

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
    /// Within the limit; `earlier` attempts were counted in this window before this one.
    Allowed { earlier: u32 },
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

    /// The login limiter's key for an email (case-insensitive) and a client address.
    pub fn key(email: &str, client: &str) -> String {
        format!("login|{}|{client}", email.trim().to_lowercase())
    }

    /// The sign-up limiter's key for a client address.
    pub fn signup_key(client: &str) -> String {
        format!("signup|{client}")
    }

    /// Counts a login attempt against `key` *before* the password is checked, and returns the
    /// verdict together with the user row (id, password hash) for `email`. Counting first is
    /// what makes the limit hold under concurrency: each attempt gets its own number from one
    /// atomic increment, so of any number of simultaneous attempts exactly `max_failures` go on
    /// to the hash and the rest are blocked. A successful login then calls [`reset`](Self::reset).
    ///
    /// With the PostgreSQL store both come from one statement, so a login costs one round trip
    /// before the hash; with Redis the two run concurrently. The user lookup's error is the
    /// outer one (no login without it); the limiter's is the inner one (the caller fails open).
    pub async fn attempt_with_user(
        &self,
        pool: &PgPool,
        email: &str,
        key: &str,
    ) -> Result<(Result<Verdict, LimitError>, Option<LoginUser>), sqlx::Error> {
        let max = i64::from(self.settings.max_failures);
        let window = self.settings.window;
        match &self.store {
            Store::Redis { connection, prefix } => {
                let (verdict, user) = tokio::join!(
                    hit_redis(connection.clone(), redis_key(prefix, key), max, window),
                    find_user(pool, email)
                );
                Ok((verdict, user?))
            }
            Store::Postgres(_) => {
                let (id, password_hash, count, remaining): (
                    Option<Uuid>,
                    Option<String>,
                    i32,
                    f64,
                ) = sqlx::query_as(&format!(
                    "WITH hit AS ({HIT_POSTGRES})
                     SELECT u.id, u.password_hash, hit.failures, hit.remaining
                     FROM hit LEFT JOIN users u ON lower(u.email) = lower($3)"
                ))
                .bind(key)
                .bind(window_secs(window))
                .bind(email)
                .fetch_one(pool)
                .await?;
                let user = id
                    .zip(password_hash)
                    .map(|(id, password_hash)| LoginUser { id, password_hash });
                Ok((Ok(verdict(i64::from(count), max, remaining)), user))
            }
        }
    }

    /// Counts an attempt against `key` in a window of `window` and says whether it may go
    /// ahead: at most `max` per window, exactly, however many arrive at once.
    pub async fn hit(&self, key: &str, max: u32, window: Duration) -> Result<Verdict, LimitError> {
        match &self.store {
            Store::Redis { connection, prefix } => {
                hit_redis(
                    connection.clone(),
                    redis_key(prefix, key),
                    i64::from(max),
                    window,
                )
                .await
            }
            Store::Postgres(pool) => {
                let (count, remaining): (i32, f64) = sqlx::query_as(HIT_POSTGRES)
                    .bind(key)
                    .bind(window_secs(window))
                    .fetch_one(pool)
                    .await
                    .map_err(LimitError::Postgres)?;
                Ok(verdict(i64::from(count), i64::from(max), remaining))
            }
        }
    }

    /// Uncounts one attempt of `key` that was not tried after all (the node was too busy to
    /// hash). Best effort: a failure is logged, and at worst the attempt stays counted.
    pub async fn give_back(&self, key: &str) {
        let result = match &self.store {
            Store::Redis { connection, prefix } => {
                // Only while the window lasts: a DECR on an expired key would create one with
                // no expiry.
                let mut connection = connection.clone();
                redis::cmd("EVAL")
                    .arg("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0")
                    .arg(1)
                    .arg(redis_key(prefix, key))
                    .query_async::<i64>(&mut connection)
                    .await
                    .map(drop)
                    .map_err(LimitError::Redis)
            }
            Store::Postgres(pool) => sqlx::query(
                "UPDATE login_failures SET failures = greatest(failures - 1, 0) WHERE key = $1",
            )
            .bind(key)
            .execute(pool)
            .await
            .map(drop)
            .map_err(LimitError::Postgres),
        };
        if let Err(error) = result {
            tracing::warn!(
                error = format!("{error:#}"),
                "failed to give back an attempt"
            );
        }
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

/// Counts one attempt in PostgreSQL: a fixed window per key, incremented under the row's lock
/// (`ON CONFLICT DO UPDATE`), so concurrent attempts on any node each get their own count.
/// `$1` is the key, `$2` the window in seconds; returns the count and the window's seconds left.
const HIT_POSTGRES: &str = "INSERT INTO login_failures (key, failures, window_ends_at)
     VALUES ($1, 1, now() + make_interval(secs => $2))
     ON CONFLICT (key) DO UPDATE SET
       failures = CASE WHEN login_failures.window_ends_at <= now() THEN 1
                       ELSE login_failures.failures + 1 END,
       window_ends_at = CASE WHEN login_failures.window_ends_at <= now()
                             THEN now() + make_interval(secs => $2)
                             ELSE login_failures.window_ends_at END
     RETURNING failures, EXTRACT(EPOCH FROM window_ends_at - now())::float8 AS remaining";

/// Counts one attempt in Redis: `INCR`, the window's expiry set by the first, and the time
/// left, in one `MULTI` transaction.
async fn hit_redis(
    mut connection: ConnectionManager,
    redis_key: String,
    max: i64,
    window: Duration,
) -> Result<Verdict, LimitError> {
    let (count, _, ttl): (i64, i64, i64) = redis::pipe()
        .atomic()
        .incr(&redis_key, 1)
        .cmd("EXPIRE")
        .arg(&redis_key)
        .arg(window.as_secs().max(1))
        .arg("NX")
        .ttl(&redis_key)
        .query_async(&mut connection)
        .await
        .map_err(LimitError::Redis)?;
    Ok(verdict(count, max, ttl as f64))
}

fn window_secs(window: Duration) -> f64 {
    window.as_secs().max(1) as f64
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

/// The verdict for the `count`-th attempt of a window (this one included) with `max` allowed.
fn verdict(count: i64, max: i64, remaining_secs: f64) -> Verdict {
    if count > max {
        Verdict::Blocked {
            retry_after_secs: (remaining_secs.ceil() as i64).max(1) as u64,
        }
    } else {
        Verdict::Allowed {
            earlier: (count - 1).clamp(0, i64::from(u32::MAX)) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_max_attempts_are_allowed() {
        assert_eq!(verdict(1, 3, 10.0), Verdict::Allowed { earlier: 0 });
        assert_eq!(verdict(3, 3, 10.0), Verdict::Allowed { earlier: 2 });
        assert_eq!(
            verdict(4, 3, 9.2),
            Verdict::Blocked {
                retry_after_secs: 10
            }
        );
        assert_eq!(
            verdict(40, 3, -1.0),
            Verdict::Blocked {
                retry_after_secs: 1
            }
        );
    }
}
