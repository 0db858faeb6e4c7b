//! HTTP tests against real nodes, a real PostgreSQL and a real Redis.

mod auth;
mod cli;
mod cluster;
mod errors;
mod health;
mod helpers;
mod infra;
mod jobs;
mod limits;
mod pooler;
mod shutdown;
mod users;
