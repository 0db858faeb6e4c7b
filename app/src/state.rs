//! What every handler shares. Cloning it (once per request, by the `State` extractor) is one
//! reference-count increment: the fields live behind a single `Arc`, so the two cores do not
//! bounce a dozen shared counters between them on every request.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use crate::auth::{Passwords, Tokens};
use crate::config::{JobSettings, SignupLimitSettings};
use crate::jobs::Queue;
use crate::metrics::Metrics;
use crate::rate_limit::LoginLimiter;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], reached through `Deref`.
pub struct Shared {
    pub pool: PgPool,
    pub node: Arc<str>,
    pub started_at: Instant,
    pub passwords: Passwords,
    pub tokens: Arc<Tokens>,
    pub login_limiter: LoginLimiter,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub queue: Queue,
    pub metrics: Metrics,
    pub job_settings: JobSettings,
    pub signup_limit: SignupLimitSettings,
    shutting_down: AtomicBool,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        node: &str,
        passwords: Passwords,
        tokens: Tokens,
        login_limiter: LoginLimiter,
        redis: Option<redis::aio::ConnectionManager>,
        queue: Queue,
        metrics: Metrics,
        job_settings: JobSettings,
        signup_limit: SignupLimitSettings,
    ) -> Self {
        Self(Arc::new(Shared {
            pool,
            node: Arc::from(node),
            started_at: Instant::now(),
            passwords,
            tokens: Arc::new(tokens),
            login_limiter,
            redis,
            queue,
            metrics,
            job_settings,
            signup_limit,
            shutting_down: AtomicBool::new(false),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// Marks the node as draining: `/api/ready` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
