//! What every handler shares. Cheap to clone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use crate::auth::{Passwords, Tokens};
use crate::jobs::Queue;
use crate::metrics::Metrics;
use crate::rate_limit::LoginLimiter;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub node: Arc<str>,
    pub started_at: Instant,
    pub passwords: Passwords,
    pub tokens: Arc<Tokens>,
    pub login_limiter: LoginLimiter,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub queue: Queue,
    pub metrics: Metrics,
    shutting_down: Arc<AtomicBool>,
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
    ) -> Self {
        Self {
            pool,
            node: Arc::from(node),
            started_at: Instant::now(),
            passwords,
            tokens: Arc::new(tokens),
            login_limiter,
            redis,
            queue,
            metrics,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the node as draining: `/api/ready` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
