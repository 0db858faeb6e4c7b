use std::time::Instant;

use app::config::PasswordSettings;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, JWT_SECRET, PASSWORD};

#[tokio::test]
async fn login_returns_a_bearer_token_that_me_accepts() {
    let app = spawn_app().await;
    let user = app.sign_up("ada@example.com").await;
    // Email lookup is case-insensitive.
    let response = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["token_type"], "Bearer");
    assert_eq!(body["data"]["expires_in"], 900);
    let token = body["data"]["access_token"].as_str().unwrap();

    let response = app.me(token).await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(
        me,
        json!({"data": {"id": user["id"], "email": "ada@example.com", "full_name": "Test User"}})
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    app.sign_up("ada@example.com").await;
    let wrong = app.login("ada@example.com", "not the password").await;
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    // Missing fields are a validation error, not a login attempt.
    let response = app.post_json("/api/auth/login", &json!({})).await;
    assert_eq!(response.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_cost_an_argon2_run_too() {
    // Real (OWASP) parameters, so the hash dominates the timings.
    let app = spawn_app_with(|s| s.passwords = PasswordSettings::owasp()).await;
    app.sign_up("ada@example.com").await;
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            app.login("ada@example.com", "bad password").await.status(),
            401
        );
        wrong.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(
            app.login("ghost@example.com", "bad password")
                .await
                .status(),
            401
        );
        unknown.push(started.elapsed());
    }
    wrong.sort();
    unknown.sort();
    let (wrong, unknown) = (wrong[2], unknown[2]);
    assert!(
        unknown * 2 > wrong && wrong * 2 > unknown,
        "median wrong-password {wrong:?} vs unknown-email {unknown:?}"
    );
}

fn sign(claims: &Value, key: &[u8]) -> String {
    encode(&Header::default(), claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn me_rejects_missing_malformed_expired_tampered_and_unsigned_tokens() {
    let app = spawn_app().await;
    let user = app.sign_up("ada@example.com").await;
    let good = app.token_for("ada@example.com").await;
    assert_eq!(app.me(&good).await.status(), 200);

    assert_eq!(app.get("/api/auth/me").await.status(), 401, "missing");
    let response = app
        .client
        .get(app.url("/api/auth/me"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "wrong scheme");
    assert_eq!(app.me("not.a.token").await.status(), 401, "malformed");

    let now = chrono::Utc::now().timestamp();
    let sub = user["id"].as_str().unwrap();
    let expired = sign(
        &json!({"sub": sub, "iat": now - 7200, "exp": now - 3600, "iss": "app"}),
        JWT_SECRET,
    );
    assert_eq!(app.me(&expired).await.status(), 401, "expired");
    let foreign_key = sign(
        &json!({"sub": sub, "iat": now, "exp": now + 600, "iss": "app"}),
        b"some-other-key-that-is-long-enough-000",
    );
    assert_eq!(app.me(&foreign_key).await.status(), 401, "other key");
    let wrong_issuer = sign(
        &json!({"sub": sub, "iat": now, "exp": now + 600, "iss": "elsewhere"}),
        JWT_SECRET,
    );
    assert_eq!(app.me(&wrong_issuer).await.status(), 401, "other issuer");

    // Tampered: swap the payload for one naming someone else, keep the signature.
    let parts: Vec<&str> = good.split('.').collect();
    let other = sign(
        &json!({"sub": uuid::Uuid::now_v7().to_string(), "iat": now, "exp": now + 600, "iss": "app"}),
        b"whatever-key-whatever-key-whatever-key",
    );
    let other_payload = other.split('.').nth(1).unwrap();
    let tampered = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    assert_eq!(app.me(&tampered).await.status(), 401, "tampered");

    // alg: none, no signature.
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert_eq!(app.me(&unsigned).await.status(), 401, "alg none");

    let body: Value = app.me("not.a.token").await.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn a_token_for_a_deleted_user_is_401() {
    let app = spawn_app().await;
    let token = app.token().await;
    sqlx::query("DELETE FROM users")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(app.me(&token).await.status(), 401);
}
