//! deployer: a declarative deployer for a multi-node web app cluster.
//!
//! `cluster.toml` → [`config::load`] (raw sections → validated [`config::ClusterSpec`])
//! → [`budget::Budget`] and [`render`]ed files. The CLI in [`cli`] is a thin layer
//! over these.

pub mod apply;
pub mod budget;
pub mod build;
pub mod cli;
pub mod config;
pub mod desired;
pub mod engine;
pub mod names;
pub mod observe;
pub mod ops;
pub mod plan;
pub mod render;
pub mod secrets;
pub mod verify;
