//! A bare axum hello-world: the reference `scripts/bench-app.sh` compares `/api/health` with.
//! `PORT` sets the port (default 4100).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn hello() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4100);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    axum::serve(listener, Router::new().route("/", get(hello))).await?;
    Ok(())
}
