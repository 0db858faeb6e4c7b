//! The queue's SQL. Every statement is safe to run from any number of nodes at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{JobKind, JobState};

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub args: serde_json::Value,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// The user who may read it; `None` for the system's own jobs.
    pub owner: Option<Uuid>,
}

impl NewJob {
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;

    pub fn now(kind: JobKind, args: serde_json::Value, owner: Option<Uuid>) -> Self {
        Self {
            kind,
            args,
            scheduled_at: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            owner,
        }
    }
}

/// The longest error text kept per attempt, in characters; longer ones are cut, so a job
/// that fails with a long message on every attempt grows its row by at most this much.
pub const MAX_ERROR_CHARS: usize = 500;

/// `error` cut to [`MAX_ERROR_CHARS`] characters, with an ellipsis when it was longer.
pub fn truncate_error(error: &str) -> std::borrow::Cow<'_, str> {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        None => std::borrow::Cow::Borrowed(error),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &error[..end])),
    }
}

/// A job as its owner sees it: `id` is the public id, never the internal one.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub errors: serde_json::Value,
    pub node: Option<String>,
    pub args: serde_json::Value,
    pub scheduled_at: DateTime<Utc>,
    pub inserted_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub discarded_at: Option<DateTime<Utc>>,
}

/// Counts by state, and by node and state.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub by_state: BTreeMap<&'static str, i64>,
    pub by_node: BTreeMap<String, BTreeMap<&'static str, i64>>,
}

/// A job fetched for execution by this node.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FetchedJob {
    pub id: i64,
    pub kind: String,
    pub args: serde_json::Value,
    /// This attempt's number (1 for the first run).
    pub attempts: i32,
    pub max_attempts: i32,
}

/// The queue as handlers use it.
#[derive(Clone)]
pub struct Queue {
    pool: PgPool,
    node: Arc<str>,
}

impl Queue {
    pub fn new(pool: PgPool, node: &str) -> Self {
        Self {
            pool,
            node: Arc::from(node),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The job with this public id if `owner` enqueued it: another user's job and an unknown
    /// one look the same.
    pub async fn get(&self, id: Uuid, owner: Uuid) -> Result<Option<JobView>, sqlx::Error> {
        sqlx::query_as::<_, JobView>(
            "SELECT public_id AS id, kind, state, attempts, max_attempts, errors, node, args,
                    scheduled_at, inserted_at, attempted_at, completed_at, discarded_at
             FROM jobs WHERE public_id = $1 AND owner_id = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn stats(&self) -> Result<Stats, sqlx::Error> {
        let rows: Vec<(Option<String>, JobState, i64)> =
            sqlx::query_as("SELECT node, state, count(*) FROM jobs GROUP BY node, state")
                .fetch_all(&self.pool)
                .await?;
        let mut by_state: BTreeMap<&'static str, i64> = JobState::ALL
            .iter()
            .map(|state| (state.as_str(), 0))
            .collect();
        let mut by_node: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
        for (node, state, count) in rows {
            *by_state.entry(state.as_str()).or_default() += count;
            if let Some(node) = node {
                *by_node
                    .entry(node)
                    .or_default()
                    .entry(state.as_str())
                    .or_default() += count;
            }
        }
        Ok(Stats { by_state, by_node })
    }
}

/// Inserts a job (in a transaction when given one) and returns its public id; the insert
/// trigger wakes idle workers.
pub async fn enqueue(
    executor: impl PgExecutor<'_>,
    job: &NewJob,
) -> Result<(Uuid, JobState), sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO jobs (kind, args, max_attempts, scheduled_at, state, owner_id)
         VALUES ($1, $2, $3, coalesce($4, now()),
                 CASE WHEN $4 > now() THEN 'scheduled'::job_state ELSE 'available'::job_state END,
                 $5)
         RETURNING public_id, state",
    )
    .bind(job.kind.as_str())
    .bind(&job.args)
    .bind(job.max_attempts)
    .bind(job.scheduled_at)
    .bind(job.owner)
    .fetch_one(executor)
    .await
}

/// Claims up to `limit` runnable jobs for `node`. `SKIP LOCKED` makes concurrent fetches from
/// other nodes take other rows, so a job runs on exactly one node at a time.
pub async fn fetch(
    pool: &PgPool,
    node: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<FetchedJob>, sqlx::Error> {
    sqlx::query_as(
        "WITH next AS (
             SELECT id FROM jobs
             WHERE state IN ('available', 'scheduled', 'retryable') AND scheduled_at <= now()
             ORDER BY scheduled_at, id
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE jobs SET state = 'executing', attempts = jobs.attempts + 1, node = $2,
                         attempted_at = now(), lease_expires_at = now() + make_interval(secs => $3)
         FROM next WHERE jobs.id = next.id
         RETURNING jobs.id, jobs.kind, jobs.args, jobs.attempts, jobs.max_attempts",
    )
    .bind(limit as i64)
    .bind(node)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Marks attempts as completed, in one statement. An attempt that was rescued meanwhile (its
/// `attempts` or `node` changed) is left alone.
pub async fn complete(pool: &PgPool, node: &str, done: &[(i64, i32)]) -> Result<u64, sqlx::Error> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = done.iter().copied().unzip();
    let result = sqlx::query(
        "UPDATE jobs SET state = 'completed', completed_at = now(), lease_expires_at = NULL
         FROM unnest($1::bigint[], $2::int[]) AS done(id, attempt)
         WHERE jobs.id = done.id AND jobs.attempts = done.attempt
           AND jobs.state = 'executing' AND jobs.node = $3",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Records a failed attempt: `retryable` after `backoff`, or `discarded` once the attempts are
/// used up. The error is kept either way, cut to [`MAX_ERROR_CHARS`].
pub async fn fail(
    pool: &PgPool,
    node: &str,
    id: i64,
    attempt: i32,
    error: &str,
    backoff: Duration,
) -> Result<Option<JobState>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE jobs SET
             state = CASE WHEN attempts >= max_attempts THEN 'discarded'::job_state
                          ELSE 'retryable'::job_state END,
             errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempts, 'at', now(), 'node', $2::text, 'error', $4::text)),
             scheduled_at = CASE WHEN attempts >= max_attempts THEN scheduled_at
                                 ELSE now() + make_interval(secs => $5) END,
             discarded_at = CASE WHEN attempts >= max_attempts THEN now() END,
             lease_expires_at = NULL
         WHERE id = $1 AND attempts = $3 AND state = 'executing' AND node = $2
         RETURNING state",
    )
    .bind(id)
    .bind(node)
    .bind(attempt)
    .bind(truncate_error(error).as_ref())
    .bind(backoff.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// Renews the leases of the attempts this node is running and returns the ids it renewed. An
/// attempt missing from the answer is no longer this node's (its lease lapsed and another
/// node took the job): the caller must stop running it.
pub async fn heartbeat(
    pool: &PgPool,
    node: &str,
    running: &[(i64, i32)],
    lease: Duration,
) -> Result<Vec<i64>, sqlx::Error> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = running.iter().copied().unzip();
    sqlx::query_scalar(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $4)
         FROM unnest($1::bigint[], $2::int[]) AS mine(id, attempt)
         WHERE jobs.id = mine.id AND jobs.attempts = mine.attempt
           AND jobs.state = 'executing' AND jobs.node = $3
         RETURNING jobs.id",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(node)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Puts back jobs whose lease expired (their node died or hung): `available` again, or
/// `discarded` when that was the last attempt. Any node may run this.
pub async fn rescue(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "WITH expired AS (
             SELECT id FROM jobs
             WHERE state = 'executing' AND lease_expires_at < now()
             ORDER BY lease_expires_at
             LIMIT 1000
             FOR UPDATE SKIP LOCKED
         )
         UPDATE jobs SET
             state = CASE WHEN jobs.attempts >= jobs.max_attempts THEN 'discarded'::job_state
                          ELSE 'available'::job_state END,
             errors = jobs.errors || jsonb_build_array(jsonb_build_object(
                 'attempt', jobs.attempts, 'at', now(), 'node', jobs.node,
                 'error', 'lease expired: the node stopped renewing it')),
             scheduled_at = now(),
             discarded_at = CASE WHEN jobs.attempts >= jobs.max_attempts THEN now() END,
             lease_expires_at = NULL
         FROM expired WHERE jobs.id = expired.id",
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Hands jobs this node could not finish before shutting down back to the queue, without
/// charging the interrupted attempt.
pub async fn hand_back(pool: &PgPool, node: &str, ids: &[i64]) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE jobs SET state = 'available', attempts = greatest(attempts - 1, 0),
             errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempts, 'at', now(), 'node', node,
                 'error', 'handed back: the node shut down before the job finished')),
             scheduled_at = now(), lease_expires_at = NULL
         WHERE id = ANY($1) AND state = 'executing' AND node = $2",
    )
    .bind(ids)
    .bind(node)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// The most rows one pruning statement deletes: short transactions, and a round that stops
/// after its time budget still deletes a useful amount.
pub const PRUNE_BATCH: i64 = 5_000;

/// Deletes up to [`PRUNE_BATCH`] completed and discarded jobs that finished more than
/// `retention` ago, oldest first (through `jobs_finished_at_idx`, so the cost is the rows
/// deleted, not the table).
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs
             WHERE state IN ('completed', 'discarded')
               AND coalesce(completed_at, discarded_at) < now() - make_interval(secs => $1)
             ORDER BY coalesce(completed_at, discarded_at)
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )",
    )
    .bind(retention.as_secs_f64())
    .bind(PRUNE_BATCH)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Deletes up to [`PRUNE_BATCH`] outbox emails written more than `retention` ago.
pub async fn prune_outbox(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM outbox_emails WHERE id IN (
             SELECT id FROM outbox_emails
             WHERE inserted_at < now() - make_interval(secs => $1)
             ORDER BY inserted_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )",
    )
    .bind(retention.as_secs_f64())
    .bind(PRUNE_BATCH)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Counts jobs by state, for `/metrics`.
/// Above this many jobs in one state, [`count_by_state`] stops counting and estimates.
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// Jobs per state for `/metrics`, at a cost that does not grow with the table: each state is
/// counted up to [`EXACT_COUNT_LIMIT`] + 1 rows (the state a literal, so the planner picks the
/// `(state, node)` index for a rare state and a scan that stops at the limit for a common one);
/// a state past the limit (finished jobs kept for the retention period) gets PostgreSQL's
/// statistics estimate (`reltuples` × the state's frequency in `pg_stats`), never less than the
/// limit. Rows: state, the capped count, whether it passed the limit, the estimate.
pub fn count_by_state_sql() -> String {
    let estimate = "coalesce((SELECT (t.reltuples * st.most_common_freqs[\
            array_position(st.most_common_vals::text::text[], s.state)])::bigint \
        FROM pg_class t, pg_stats st \
        WHERE t.oid = 'jobs'::regclass AND st.schemaname = current_schema() \
          AND st.tablename = 'jobs' AND st.attname = 'state'), 0)";
    JobState::ALL
        .iter()
        .map(|state| {
            let state = state.as_str();
            format!(
                "SELECT s.state, least(c.n, $1), c.n > $1, {estimate} \
                 FROM (SELECT '{state}'::text AS state) s, \
                      (SELECT count(*) AS n FROM (SELECT 1 FROM jobs \
                       WHERE state = '{state}' LIMIT $1 + 1) x) c"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Jobs per state (see [`count_by_state_sql`]): the count and whether it is exact.
pub async fn count_by_state(pool: &PgPool) -> Result<HashMap<JobState, (i64, bool)>, sqlx::Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(count_by_state_sql);
    let rows: Vec<(String, i64, bool, i64)> = sqlx::query_as(sql)
        .bind(EXACT_COUNT_LIMIT)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(state, capped, over, estimate)| {
            let state = JobState::ALL.into_iter().find(|s| s.as_str() == state)?;
            Some(if over {
                (state, (estimate.max(EXACT_COUNT_LIMIT + 1), false))
            } else {
                (state, (capped, true))
            })
        })
        .collect())
}

/// Exponential backoff with ±10 % jitter: base × 2^(attempt − 1), at most an hour.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 20) as u32 - 1;
    let raw = base.saturating_mul(2u32.saturating_pow(exponent));
    let capped = raw.min(Duration::from_secs(3600));
    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0.9..1.1);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate_error("short"), "short");
        let exact = "é".repeat(MAX_ERROR_CHARS);
        assert_eq!(truncate_error(&exact), exact);
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = truncate_error(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(cut.ends_with("é…"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(2);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(1800) && first <= Duration::from_millis(2200));
        let third = backoff(base, 3);
        assert!(third >= Duration::from_millis(7200) && third <= Duration::from_millis(8800));
        assert!(backoff(base, 40) <= Duration::from_secs(3960));
    }
}
