//! A node behind PgBouncer in transaction mode, as the deployer runs it with `[database]
//! pooler = "pgbouncer"`: queries (prepared by sqlx) and transactions go through the pooler,
//! job claims with SKIP LOCKED too; LISTEN and the migration lock go to PostgreSQL directly.

use std::sync::Arc;
use std::time::Duration;

use app::config::DatabaseSettings;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};

use crate::helpers::{eventually, TestApp, TestDatabase};
use crate::infra::pooler;

/// The test database through the pooler.
fn pooled(db: &TestDatabase) -> PgConnectOptions {
    pooler().admin.clone().database(&db.name)
}

/// A node whose queries go through the pooler and whose LISTEN goes to PostgreSQL.
async fn spawn_pooled(
    db: Arc<TestDatabase>,
    configure: impl FnOnce(&mut app::config::Settings),
) -> TestApp {
    let through = pooled(&db);
    let direct = db.options.clone();
    TestApp::spawn_on(db, |s| {
        s.database.connect_options = through;
        s.database.direct_options = Some(direct);
        configure(s);
    })
    .await
}

/// `SHOW <what>` on PgBouncer's admin console (simple query protocol), as name → value rows.
async fn console(what: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let options = pooler().admin.clone().database("pgbouncer");
    let mut console = PgConnection::connect_with(&options)
        .await
        .expect("PgBouncer's admin console");
    let rows = sqlx::raw_sql(&format!("SHOW {what}"))
        .fetch_all(&mut console)
        .await
        .expect("SHOW on the admin console");
    rows.iter()
        .map(|row| {
            use sqlx::Column;
            row.columns()
                .iter()
                .map(|c| {
                    let value = row
                        .try_get::<String, _>(c.ordinal())
                        .or_else(|_| row.try_get::<i64, _>(c.ordinal()).map(|n| n.to_string()))
                        .or_else(|_| row.try_get::<i32, _>(c.ordinal()).map(|n| n.to_string()))
                        .unwrap_or_default();
                    (c.name().to_string(), value)
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_run_on_whichever_server_connection_a_transaction_gets() {
    let db = TestDatabase::create().await;
    // Three times as many clients as PgBouncer has server connections for this database:
    // each client prepares its statements once (sqlx caches them), and PgBouncer must
    // prepare them again on every server connection a query lands on.
    let clients = pooler().pool_size * 3;
    let pool = PgPoolOptions::new()
        .max_connections(clients)
        .connect_with(pooled(&db))
        .await
        .unwrap();
    let sums: Vec<i64> = stream::iter(0..600i64)
        .map(|i| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT $1::bigint + $2::bigint")
                    .bind(i)
                    .bind(1000i64)
                    .fetch_one(&pool)
                    .await
                    .expect("a prepared statement through PgBouncer")
            }
        })
        .buffer_unordered(clients as usize * 2)
        .collect()
        .await;
    let mut sorted = sums.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1000..1600).collect::<Vec<_>>());

    // PgBouncer multiplexed them: more clients than server connections, never more
    // servers than its pool.
    let pools = console("POOLS").await;
    let ours = pools
        .iter()
        .find(|p| p["database"] == db.name)
        .expect("a pool for the test database");
    let servers: u32 = ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]
        .iter()
        .map(|k| ours[*k].parse::<u32>().unwrap())
        .sum();
    let clients_seen: u32 = ours["cl_active"].parse::<u32>().unwrap();
    assert!(
        servers <= pooler().pool_size,
        "{servers} server connections > pool {}: {ours:?}",
        pooler().pool_size
    );
    assert!(clients_seen > servers, "no multiplexing seen: {ours:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_keep_their_statements_together_through_the_pooler() {
    let db = TestDatabase::create().await;
    sqlx::query("CREATE TABLE pooled_tx (id int PRIMARY KEY)")
        .execute(&db.pool)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(pooler().pool_size * 2)
        .connect_with(pooled(&db))
        .await
        .unwrap();
    stream::iter(0..200i32)
        .for_each_concurrent(16, |i| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                // Transaction-local state lives exactly as long as the transaction.
                sqlx::query("SET LOCAL statement_timeout = '4321ms'")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO pooled_tx VALUES ($1)")
                    .bind(i)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let (mine, timeout): (i64, String) = sqlx::query_as(
                    "SELECT count(*), current_setting('statement_timeout') FROM pooled_tx WHERE id = $1",
                )
                .bind(i)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                assert_eq!((mine, timeout.as_str()), (1, "4321ms"), "transaction {i}");
                if i % 2 == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
            }
        })
        .await;
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM pooled_tx ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(ids, (0..200).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    // Outside a transaction the server connections carry no leftover setting.
    let timeout: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(timeout, "0");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pooled_nodes_claim_each_job_exactly_once() {
    let db = TestDatabase::create().await;
    let first = spawn_pooled(Arc::clone(&db), |_| {}).await;
    let second = spawn_pooled(Arc::clone(&db), |_| {}).await;
    let token = first.token().await;
    let nodes = [&first, &second];
    stream::iter(0..300)
        .for_each_concurrent(16, |i| {
            let (node, token) = (nodes[i % 2], token.clone());
            async move {
                let r = node
                    .post_job(&token, &json!({"kind": "noop", "args": {"i": i}}))
                    .await;
                assert_eq!(r.status(), 202);
            }
        })
        .await;
    eventually(Duration::from_secs(30), "300 completed jobs", || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'noop' AND state = 'completed'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        done == 300
    })
    .await;
    // FOR UPDATE SKIP LOCKED inside each claim's transaction: no job fetched twice.
    let (count, max_attempts, distinct, nodes_used): (i64, i32, i64, i64) = sqlx::query_as(
        "SELECT count(*), max(attempts), count(DISTINCT args), count(DISTINCT node) FROM jobs WHERE kind = 'noop'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (count, max_attempts, distinct, nodes_used),
        (300, 1, 300, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_goes_to_postgresql_directly_and_still_wakes_the_workers() {
    let db = TestDatabase::create().await;
    // A poll so slow that only a notification can explain a prompt run.
    let app = spawn_pooled(Arc::clone(&db), |s| {
        s.jobs.poll_interval = Duration::from_secs(600)
    })
    .await;
    let token = app.token().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let id = app.enqueue(&token, &json!({"kind": "noop"})).await;
    app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
        job["state"] == "completed"
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken after {:?}",
        started.elapsed()
    );

    // The node's LISTEN session is a backend of its own, not one of PgBouncer's.
    let listeners: Vec<i32> = sqlx::query_scalar(
        "SELECT client_port FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
         AND query ILIKE 'listen%'",
    )
    .bind(&db.name)
    .bind(&app.node)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(listeners.len(), 1, "one LISTEN session: {listeners:?}");
    let pooler_ports: Vec<String> = console("SERVERS")
        .await
        .into_iter()
        .filter(|s| s["database"] == db.name)
        .map(|s| s["local_port"].clone())
        .collect();
    assert!(
        !pooler_ports.is_empty(),
        "the node's queries went through PgBouncer"
    );
    assert!(
        !pooler_ports.contains(&listeners[0].to_string()),
        "LISTEN ran on a PgBouncer server connection ({pooler_ports:?})"
    );
}

#[tokio::test]
async fn migrations_take_their_lock_on_postgresql_not_through_the_pooler() {
    let db = TestDatabase::create_empty().await;
    let settings = DatabaseSettings {
        connect_options: pooled(&db),
        direct_options: Some(db.options.clone()),
        pool_size: 2,
    };
    // Two at once: the session advisory lock serialises them, the second finds nothing to do.
    let (a, b) = tokio::join!(app::db::migrate(&settings), app::db::migrate(&settings));
    a.unwrap();
    b.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, app::db::MIGRATOR.iter().count());
}
