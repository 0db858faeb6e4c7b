//! Bad requests get stable JSON 4xx errors, never a 500 or internal text.

use serde_json::Value;

use crate::helpers::spawn_app;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    assert!(response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/users"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_json").await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"email":"a@example.com","password":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let big = format!(r#"{{"email":"{}@example.com"}}"#, "a".repeat(100_000));
    let response = app
        .client
        .post(app.url("/api/users"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "body_too_large").await;
}

#[tokio::test]
async fn wrong_types_are_422() {
    let app = spawn_app().await;
    let response = app
        .post_user(&serde_json::json!({"email": 42, "full_name": ["x"]}))
        .await;
    assert_error(response, 422, "invalid_body").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json() {
    let app = spawn_app().await;
    assert_error(app.get("/api/nope").await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "method_not_allowed").await;
}
