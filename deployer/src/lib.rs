//! deployer: a declarative deployer for a multi-node web app cluster.
//!
//! Data flows one way:
//!
//! ```text
//! cluster.toml ─config─▶ ClusterSpec ─model─▶ Model ─┬─▶ render (generated/)
//!                            │                       │
//!                          budget                    ▼
//!            target::Target::observe ─▶ Observed ─▶ plan ─▶ Plan
//!                                                    │
//!                              target::Target::schedule ─▶ [Step] ─apply─▶ effects
//! ```
//!
//! [`deploy::Deployment`] is the library's front door; [`commands`] is the thin
//! command layer over it (printing, prompts, exit codes, JSON).

pub mod apply;
pub mod backup;
pub mod budget;
pub mod build;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod events;
pub mod history;
pub mod lock;
pub mod logs;
pub mod model;
pub mod names;
pub mod observed;
pub mod plan;
pub mod pooler;
pub mod render;
pub mod rollback;
pub mod secrets;
pub mod steps;
pub mod target;
pub mod tls;
pub mod verify;

#[cfg(test)]
mod fixtures;
