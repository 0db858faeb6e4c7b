//! Liveness (`/api/health`, no I/O) and readiness (`/api/ready`, database and Redis).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
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

/// Load balancers and benchmarks call this thousands of times a second, and every call in the
/// same millisecond answers the same bytes: each thread renders the body once per millisecond
/// (and node: tests run several in one process) and hands out cheap clones of it.
pub async fn health(State(state): State<AppState>) -> Response {
    thread_local! {
        static RENDERED: RefCell<Option<(i64, usize, Bytes)>> = const { RefCell::new(None) };
    }
    let now = chrono::Utc::now();
    let millis = now.timestamp_millis();
    let node = Arc::as_ptr(&state.node).cast::<u8>() as usize;
    let body = RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        match &*rendered {
            Some((at, of, body)) if *at == millis && *of == node => body.clone(),
            _ => {
                let health = Health {
                    status: "ok",
                    timestamp: now.to_rfc3339_opts(SecondsFormat::Millis, true),
                    version: env!("CARGO_PKG_VERSION"),
                    uptime: state.started_at.elapsed().as_secs_f64(),
                    node: &state.node,
                };
                let body = Bytes::from(
                    serde_json::to_vec(&health).expect("the health body always serializes"),
                );
                *rendered = Some((millis, node, body.clone()));
                body
            }
        }
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
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
