use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, spawn_app};

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
    let id: Uuid = body["data"]["id"].as_str().unwrap().parse().unwrap();

    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
    assert_eq!(job["id"], id.to_string());
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
        sqlx::query_scalar("SELECT discarded_at FROM jobs WHERE public_id = $1")
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
    let id: Uuid = body["data"]["id"].as_str().unwrap().parse().unwrap();
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
    // The stats are an admin's; the sign-ups' welcome emails count too.
    let admin = app.admin_token().await;
    eventually(WAIT, "all runnable jobs completed", || async {
        let body: Value = app
            .get_authed("/api/jobs/stats", &admin)
            .await
            .json()
            .await
            .unwrap();
        body["data"]["by_state"]["completed"] == 5
    })
    .await;
    let response = app.get_authed("/api/jobs/stats", &admin).await;
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
    assert_eq!(body["data"]["by_node"][app.node.as_str()]["completed"], 5);
}

#[tokio::test]
async fn old_finished_jobs_are_pruned_and_others_kept() {
    // The node's own pruning (every maintenance round) keeps a year here: the call below is
    // the only one that may delete these rows.
    let app =
        crate::helpers::spawn_app_with(|s| s.jobs.retention = Duration::from_secs(365 * 86_400))
            .await;
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
    let me: Uuid = app.me(&token).await.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO jobs (kind, owner_id) VALUES ('noop', $1) RETURNING public_id",
    )
    .bind(me)
    .fetch_one(app.pool())
    .await
    .unwrap();
    app.wait_for_job(&token, id, WAIT, |job| job["state"] == "completed")
        .await;
}

#[tokio::test]
async fn another_users_job_is_404_like_an_unknown_one_and_ids_are_opaque() {
    let app = spawn_app().await;
    let owner = app.token().await;
    let stranger = app.token().await;
    let first = app.enqueue(&owner, &json!({"kind": "noop"})).await;
    let second = app.enqueue(&owner, &json!({"kind": "noop"})).await;
    // Random (v4) UUIDs: they say nothing about how many jobs exist or their order.
    for id in [first, second] {
        assert_eq!(id.get_version_num(), 4, "{id}");
    }
    assert_eq!(app.job(&owner, first).await["id"], first.to_string());

    let theirs = app
        .get_authed(&format!("/api/jobs/{first}"), &stranger)
        .await;
    assert_eq!(theirs.status(), 404);
    let theirs: Value = theirs.json().await.unwrap();
    let unknown = app
        .get_authed(&format!("/api/jobs/{}", Uuid::new_v4()), &stranger)
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(theirs, unknown.json::<Value>().await.unwrap());
    // The internal sequential id does not name a job.
    let internal: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE public_id = $1")
        .bind(first)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(
        app.get_authed(&format!("/api/jobs/{internal}"), &owner)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn test_kinds_and_system_kinds_are_refused_without_the_test_flag() {
    let app = crate::helpers::spawn_app_with(|s| s.jobs.test_kinds = false).await;
    let token = app.token().await;
    for kind in ["sleep", "fail", "welcome_email"] {
        let response = app
            .post_job(&token, &json!({"kind": kind, "args": {"ms": 3_600_000}}))
            .await;
        assert_eq!(response.status(), 422, "{kind}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"errors": {"kind": ["is not one of noop"]}}));
    }
    assert_eq!(
        app.post_job(&token, &json!({"kind": "noop"}))
            .await
            .status(),
        202
    );
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind IN ('sleep', 'fail')")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(held, 0);
}

#[tokio::test]
async fn out_of_bounds_jobs_are_422_with_a_clear_message() {
    let app = spawn_app().await;
    let token = app.token().await;
    let big = "x".repeat(9 * 1024);
    let cases = [
        (
            json!({"kind": "noop", "scheduled_at": "9999-01-01T00:00:00Z"}),
            "scheduled_at",
            "must be at most 30 days ahead",
        ),
        (
            json!({"kind": "noop", "args": {"blob": big}}),
            "args",
            "should be at most 8192 bytes as JSON",
        ),
        (
            json!({"kind": "noop", "max_attempts": 26}),
            "max_attempts",
            "must be from 1 to 25",
        ),
    ];
    for (body, field, message) in cases {
        let response = app.post_job(&token, &body).await;
        assert_eq!(response.status(), 422, "{field}");
        let errors: Value = response.json().await.unwrap();
        assert_eq!(errors, json!({"errors": {field: [message]}}));
    }
    let soon = chrono::Utc::now() + chrono::Duration::days(29);
    let fine = json!({"kind": "noop", "max_attempts": 25, "scheduled_at": soon.to_rfc3339()});
    assert_eq!(app.post_job(&token, &fine).await.status(), 202);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'noop'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1, "nothing refused was stored");
}

#[tokio::test]
async fn a_long_error_is_kept_short() {
    let app = spawn_app().await;
    let token = app.token().await;
    let message = "é".repeat(3000);
    let id = app
        .enqueue(
            &token,
            &json!({"kind": "fail", "args": {"message": message}, "max_attempts": 2}),
        )
        .await;
    let job = app
        .wait_for_job(&token, id, WAIT, |job| job["state"] == "discarded")
        .await;
    for error in job["errors"].as_array().unwrap() {
        let text = error["error"].as_str().unwrap();
        assert_eq!(text.chars().count(), 501, "{text}");
        assert!(text.ends_with("é…"));
    }
}

/// Pruning keeps up: with a short retention, a backlog of 30,000 finished jobs (more than the
/// old 10,000-per-5-minutes could ever clear) and their outbox emails are gone within seconds,
/// while unfinished and recent jobs stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_finished_jobs_and_outbox_emails_is_pruned_within_seconds() {
    let app = crate::helpers::spawn_app_with(|s| s.jobs.retention = Duration::from_secs(60)).await;
    let user = app.sign_up("ada@example.com").await;
    let user_id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
    eventually(WAIT, "the welcome email written", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox_emails")
            .fetch_one(app.pool())
            .await
            .unwrap()
            == 1
    })
    .await;
    sqlx::query(
        "INSERT INTO jobs (kind, state, completed_at, discarded_at)
         SELECT 'noop', CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'discarded' END::job_state,
                CASE WHEN i % 2 = 0 THEN now() - interval '2 hours' END,
                CASE WHEN i % 2 = 1 THEN now() - interval '2 hours' END
         FROM generate_series(1, 30000) AS i",
    )
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (kind, state, completed_at) VALUES
           ('noop', 'completed', now()), ('noop', 'scheduled', NULL)",
    )
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox_emails (job_id, user_id, to_address, subject, body, inserted_at)
         SELECT -i, $1, 'ada@example.com', 'old', 'old', now() - interval '2 hours'
         FROM generate_series(1, 5000) AS i",
    )
    .bind(user_id)
    .execute(app.pool())
    .await
    .unwrap();
    eventually(Duration::from_secs(20), "the backlog pruned", || async {
        let (jobs, outbox): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM jobs WHERE kind = 'noop'),
                    (SELECT count(*) FROM outbox_emails WHERE subject = 'old')",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        jobs == 2 && outbox == 0
    })
    .await;
    // The sign-up's own (recent) welcome email is kept.
    let recent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_emails")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(recent, 1);
}
