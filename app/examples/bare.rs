//! The bare references the benchmarks compare the app with: `GET /` is an axum hello-world
//! (`scripts/bench-app.sh`, `scripts/bench-cluster.sh` for `/api/health`); with
//! `DATABASE_URL` set, `GET /me` runs the one PostgreSQL query `/api/auth/me` runs (a user's
//! id, email and name, here found by `ME_EMAIL`) on a pool of `POOL_SIZE` connections, and
//! nothing else: no token, no middleware, no logging. `PORT` sets the port (default 4100).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

async fn hello() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Clone)]
struct Db {
    pool: PgPool,
    email: String,
}

async fn me(State(db): State<Db>) -> Result<Json<Value>, StatusCode> {
    let row: Option<(uuid::Uuid, String, String)> =
        sqlx::query_as("SELECT id, email, full_name FROM users WHERE email = $1")
            .bind(&db.email)
            .fetch_optional(&db.pool)
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let (id, email, full_name) = row.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(
        json!({"data": {"id": id, "email": email, "full_name": full_name}}),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let port: u16 = env("PORT").and_then(|p| p.parse().ok()).unwrap_or(4100);
    let mut app = Router::new().route("/", get(hello));
    if let Some(url) = env("DATABASE_URL") {
        let pool = PgPoolOptions::new()
            .max_connections(env("POOL_SIZE").and_then(|p| p.parse().ok()).unwrap_or(10))
            .connect_lazy(&url)?;
        let email = env("ME_EMAIL").unwrap_or_default();
        app = app.merge(
            Router::new()
                .route("/me", get(me))
                .with_state(Db { pool, email }),
        );
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
