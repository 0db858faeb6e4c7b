//! deployer: a declarative deployer for a multi-node web app cluster.
//!
//! `cluster.toml` → [`config::load`] (raw sections → validated [`config::ClusterSpec`])
//! → [`budget::Budget`] and [`render`]ed files. The CLI in [`cli`] is a thin layer
//! over these.

pub mod budget;
pub mod cli;
pub mod config;
pub mod names;
pub mod render;
pub mod secrets;
