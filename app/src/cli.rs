//! Command-line interface: `app serve` (the default), `app migrate` and `app admin`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "app",
    version,
    about = "The stateless API node the cluster runs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the node: HTTP API and job workers (the default).
    Serve,
    /// Run the database migrations once, under an advisory lock, and exit.
    Migrate,
    /// Manage who is an admin (the API never grants it). Uses DATABASE_URL like `migrate`.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminAction {
    /// Make the user with this email an admin (they may list every user).
    Grant { email: String },
    /// Make the user with this email a plain user again.
    Revoke { email: String },
}
