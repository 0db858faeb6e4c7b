//! The API node the cluster runs N copies of: axum over PostgreSQL, JWT auth, argon2 passwords
//! and a job queue shared by every node.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;

use anyhow::Context;

use crate::auth::Role;
use crate::cli::{AdminAction, Cli, Command};
use crate::config::{DatabaseSettings, Settings};

/// Runs the command the CLI asked for on a fresh multi-threaded runtime.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve()),
        Command::Migrate => runtime.block_on(migrate()),
        Command::Admin { action } => runtime.block_on(admin(action)),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("invalid configuration")?;
    telemetry::init_tracing(settings.log_format);
    let application = startup::Application::build(settings)
        .await
        .context("failed to start the node")?;
    application
        .run_until_stopped(startup::shutdown_signal())
        .await
        .context("the node failed")
}

async fn migrate() -> anyhow::Result<()> {
    let log_format = config::log_format_from_env().context("invalid configuration")?;
    telemetry::init_tracing(log_format);
    let database = DatabaseSettings::from_env().context("invalid configuration")?;
    db::migrate(&database)
        .await
        .context("failed to run the migrations")
}

async fn admin(action: AdminAction) -> anyhow::Result<()> {
    let database = DatabaseSettings::from_env().context("invalid configuration")?;
    let (email, role) = match &action {
        AdminAction::Grant { email } => (email, Role::Admin),
        AdminAction::Revoke { email } => (email, Role::User),
    };
    let pool = db::pool(&database);
    let changed = db::set_role(&pool, email, role)
        .await
        .context("failed to change the user's role")?;
    pool.close().await;
    if !changed {
        anyhow::bail!("no user has the email {email}");
    }
    println!("{email} is now {} {}", article(role), role.as_str());
    Ok(())
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an",
        Role::User => "a",
    }
}
