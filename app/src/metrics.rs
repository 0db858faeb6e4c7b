//! Prometheus metrics: requests by route and status with latency histograms, pool connections in
//! use and idle, jobs by state and executions by outcome.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Method, Request};
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHashMap;
use sqlx::PgPool;
use tower::{Layer, Service};

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
                    let (count, exact) = counts.get(&state).copied().unwrap_or((0, true));
                    metrics::gauge!("jobs", "state" => state.as_str()).set(count as f64);
                    metrics::gauge!("jobs_count_exact", "state" => state.as_str()).set(if exact {
                        1.0
                    } else {
                        0.0
                    });
                }
            }
            Err(error) => tracing::warn!(error = %error, "failed to count jobs for /metrics"),
        }
        let mut text = self.handle.render();
        text.push_str(&render_requests());
        text
    }
}

/// One time series pair per method, route and status.
type SeriesKey = (&'static str, &'static str, u16);

/// The request counter and latency histogram of one series, as recorded by one thread.
/// Only that thread writes it (relaxed atomics on its own cache lines, no lock, no
/// allocation); `/metrics` sums every thread's cells.
struct Cells {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    /// Non-cumulative counts per bucket of LATENCY_BUCKETS, then +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

impl Cells {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every thread's cells, for rendering. A thread adds an entry the first time it sees a series.
type Registry = Mutex<Vec<(SeriesKey, Arc<Cells>)>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn record_request(key: SeriesKey, elapsed: Duration) {
    thread_local! {
        // Fx, not SipHash: the keys are the app's own constants, nothing a client can choose
        // to collide (the status is one of a few the handlers answer).
        static CELLS: RefCell<FxHashMap<SeriesKey, Arc<Cells>>> = RefCell::new(FxHashMap::default());
    }
    CELLS.with(|cells| {
        let mut cells = cells.borrow_mut();
        let cell = cells.entry(key).or_insert_with(|| {
            let cell = Arc::new(Cells::new());
            registry()
                .lock()
                .expect("metrics registry")
                .push((key, Arc::clone(&cell)));
            cell
        });
        cell.record(elapsed);
    });
}

/// The request series in Prometheus text format (summed over threads).
fn render_requests() -> String {
    use std::fmt::Write;
    let mut totals: BTreeMap<SeriesKey, (u64, u64, Vec<u64>)> = BTreeMap::new();
    for (key, cells) in registry().lock().expect("metrics registry").iter() {
        let entry = totals
            .entry(*key)
            .or_insert_with(|| (0, 0, vec![0; LATENCY_BUCKETS.len() + 1]));
        entry.0 += cells.count.load(Ordering::Relaxed);
        entry.1 += cells.sum_nanos.load(Ordering::Relaxed);
        for (total, bucket) in entry.2.iter_mut().zip(&cells.buckets) {
            *total += bucket.load(Ordering::Relaxed);
        }
    }
    let mut out = String::new();
    if totals.is_empty() {
        return out;
    }
    out.push_str("# TYPE http_requests_total counter\n");
    for ((method, route, status), (count, _, _)) in &totals {
        let _ = writeln!(
            out,
            "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
        );
    }
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for ((method, route, status), (count, sum_nanos, buckets)) in &totals {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{{labels}}} {}",
            *sum_nanos as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels}}} {count}"
        );
    }
    out
}

/// A tower layer that counts requests and records their latency by method, route and status.
///
/// It wraps each route on its own (see `routes::router`), so the route label is a constant of
/// the layer: no lookup of the matched path, no allocation, no boxing or cloning of the inner
/// service per request; the future only adds a timestamp and one recording on completion.
#[derive(Clone, Copy, Debug)]
pub struct TrackRequests {
    route: &'static str,
}

impl TrackRequests {
    /// Labels the requests of the wrapped service with `route` (a route pattern, or
    /// `"unmatched"` for the fallback).
    pub const fn route(route: &'static str) -> Self {
        Self { route }
    }
}

impl<S> Layer<S> for TrackRequests {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracked {
            inner,
            route: self.route,
        }
    }
}

/// The service [`TrackRequests`] wraps around a route.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    route: &'static str,
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = method_label(request.method());
        TrackedFuture {
            started: Instant::now(),
            method,
            route: self.route,
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`]: records the request when the response is ready.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: &'static str,
        route: &'static str,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            record_request(
                (this.method, this.route, response.status().as_u16()),
                this.started.elapsed(),
            );
        }
        Poll::Ready(result)
    }
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
