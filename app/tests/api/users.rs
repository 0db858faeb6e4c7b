use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, PASSWORD};

fn sign_up_body(email: &str) -> Value {
    json!({
        "email": email,
        "full_name": "Ada Lovelace",
        "password": PASSWORD,
        "password_confirmation": PASSWORD,
    })
}

#[tokio::test]
async fn sign_up_returns_201_with_the_user() {
    let app = spawn_app().await;
    let response = app.post_user(&sign_up_body("ada@example.com")).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert!(uuid::Uuid::parse_str(data["id"].as_str().unwrap()).is_ok());
    assert_eq!(data["email"], "ada@example.com");
    assert_eq!(data["full_name"], "Ada Lovelace");
    chrono::DateTime::parse_from_rfc3339(data["inserted_at"].as_str().unwrap()).unwrap();
    assert!(data.get("password_hash").is_none());

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind("ada@example.com")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"));
}

#[tokio::test]
async fn sign_up_enqueues_a_welcome_email_written_to_the_outbox() {
    let app = spawn_app().await;
    let user = app.sign_up("grace@example.com").await;
    let user_id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    eventually(Duration::from_secs(10), "the welcome email", || async {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox_emails WHERE user_id = $1 AND to_address = $2",
        )
        .bind(user_id)
        .bind("grace@example.com")
        .fetch_one(app.pool())
        .await
        .unwrap();
        count == 1
    })
    .await;
    let (state, node): (String, Option<String>) = sqlx::query_as(
        "SELECT state::text, node FROM jobs WHERE kind = 'welcome_email' AND args->>'user_id' = $1",
    )
    .bind(user_id.to_string())
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(state, "completed");
    assert_eq!(node.as_deref(), Some(app.node.as_str()));
}

#[tokio::test]
async fn invalid_sign_ups_are_422_by_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "not-an-email", "full_name": "A", "password": PASSWORD, "password_confirmation": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "full_name": "A", "password": "short", "password_confirmation": "short"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "full_name": "A", "password": PASSWORD, "password_confirmation": "other password"}),
            "password_confirmation",
        ),
        (
            json!({"email": "a@example.com", "full_name": "   ", "password": PASSWORD, "password_confirmation": PASSWORD}),
            "full_name",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_user(&body).await;
        assert_eq!(response.status(), 422, "{body}");
        let errors: Value = response.json().await.unwrap();
        let fields: Vec<&String> = errors["errors"].as_object().unwrap().keys().collect();
        assert_eq!(fields, [field], "{errors}");
        assert!(errors["errors"][field][0].is_string());
    }
    // Everything missing: every field reported at once.
    let response = app.post_user(&json!({})).await;
    assert_eq!(response.status(), 422);
    let errors: Value = response.json().await.unwrap();
    for field in ["email", "full_name", "password"] {
        assert!(errors["errors"][field].is_array(), "{errors}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_taken_email_is_409_case_insensitively() {
    let app = spawn_app().await;
    app.sign_up("Linus@Example.com").await;
    let response = app.post_user(&sign_up_body("linus@example.COM")).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert!(body["errors"]["email"][0].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_sign_ups_with_one_email_give_one_201() {
    // Room in the hashing queue for all of them: this is about the unique index, not capacity
    // (limits.rs has the full queue).
    let app = crate::helpers::spawn_app_with(|s| {
        s.database.pool_size = 10;
        s.passwords.queue = 100;
    })
    .await;
    let body = sign_up_body("race@example.com");
    let responses = join_all((0..100).map(|i| {
        let client = app.client.clone();
        let url = app.url("/api/users");
        let mut body = body.clone();
        // Vary the case too: uniqueness is case-insensitive.
        if i % 2 == 1 {
            body["email"] = json!("RACE@example.com");
        }
        async move { client.post(url).json(&body).send().await.unwrap().status() }
    }))
    .await;
    let created = responses.iter().filter(|s| s.as_u16() == 201).count();
    let conflicts = responses.iter().filter(|s| s.as_u16() == 409).count();
    assert_eq!(created, 1, "{responses:?}");
    assert_eq!(conflicts, 99, "{responses:?}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn users_are_listed_in_pages_with_a_cursor() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for i in 0..4 {
        app.sign_up(&format!("page{i}@example.com")).await;
    }
    let first: Value = app
        .get_authed("/api/users?limit=3", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let second: Value = app
        .get_authed(&format!("/api/users?limit=3&after={cursor}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert!(second["next_cursor"].is_null());
    let mut emails: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|user| user["email"].as_str().unwrap().to_owned())
        .collect();
    let total = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), total, "pages overlap");
    assert_eq!(total, 5);
}

#[tokio::test]
async fn listing_users_needs_a_token_and_a_sane_limit() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/users").await.status(), 401);
    let token = app.token().await;
    for query in ["limit=0", "limit=101", "limit=abc", "after=not-a-cursor"] {
        let response = app.get_authed(&format!("/api/users?{query}"), &token).await;
        assert_eq!(response.status(), 422, "{query}");
    }
}

fn emails(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap().to_owned())
        .collect()
}

/// Only an admin lists everyone; anyone else sees only themselves. The admin role comes from
/// the operator's `app admin grant` (the real binary), never from the API, and is read at each
/// request, so a revoke takes effect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_list_every_user_and_only_the_operator_makes_admins() {
    let app = spawn_app().await;
    // Asking for the role at sign-up does nothing.
    let response = app
        .post_user(&json!({
            "email": "ada@example.com", "full_name": "Ada", "role": "admin",
            "password": crate::helpers::PASSWORD,
            "password_confirmation": crate::helpers::PASSWORD,
        }))
        .await;
    assert_eq!(response.status(), 201);
    app.sign_up("grace@example.com").await;
    let ada = app.token_for("ada@example.com").await;
    let list = |token: String| {
        let app = &app;
        async move {
            let response = app.get_authed("/api/users", &token).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let page = list(ada.clone()).await;
    assert_eq!(emails(&page), ["ada@example.com"]);
    assert!(page["next_cursor"].is_null());
    assert_eq!(app.get_authed("/api/jobs/stats", &ada).await.status(), 403);

    let admin = |action: &str, email: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["admin", action, email])
            .env("DATABASE_URL", crate::helpers::database_url(&app.db))
            .env("LOG_FORMAT", "text")
            .output()
            .unwrap()
    };
    let granted = admin("grant", "ADA@example.com");
    assert!(granted.status.success(), "{granted:?}");
    assert_eq!(
        String::from_utf8_lossy(&granted.stdout).trim(),
        "ADA@example.com is now an admin"
    );
    let mut all = emails(&list(ada.clone()).await);
    all.sort();
    assert_eq!(all, ["ada@example.com", "grace@example.com"]);
    assert_eq!(app.get_authed("/api/jobs/stats", &ada).await.status(), 200);

    let revoked = admin("revoke", "ada@example.com");
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(emails(&list(ada).await), ["ada@example.com"]);

    let unknown = admin("grant", "nobody@example.com");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no user has the email nobody@example.com"));
}
