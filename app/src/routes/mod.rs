//! The HTTP API. One file per resource; the router is assembled here.

mod auth;
mod health;
mod jobs;
mod metrics;
mod users;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::handler::Handler;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::convert::Infallible;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::metrics::TrackRequests;
use crate::state::AppState;

/// The routes, each counted in the request metrics under its own pattern.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", tracked("/api/health", get(health::health)))
        .route("/api/ready", tracked("/api/ready", get(health::ready)))
        .route(
            "/api/users",
            tracked("/api/users", post(users::create).get(users::list)),
        )
        .route(
            "/api/auth/login",
            tracked("/api/auth/login", post(auth::login)),
        )
        .route("/api/auth/me", tracked("/api/auth/me", get(auth::me)))
        .route("/api/jobs", tracked("/api/jobs", post(jobs::create)))
        .route(
            "/api/jobs/stats",
            tracked("/api/jobs/stats", get(jobs::stats)),
        )
        .route("/api/jobs/{id}", tracked("/api/jobs/{id}", get(jobs::show)))
        .route("/metrics", tracked("/metrics", get(metrics::render)))
        .fallback(not_found.layer(TrackRequests::route("unmatched")))
        .with_state(state)
}

/// The whole HTTP service: the router behind the layers every request goes through. They wrap
/// the router once rather than each route (`Router::layer` boxes every route once more per
/// layer, an allocation and a clone per request each).
pub fn service(
    state: AppState,
    body_limit: usize,
) -> impl Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| response.map(Body::new))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(router(state))
}

/// A route's methods with the JSON 405 for the others, counted in the request metrics under
/// the route's pattern (`route` must be the path it is mounted at).
fn tracked(route: &'static str, methods: MethodRouter<AppState>) -> MethodRouter<AppState> {
    methods
        .fallback(method_not_allowed)
        .layer(TrackRequests::route(route))
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
