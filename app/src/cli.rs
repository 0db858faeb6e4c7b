//! Command-line interface: `app serve` (the default) and `app migrate`.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the node: HTTP API and job workers (the default).
    Serve,
    /// Run the database migrations once, under an advisory lock, and exit.
    Migrate,
}
