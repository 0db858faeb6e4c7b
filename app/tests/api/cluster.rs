//! Several nodes on one database: stateless auth, a shared queue, rescue, the connection budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_node_works_on_another() {
    let first = spawn_app().await;
    let second = first.spawn_peer(|_| {}).await;
    first.sign_up("ada@example.com").await;
    let token = first.token_for("ada@example.com").await;
    let response = second.me(&token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["email"], "ada@example.com");
    // And the other way round.
    let token = second.token_for("ada@example.com").await;
    assert_eq!(first.me(&token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_jobs_are_each_completed_exactly_once_by_both_nodes() {
    let first = spawn_app().await;
    let second = first.spawn_peer(|_| {}).await;
    let token = first.token().await;
    let nodes = [&first, &second];
    let statuses: Vec<u16> = stream::iter(0..500)
        .map(|i| {
            let node = nodes[i % 2];
            let token = token.clone();
            async move {
                node.post_job(&token, &json!({"kind": "noop", "args": {"i": i}}))
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 202));

    eventually(
        Duration::from_secs(30),
        "500 completed noop jobs",
        || async {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE kind = 'noop' AND state = 'completed'",
            )
            .fetch_one(first.pool())
            .await
            .unwrap();
            done == 500
        },
    )
    .await;
    // `attempts` counts fetches: 1 everywhere means no job was ever claimed twice.
    let (count, max_attempts, distinct_args): (i64, i32, i64) = sqlx::query_as(
        "SELECT count(*), max(attempts), count(DISTINCT args) FROM jobs WHERE kind = 'noop'",
    )
    .fetch_one(first.pool())
    .await
    .unwrap();
    assert_eq!((count, max_attempts, distinct_args), (500, 1, 500));
    let by_node: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node, count(*) FROM jobs WHERE kind = 'noop' GROUP BY node ORDER BY node",
    )
    .fetch_all(first.pool())
    .await
    .unwrap();
    let names: Vec<&str> = by_node.iter().map(|(node, _)| node.as_str()).collect();
    let mut expected = vec![first.node.as_str(), second.node.as_str()];
    expected.sort_unstable();
    assert_eq!(names, expected, "both nodes ran jobs: {by_node:?}");
    assert!(by_node.iter().all(|(_, count)| *count > 0));

    let admin = second.admin_token().await;
    let stats: Value = second
        .get_authed("/api/jobs/stats", &admin)
        .await
        .json()
        .await
        .unwrap();
    let total: i64 = [&first.node, &second.node]
        .iter()
        .map(|node| {
            stats["data"]["by_node"][node.as_str()]["completed"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert!(total >= 500, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_killed_node_is_rescued_by_another_after_its_lease() {
    let lease = |s: &mut app::config::Settings| s.jobs.lease = Duration::from_secs(1);
    let mut doomed = spawn_app_with(lease).await;
    let token = doomed.token().await;
    let id = doomed
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 1500}}))
        .await;
    doomed
        .wait_for_job(&token, id, Duration::from_secs(10), |job| {
            job["state"] == "executing"
        })
        .await;
    doomed.kill().await;

    let survivor = doomed.spawn_peer(lease).await;
    let job = survivor
        .wait_for_job(&token, id, Duration::from_secs(15), |job| {
            job["state"] == "completed"
        })
        .await;
    assert_eq!(job["node"], survivor.node.as_str());
    assert_eq!(job["attempts"], 2);
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(errors[0]["node"], doomed.node.as_str());
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("lease expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_never_opens_more_than_its_pool_plus_one_connection() {
    const POOL: u32 = 3;
    let app = spawn_app_with(|s| s.database.pool_size = POOL).await;
    let token = app.token().await;

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let pool = app.pool().clone();
        let node = app.node.clone();
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut max = 0i64;
            while sampling.load(Ordering::Relaxed) {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&node)
                .fetch_one(&pool)
                .await
                .unwrap();
                max = max.max(count);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };

    // Load: reads, job inserts (which the node's workers then run) and sign-ups, 32 at a time.
    let statuses: Vec<u16> = stream::iter(0..600)
        .map(|i| {
            let app = &app;
            let token = token.clone();
            async move {
                let response = match i % 3 {
                    0 => app.me(&token).await,
                    1 => {
                        app.post_job(&token, &json!({"kind": "sleep", "args": {"ms": 5}}))
                            .await
                    }
                    _ => app.get_authed("/api/users?limit=5", &token).await,
                };
                response.status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    eventually(Duration::from_secs(30), "the queue to drain", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state <> 'completed'")
            .fetch_one(app.pool())
            .await
            .unwrap();
        left == 0
    })
    .await;
    sampling.store(false, Ordering::Relaxed);
    let max = sampler.await.unwrap();

    assert!(
        statuses.iter().all(|&s| s == 200 || s == 202),
        "{statuses:?}"
    );
    assert!(
        max <= i64::from(POOL) + 1,
        "saw {max} connections for pool_size {POOL}"
    );
    // The load was real: the pool filled up and the LISTEN connection was there.
    assert!(max >= i64::from(POOL), "saw only {max} connections");
}

/// With the default lease, a job on a node killed mid-run (as `kill -9` does: no hand-back)
/// runs again on another node about ten seconds after the kill (it took 34 s with the old
/// 30 s lease), and not before the lease lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_lease_a_killed_nodes_job_runs_again_within_about_ten_seconds() {
    use app::config::DEFAULT_JOB_LEASE;
    use app::jobs::runner::{heartbeat_period, maintenance_period};
    let defaults = |s: &mut app::config::Settings| {
        s.jobs.lease = DEFAULT_JOB_LEASE;
        s.jobs.poll_interval = Duration::from_secs(1);
    };
    let mut doomed = spawn_app_with(defaults).await;
    let token = doomed.token().await;
    let id = doomed
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 3000}}))
        .await;
    doomed
        .wait_for_job(&token, id, Duration::from_secs(10), |job| {
            job["state"] == "executing"
        })
        .await;
    doomed.kill().await;
    let killed = std::time::Instant::now();
    let survivor = doomed.spawn_peer(defaults).await;
    survivor
        .wait_for_job(&token, id, Duration::from_secs(30), |job| {
            job["attempts"] == 2 && job["node"] == survivor.node.as_str()
        })
        .await;
    let rescued_after = killed.elapsed();
    // The last heartbeat came at most one period before the kill; the rescuer looks once per
    // maintenance period; the rescuing node wakes its own producer at once.
    let earliest = DEFAULT_JOB_LEASE - heartbeat_period(DEFAULT_JOB_LEASE);
    let latest = DEFAULT_JOB_LEASE + maintenance_period(DEFAULT_JOB_LEASE) + Duration::from_secs(2);
    eprintln!("rescued {rescued_after:?} after the kill (lease {DEFAULT_JOB_LEASE:?})");
    assert!(
        rescued_after >= earliest - Duration::from_millis(500),
        "rescued after {rescued_after:?}, before the lease could have lapsed"
    );
    assert!(
        rescued_after <= latest,
        "rescued only after {rescued_after:?} (expected within {latest:?})"
    );
    survivor
        .wait_for_job(&token, id, Duration::from_secs(15), |job| {
            job["state"] == "completed"
        })
        .await;
}

/// A node whose attempt was taken over (its lease lapsed and another node fetched the job
/// again) stops running it at its next heartbeat instead of finishing it a second time, and
/// never acknowledges the other node's attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_a_jobs_lease_stops_running_it() {
    let app = spawn_app_with(|s| s.jobs.workers = 1).await;
    let token = app.token().await;
    let id = app
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 60000}}))
        .await;
    app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
        job["state"] == "executing"
    })
    .await;
    // What a rescue and a fetch by another node leave behind.
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + 1, node = 'other-node',
                lease_expires_at = now() + interval '1 hour'
         WHERE public_id = $1",
    )
    .bind(id)
    .execute(app.pool())
    .await
    .unwrap();
    // The node's only worker is free again long before the 60 s sleep would end.
    let next = app.enqueue(&token, &json!({"kind": "noop"})).await;
    app.wait_for_job(&token, next, Duration::from_secs(10), |job| {
        job["state"] == "completed"
    })
    .await;
    let job = app.job(&token, id).await;
    assert_eq!(job["state"], "executing", "{job}");
    assert_eq!(job["node"], "other-node", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
}
