//! Graceful shutdown: in-flight requests finish, running jobs finish until the deadline, the
//! rest is handed back to the queue.

use std::time::Duration;

use app::config::PasswordSettings;
use serde_json::json;

use crate::helpers::{spawn_app_with, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_and_jobs_and_hands_back_the_rest() {
    let mut app = spawn_app_with(|s| {
        s.shutdown_timeout = Duration::from_secs(2);
        // A login that takes a while, so it is in flight when the signal comes.
        s.passwords = PasswordSettings {
            iterations: 8,
            ..PasswordSettings::owasp()
        };
    })
    .await;
    let token = app.token().await;
    let short = app
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 300}}))
        .await;
    let long = app
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 60000}}))
        .await;
    for id in [short, long] {
        app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
            job["state"] == "executing"
        })
        .await;
    }
    let login = {
        let client = app.client.clone();
        let url = app.url("/api/auth/login");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"email": "nobody@example.com", "password": PASSWORD}))
                .send()
                .await
                .map(|response| response.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = std::time::Instant::now();
    let stopped = app.begin_shutdown();

    assert_eq!(
        login.await.unwrap().unwrap(),
        401,
        "the in-flight request finished"
    );
    stopped.await.unwrap().expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let state = |id: i64| {
        let pool = app.pool().clone();
        async move {
            sqlx::query_as::<_, (String, i32, serde_json::Value)>(
                "SELECT state::text, attempts, errors FROM jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(state(short).await.0, "completed");
    let (long_state, attempts, errors) = state(long).await;
    assert_eq!(long_state, "available");
    assert_eq!(attempts, 0, "the interrupted attempt is not charged");
    assert!(errors.to_string().contains("handed back"), "{errors}");
    // The listener is closed.
    assert!(app
        .client
        .get(app.url("/api/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err());
}
