//! Liveness (`/api/health`, no I/O) and readiness (`/api/ready`, database and Redis).

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Load balancers and benchmarks call this thousands of times a second, and every call in the
/// same millisecond answers the same bytes: each thread renders the body once per millisecond
/// (and node: tests run several in one process) and hands out cheap clones of it. The body is
/// written by hand around the node's name, escaped once: serde_json's general path cost ~800
/// instructions a render (`scripts/bench-instructions.sh`).
pub async fn health(State(state): State<AppState>) -> Response {
    struct Rendered {
        node: usize,
        /// `,"node":"…"}` for that node, JSON-escaped.
        node_json: String,
        at: i64,
        body: Bytes,
    }
    thread_local! {
        static RENDERED: RefCell<Option<Rendered>> = const { RefCell::new(None) };
    }
    let now = chrono::Utc::now();
    let millis = now.timestamp_millis();
    let node = Arc::as_ptr(&state.node).cast::<u8>() as usize;
    let body = RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        if rendered.as_ref().is_none_or(|r| r.node != node) {
            let name = serde_json::to_string(&*state.node).expect("a string always serializes");
            *rendered = Some(Rendered {
                node,
                node_json: format!(",\"node\":{name}}}"),
                at: i64::MIN,
                body: Bytes::new(),
            });
        }
        let rendered = rendered.as_mut().expect("set above");
        if rendered.at != millis {
            let mut body = String::with_capacity(96 + rendered.node_json.len());
            body.push_str("{\"status\":\"ok\",\"timestamp\":\"");
            body.push_str(&now.to_rfc3339_opts(SecondsFormat::Millis, true));
            body.push_str("\",\"version\":\"");
            body.push_str(env!("CARGO_PKG_VERSION"));
            body.push_str("\",\"uptime\":");
            let _ = write!(body, "{}", state.started_at.elapsed().as_secs_f64());
            body.push_str(&rendered.node_json);
            rendered.at = millis;
            rendered.body = Bytes::from(body);
        }
        rendered.body.clone()
    });
    let mut response = Response::new(Body::from(body));
    // Room for every header the answer leaves with (content type and length, the security
    // headers of `routes::service`): one allocation, no regrowth.
    response.headers_mut().reserve(8);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
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
