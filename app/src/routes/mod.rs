//! The HTTP API. One file per resource; the router is assembled here.

mod auth;
mod health;
mod jobs;
mod metrics;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route, as the `route` label of the request metrics.
pub const ROUTES: [&str; 9] = [
    "/api/health",
    "/api/ready",
    "/api/users",
    "/api/auth/login",
    "/api/auth/me",
    "/api/jobs",
    "/api/jobs/stats",
    "/api/jobs/{id}",
    "/metrics",
];

pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/api/health", get(health::health))
        .route("/api/ready", get(health::ready))
        .route("/api/users", post(users::create).get(users::list))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/me", get(auth::me))
        .route("/api/jobs", post(jobs::create))
        .route("/api/jobs/stats", get(jobs::stats))
        .route("/api/jobs/{id}", get(jobs::show))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
}
