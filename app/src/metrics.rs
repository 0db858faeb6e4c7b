//! Prometheus metrics: requests by route and status with latency histograms, pool connections in
//! use and idle, jobs by state and executions by outcome.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::jobs::JobState;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder).
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the recorder on first use and returns a handle to it.
    pub fn install() -> Self {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .expect("the latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed; then ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        });
        Self {
            handle: handle.clone(),
        }
    }

    /// Drains histogram samples into buckets; call periodically.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Renders the Prometheus text, refreshing the gauges read from the pool and the queue.
    pub async fn render(&self, pool: &PgPool) -> String {
        let in_use = pool.size() as usize - pool.num_idle();
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(in_use as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.num_idle() as f64);
        metrics::gauge!("db_pool_max_connections")
            .set(f64::from(pool.options().get_max_connections()));
        match crate::jobs::queue::count_by_state(pool).await {
            Ok(counts) => {
                for state in JobState::ALL {
                    let count = counts.get(&state).copied().unwrap_or(0);
                    metrics::gauge!("jobs", "state" => state.as_str()).set(count as f64);
                }
            }
            Err(error) => tracing::warn!(error = %error, "failed to count jobs for /metrics"),
        }
        self.handle.render()
    }
}

/// One time series pair per method, route and status.
type SeriesKey = (&'static str, &'static str, u16);

struct Series {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

/// Registered handles, so the hot path does no label allocation or registry lookup. Each
/// runtime thread keeps its own cache (the handles share the same series), so requests never
/// contend on a lock.
fn series(key: SeriesKey, record: impl FnOnce(&Series)) {
    thread_local! {
        static SERIES: RefCell<HashMap<SeriesKey, Series>> = RefCell::new(HashMap::new());
    }
    SERIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let series = cache.entry(key).or_insert_with(|| {
            let (method, route, status) = key;
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            Series {
                requests: metrics::counter!("http_requests_total", &labels),
                latency: metrics::histogram!("http_request_duration_seconds", &labels),
            }
        });
        record(series);
    });
}

/// Middleware: counts requests and records their latency by method, route and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| {
            crate::routes::ROUTES
                .iter()
                .copied()
                .find(|route| *route == path.as_str())
        })
        .unwrap_or("unmatched");
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    series((method, route, response.status().as_u16()), |series| {
        series.requests.increment(1);
        series.latency.record(elapsed);
    });
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
