//! Failed-login rate limiting is shared by all nodes, in Redis or in PostgreSQL.

use app::config::Settings;
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
