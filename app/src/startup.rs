//! Building a node from its settings and running it until a shutdown signal.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{Passwords, Tokens};
use crate::config::Settings;
use crate::db;
use crate::jobs::{JobRunner, Queue};
use crate::metrics::Metrics;
use crate::rate_limit::LoginLimiter;
use crate::routes;
use crate::state::AppState;

/// A node, bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    runner: JobRunner,
    settings: Settings,
}

impl Application {
    /// Binds `0.0.0.0:PORT` and prepares the pools. Connections open lazily: a node whose
    /// database is not up yet starts, and `/api/ready` says so.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::pool(&settings.database);
        let listener_pool = db::listener_pool(&settings.database);
        let metrics = Metrics::install();
        let passwords =
            Passwords::new(&settings.passwords).context("invalid password hashing settings")?;
        let tokens = Tokens::new(&settings.jwt);
        let (redis, login_limiter) = match &settings.redis {
            Some(redis_settings) => {
                let client = redis::Client::open(redis_settings.url.as_str())
                    .context("REDIS_URL is invalid")?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2);
                let connection = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    .context("failed to connect to Redis")?;
                let limiter = LoginLimiter::redis(
                    connection.clone(),
                    &redis_settings.key_prefix,
                    settings.login_limit,
                );
                (Some(connection), limiter)
            }
            None => (
                None,
                LoginLimiter::postgres(pool.clone(), settings.login_limit),
            ),
        };
        let queue = Queue::new(pool.clone(), &settings.node_name);
        let runner = JobRunner::new(
            pool.clone(),
            listener_pool,
            &settings.node_name,
            settings.jobs,
            metrics.clone(),
        );
        let state = AppState::new(
            pool,
            &settings.node_name,
            passwords,
            tokens,
            login_limiter,
            redis,
            queue,
            metrics,
            settings.jobs,
            settings.signup_limit,
        );
        let address = SocketAddr::from(([0, 0, 0, 0], settings.port));
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on {address}"))?;
        let port = listener.local_addr().context("no local address")?.port();
        Ok(Self {
            listener,
            port,
            state,
            runner,
            settings,
        })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    /// Serves HTTP and runs the job workers until `shutdown` resolves, then (after the
    /// settings' `shutdown_delay`, serving as usual, `/api/ready` answering 503) drains: stop
    /// accepting connections, finish in-flight requests, stop fetching jobs, let running jobs
    /// finish until the deadline, hand the rest back to the queue, close the pools.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            port,
            state,
            runner,
            settings,
        } = self;
        // Leave a margin of the shutdown timeout for handing jobs back and closing the pools.
        let drain = settings.shutdown_timeout.mul_f64(0.8);
        let (stop_tx, stop_rx) = watch::channel(false);
        tracing::info!(
            node = %settings.node_name,
            port,
            pool_size = settings.database.pool_size,
            job_workers = settings.jobs.workers,
            version = env!("CARGO_PKG_VERSION"),
            "node started"
        );

        let app = routes::service(state.clone(), settings.body_limit, settings.request_timeout);
        let mut server_stop = stop_rx.clone();
        let server = axum::serve(
            listener,
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
        )
        .with_graceful_shutdown(async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        });
        let mut deadline_stop = stop_rx.clone();
        let server = async move {
            let mut server = std::pin::pin!(server.into_future());
            tokio::select! {
                result = &mut server => return result.context("the HTTP server failed"),
                _ = deadline_stop.wait_for(|stop| *stop) => {}
            }
            match tokio::time::timeout(drain, server).await {
                Ok(result) => result.context("the HTTP server failed"),
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish before the deadline");
                    Ok(())
                }
            }
        };
        let jobs = runner.run(stop_rx, drain);

        let trigger = {
            let state = state.clone();
            let delay = settings.shutdown_delay;
            async move {
                shutdown.await;
                state.begin_shutdown();
                if !delay.is_zero() {
                    // The engine has taken this node out of service discovery; a balancer
                    // that has not asked again yet still sends here. Serve as usual until
                    // it has, so no request meets a closed port.
                    tracing::info!(
                        delay_secs = delay.as_secs(),
                        "stop signal: serving on until the balancer has let go of this node"
                    );
                    tokio::time::sleep(delay).await;
                }
                tracing::info!("shutting down: draining requests and jobs");
                let _ = stop_tx.send(true);
                // Keep the sender alive so receivers do not see a closed channel as a stop.
                std::future::pending::<()>().await;
            }
        };
        let work = async { tokio::join!(server, jobs).0 };
        let result = tokio::select! {
            result = work => result,
            _ = trigger => unreachable!("the trigger never completes"),
        };
        // What is left of the budget; a request still holding a connection does not keep the
        // process alive past it.
        let close_budget = settings.shutdown_timeout.saturating_sub(drain);
        if tokio::time::timeout(close_budget, state.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("connections still in use at the deadline; exiting anyway");
        }
        tracing::info!("node stopped");
        result
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
