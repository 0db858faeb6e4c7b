//! Liveness (`/api/health`, no I/O) and readiness (`/api/ready`, database and Redis).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
pub struct Health<'a> {
    status: &'static str,
    timestamp: String,
    version: &'static str,
    uptime: f64,
    node: &'a str,
}

pub async fn health(State(state): State<AppState>) -> Response {
    Json(Health {
        status: "ok",
        timestamp: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started_at.elapsed().as_secs_f64(),
        node: &state.node,
    })
    .into_response()
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let database = check(async {
        sqlx::query("SELECT 1")
            .execute(&state.pool)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
    .await;
    let redis = match &state.redis {
        None => None,
        Some(connection) => {
            let mut connection = connection.clone();
            Some(
                check(async move {
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                        .map(drop)
                        .map_err(|error| error.to_string())
                })
                .await,
            )
        }
    };
    let draining = state.is_shutting_down();
    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), json!(label(&database)));
    if let Some(redis) = &redis {
        checks.insert("redis".into(), json!(label(redis)));
    }
    if draining {
        checks.insert("shutdown".into(), json!("draining"));
    }
    let healthy = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok) && !draining;
    let (status, word) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        for (name, result) in [("database", Some(&database)), ("redis", redis.as_ref())] {
            if let Some(Err(error)) = result {
                tracing::warn!(check = name, error = %error, "readiness check failed");
            }
        }
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(json!({"status": word, "node": &*state.node, "checks": checks})),
    )
        .into_response()
}

async fn check(probe: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err("timed out".into()),
    }
}

fn label(result: &Result<(), String>) -> &'static str {
    if result.is_ok() {
        "ok"
    } else {
        "failing"
    }
}
