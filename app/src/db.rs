//! Connections to PostgreSQL: the node's pool, its one LISTEN connection, and migrations.
//!
//! With a pooler (PgBouncer in transaction mode) in front, the pool goes through it and
//! the two connections that need a session of their own go to PostgreSQL directly
//! ([`DatabaseSettings::direct`]): LISTEN (a pooler would hand the session to another
//! client after each transaction, and the notifications with it) and the migration's
//! advisory lock (held across transactions).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;

/// The migrations in the repository's top-level `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// An arbitrary key for the advisory lock that serializes concurrent `app migrate` runs.
const MIGRATION_LOCK_KEY: i64 = 0x6170_705f_6d69_6772; // "app_migr"

/// How long a request waits for a connection before it gets a 503: short, so a
/// database outage gives quick 503s rather than hanging requests.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's pool: at most `pool_size` connections, opened lazily so a node starts (and answers
/// `/api/health`, with `/api/ready` failing) while the database is still coming up.
pub fn pool(settings: &DatabaseSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.pool_size)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(settings.connect_options.clone())
}

/// A pool of exactly one connection, kept for the job queue's LISTEN: the "+1" per node,
/// always to PostgreSQL itself.
pub fn listener_pool(settings: &DatabaseSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(settings.direct().clone())
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("failed to connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("failed to take the migration lock")]
    Lock(#[source] sqlx::Error),
    #[error("failed to apply the migrations")]
    Apply(#[source] sqlx::migrate::MigrateError),
}

/// Applies pending migrations once, on PostgreSQL itself (the session advisory lock must
/// not go through a pooler). Concurrent runs wait on the lock, so the second one finds
/// nothing to do.
pub async fn migrate(settings: &DatabaseSettings) -> Result<(), MigrateError> {
    migrate_with(settings.direct()).await
}

pub async fn migrate_with(options: &PgConnectOptions) -> Result<(), MigrateError> {
    let mut connection = PgConnection::connect_with(options)
        .await
        .map_err(MigrateError::Connect)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut connection)
        .await
        .map_err(MigrateError::Lock)?;
    let applied = MIGRATOR
        .run(&mut connection)
        .await
        .map_err(MigrateError::Apply);
    // Closing the session releases the advisory lock even if the unlock below fails.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut connection)
        .await;
    let _ = connection.close().await;
    applied?;
    tracing::info!(
        migrations = MIGRATOR.iter().count(),
        "database schema is up to date"
    );
    Ok(())
}

/// Sets the role of the user with `email` (case-insensitive); `false` when there is none.
pub async fn set_role(
    pool: &PgPool,
    email: &str,
    role: crate::auth::Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET role = $2, updated_at = now() WHERE lower(email) = lower($1)",
    )
    .bind(email.trim())
    .bind(role.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
