use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_noop_job_is_accepted_and_completed_by_this_node() {
    let app = spawn_app().await;
    let token = app.token().await;
    let response = app
        .post_job(&token, &json!({"kind": "noop", "args": {"n": 1}}))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["state"], "available");
    let id = body["data"]["id"].as_i64().unwrap();

    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
    assert_eq!(job["id"], id);
    assert_eq!(job["kind"], "noop");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["errors"], json!([]));
    assert_eq!(job["node"], app.node.as_str());
}

#[tokio::test]
async fn invalid_jobs_are_422_by_field() {
    let app = spawn_app().await;
    let token = app.token().await;
    let cases = [
        (json!({}), "kind"),
        (json!({"kind": "rm -rf"}), "kind"),
        (json!({"kind": "noop", "args": [1, 2]}), "args"),
        (json!({"kind": "noop", "max_attempts": 0}), "max_attempts"),
        (
            json!({"kind": "noop", "scheduled_at": "tomorrow"}),
            "scheduled_at",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_job(&token, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let errors: Value = response.json().await.unwrap();
        assert!(errors["errors"][field].is_array(), "{body} → {errors}");
    }
}

#[tokio::test]
async fn job_endpoints_need_a_token_and_unknown_jobs_are_404() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/jobs"))
        .json(&json!({"kind": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(app.get("/api/jobs/1").await.status(), 401);
    assert_eq!(app.get("/api/jobs/stats").await.status(), 401);
    let token = app.token().await;
    assert_eq!(
        app.get_authed("/api/jobs/999999", &token).await.status(),
        404
    );
    assert_eq!(app.get_authed("/api/jobs/abc", &token).await.status(), 404);
}

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_then_completes() {
    let app = spawn_app().await;
    let token = app.token().await;
    let id = app
        .enqueue(
            &token,
            &json!({"kind": "fail", "args": {"times": 2, "message": "boom"}, "max_attempts": 5}),
        )
        .await;
    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
    assert_eq!(job["attempts"], 3);
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["error"], "boom");
    assert_eq!(errors[0]["attempt"], 1);
    assert_eq!(errors[1]["attempt"], 2);
}

#[tokio::test]
async fn a_job_out_of_attempts_is_discarded_with_its_errors() {
    let app = spawn_app().await;
    let token = app.token().await;
    let id = app
        .enqueue(
            &token,
            &json!({"kind": "fail", "args": {"message": "always"}, "max_attempts": 2}),
        )
        .await;
    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "discarded")
        .await;
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["errors"].as_array().unwrap().len(), 2);
    // Retryable in between: the first failure was scheduled for a later attempt.
    let discarded_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT discarded_at FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(discarded_at.is_some());
}

#[tokio::test]
async fn a_scheduled_job_waits_for_its_time() {
    let app = spawn_app().await;
    let token = app.token().await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let response = app
        .post_job(
            &token,
            &json!({"kind": "noop", "scheduled_at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["state"], "scheduled");
    let id = body["data"]["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.job(&token, id).await["state"], "scheduled");
    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
    let attempted_at =
        chrono::DateTime::parse_from_rfc3339(job["attempted_at"].as_str().unwrap()).unwrap();
    assert!(
        attempted_at >= at,
        "ran at {attempted_at}, scheduled for {at}"
    );
}

#[tokio::test]
async fn stats_count_by_state_and_by_node() {
    let app = spawn_app().await;
    let token = app.token().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.enqueue(&token, &json!({"kind": "noop"})).await);
    }
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    app.enqueue(
        &token,
        &json!({"kind": "noop", "scheduled_at": future.to_rfc3339()}),
    )
    .await;
    for id in ids {
        app.wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
            .await;
    }
    // The sign-up's welcome email counts too.
    crate::helpers::eventually(WAIT, "all runnable jobs completed", || async {
        let body: Value = app
            .get_authed("/api/jobs/stats", &token)
            .await
            .json()
            .await
            .unwrap();
        body["data"]["by_state"]["completed"] == 4
    })
    .await;
    let response = app.get_authed("/api/jobs/stats", &token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let by_state = &body["data"]["by_state"];
    for state in [
        "available",
        "scheduled",
        "executing",
        "retryable",
        "completed",
        "discarded",
    ] {
        assert!(by_state[state].is_i64(), "{state} missing in {body}");
    }
    assert_eq!(by_state["scheduled"], 1);
    assert_eq!(body["data"]["by_node"][app.node.as_str()]["completed"], 4);
}

#[tokio::test]
async fn old_finished_jobs_are_pruned_and_others_kept() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO jobs (kind, state, completed_at, discarded_at) VALUES
           ('noop', 'completed', now() - interval '2 hours', NULL),
           ('noop', 'discarded', NULL, now() - interval '2 hours'),
           ('noop', 'completed', now(), NULL),
           ('noop', 'scheduled', NULL, NULL)",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let pruned = app::jobs::queue::prune(app.pool(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'noop'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 2);
}

#[tokio::test]
async fn notify_wakes_idle_workers_without_waiting_for_the_poll() {
    // A poll so slow that only LISTEN/NOTIFY can explain a prompt run.
    let app =
        crate::helpers::spawn_app_with(|s| s.jobs.poll_interval = Duration::from_secs(600)).await;
    let token = app.token().await;
    // Let the node go idle (the sign-up's welcome email is done).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let id = app.enqueue(&token, &json!({"kind": "noop"})).await;
    app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
        job["state"] == "completed"
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn polling_picks_up_jobs_when_no_notification_comes() {
    let app = spawn_app().await;
    let token = app.token().await;
    sqlx::query("ALTER TABLE jobs DISABLE TRIGGER jobs_notify_inserted")
        .execute(app.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id: i64 = sqlx::query_scalar("INSERT INTO jobs (kind) VALUES ('noop') RETURNING id")
        .fetch_one(app.pool())
        .await
        .unwrap();
    app.wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
}
