//! Failed-login and sign-up limits are shared by all nodes, in Redis or in PostgreSQL, and hold
//! under concurrency; a full hashing queue, a slow request and every answer's headers.

use std::time::Duration;

use app::config::{PasswordSettings, Settings, SignupLimitSettings};
use serde_json::Value;

use crate::helpers::{spawn_app_with, test_redis, TestApp};

async fn assert_shared_limit(first: &TestApp, second: &TestApp) {
    first.sign_up("ada@example.com").await;
    // Ten failures, alternating nodes: each node alone saw only five.
    for i in 0..10 {
        let node = if i % 2 == 0 { first } else { second };
        assert_eq!(
            node.login("ada@example.com", "wrong password")
                .await
                .status(),
            401
        );
    }
    for node in [first, second] {
        // Even the right password is refused until the window ends.
        let response = node
            .login("ada@example.com", crate::helpers::PASSWORD)
            .await;
        assert_eq!(response.status(), 429);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_failed_logins");
    }
    // The limit is per email (and address): another account is unaffected.
    first.sign_up("grace@example.com").await;
    assert_eq!(
        second
            .login("grace@example.com", crate::helpers::PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_is_shared_through_redis() {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let with_redis = |s: &mut Settings| s.redis = Some(test_redis(&prefix));
    let first = spawn_app_with(with_redis).await;
    let second = first.spawn_peer(with_redis).await;
    assert_shared_limit(&first, &second).await;
    // Nothing was written to PostgreSQL's fallback table.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failures")
        .fetch_one(first.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_limit_is_shared_through_postgres() {
    let first = spawn_app_with(|_| {}).await;
    let second = first.spawn_peer(|_| {}).await;
    assert_shared_limit(&first, &second).await;
}

#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let app = spawn_app_with(|_| {}).await;
    app.sign_up("ada@example.com").await;
    // Twice: nine failures, then a success that clears them, so nine more are allowed.
    for _ in 0..2 {
        for _ in 0..9 {
            assert_eq!(
                app.login("ada@example.com", "nope nope").await.status(),
                401
            );
        }
        assert_eq!(
            app.login("ada@example.com", crate::helpers::PASSWORD)
                .await
                .status(),
            200
        );
    }
}

/// 100 wrong passwords for one email at once, spread over two nodes: exactly the configured
/// 10 are tried (401), the other 90 refused (429), and the right password is refused after.
async fn assert_atomic_under_concurrency(first: &TestApp, second: &TestApp) {
    use futures_util::stream::{self, StreamExt};
    first.sign_up("ada@example.com").await;
    let statuses: Vec<u16> = stream::iter(0..100)
        .map(|i| {
            let node = if i % 2 == 0 { first } else { second };
            async move {
                node.login("ada@example.com", "wrong password")
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let count = |code| statuses.iter().filter(|&&s| s == code).count();
    assert_eq!(
        (count(401), count(429)),
        (10, 90),
        "every status: {statuses:?}"
    );
    assert_eq!(
        first
            .login("ada@example.com", crate::helpers::PASSWORD)
            .await
            .status(),
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_under_concurrency_in_postgres() {
    let first = spawn_app_with(|_| {}).await;
    let second = first.spawn_peer(|_| {}).await;
    assert_atomic_under_concurrency(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_under_concurrency_in_redis() {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let with_redis = |s: &mut Settings| s.redis = Some(test_redis(&prefix));
    let first = spawn_app_with(with_redis).await;
    let second = first.spawn_peer(with_redis).await;
    assert_atomic_under_concurrency(&first, &second).await;
}

async fn sign_up_from(app: &TestApp, address: &str, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/users"))
        .header("x-real-ip", address)
        .json(&serde_json::json!({
            "email": email, "full_name": "Ada",
            "password": crate::helpers::PASSWORD,
            "password_confirmation": crate::helpers::PASSWORD,
        }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_ups_are_limited_per_client_address() {
    let app = spawn_app_with(|s| {
        s.signup_limit = SignupLimitSettings {
            max_per_window: 3,
            window: Duration::from_secs(600),
        }
    })
    .await;
    for i in 0..3 {
        let response = sign_up_from(&app, "203.0.113.7", &format!("u{i}@example.com")).await;
        assert_eq!(response.status(), 201);
    }
    let refused = sign_up_from(&app, "203.0.113.7", "u3@example.com").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_signups");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 3, "the refused sign-up created nothing");
    // Another address is not affected.
    assert_eq!(
        sign_up_from(&app, "198.51.100.1", "u3@example.com")
            .await
            .status(),
        201
    );
}

/// A storm of sign-ups on a node with one hashing slot and a queue of one: the excess gets a
/// quick 503 with `Retry-After` (never a long wait), the rest are created, health answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hash_queue_answers_503_with_retry_after() {
    use futures_util::stream::{self, StreamExt};
    let app = spawn_app_with(|s| {
        // Hashes slow enough that all twelve arrive while the first two hold the places, and
        // connections for all twelve (a pool wait would be another 503).
        s.passwords = PasswordSettings {
            iterations: 6,
            concurrency: 1,
            queue: 1,
            ..PasswordSettings::owasp()
        };
        s.database.pool_size = 16;
        // Slow machines: the two that go through must not time out instead.
        s.request_timeout = Duration::from_secs(300);
    })
    .await;
    let answers: Vec<(u16, Option<String>, Value)> = stream::iter(0..12)
        .map(|i| {
            let app = &app;
            async move {
                let response =
                    sign_up_from(app, "192.0.2.1", &format!("storm{i}@example.com")).await;
                let status = response.status().as_u16();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|value| value.to_str().unwrap().to_owned());
                (status, retry, response.json().await.unwrap())
            }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let created = answers.iter().filter(|a| a.0 == 201).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(created + busy.len(), 12, "{answers:?}");
    assert!(
        created >= 2,
        "one hashing and one queued go through: {answers:?}"
    );
    assert!(!busy.is_empty(), "nothing was turned away: {answers:?}");
    for (_, retry, body) in busy {
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["error"]["code"], "busy");
    }
    assert_eq!(app.get("/api/health").await.status(), 200);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users as usize, created);
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_a_json_503() {
    let app = spawn_app_with(|s| {
        s.request_timeout = Duration::from_millis(20);
        // A login that takes several times that (about 50–100 ms on an idle core).
        s.passwords = PasswordSettings {
            iterations: 10,
            ..PasswordSettings::owasp()
        };
    })
    .await;
    let started = std::time::Instant::now();
    let response = app.login("nobody@example.com", "whatever").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "timeout", "message": "the request took too long"}})
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Fast routes are unaffected.
    assert_eq!(app.get("/api/health").await.status(), 200);
}

#[tokio::test]
async fn answers_carry_security_headers_and_are_not_cached() {
    let app = spawn_app_with(|_| {}).await;
    app.sign_up("ada@example.com").await;
    let login = app.login("ada@example.com", crate::helpers::PASSWORD).await;
    let health = app.get("/api/health").await;
    let missing = app.get("/nowhere").await;
    for response in [&login, &health, &missing] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
    }
}
