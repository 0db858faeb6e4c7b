//! The HTTP API. One file per resource; the router is assembled here.

pub(crate) mod auth;
mod health;
mod jobs;
mod metrics;
mod users;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
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
///
/// A request that takes longer than `timeout` is answered 503 `timeout` in the usual JSON
/// shape (tower-http's `TimeoutLayer` answers with an empty body), and its handler is dropped.
pub fn service(
    state: AppState,
    body_limit: usize,
    timeout: Duration,
) -> impl Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| {
            let mut response = response.map(Body::new);
            secure_headers(response.headers_mut());
            response
        })
        .layer(CatchPanicLayer::custom(panicked))
        .map_future(move |answer| Deadline::new(answer, timeout))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(router(state))
}

pin_project_lite::pin_project! {
    /// A request's answer, or 503 `timeout` once `limit` has passed. The timer is made only when
    /// the handler first has to wait: an answer ready at once (`/api/health`) costs no timer, no
    /// clock read and no reference count on the runtime's handle. The limit therefore counts
    /// from the handler's first wait, microseconds after the request arrived.
    pub struct Deadline<F> {
        #[pin]
        answer: F,
        limit: Duration,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl<F> Deadline<F> {
    fn new(answer: F, limit: Duration) -> Self {
        Self {
            answer,
            limit,
            timer: None,
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Deadline<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answer) = this.answer.poll(cx) {
            return Poll::Ready(answer);
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.limit)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(ApiError::Timeout.into_response())),
            _ => Poll::Pending,
        }
    }
}

/// Headers on every answer: nothing here is for a browser to sniff, frame or cache (tokens
/// and user data are in the bodies), and no answer needs the referrer. The values are built at
/// compile time; each request only inserts them.
fn secure_headers(headers: &mut HeaderMap) {
    const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
    const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    const DENY: HeaderValue = HeaderValue::from_static("DENY");
    const CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
    const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
    headers.reserve(5);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(header::X_FRAME_OPTIONS, DENY);
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP);
    headers.insert(header::REFERRER_POLICY, NO_REFERRER);
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
    ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
}
