//! The checks verify runs, as methods of [`Verifier`](super::Verifier): each one
//! measures through the balancer, the cluster network or psql, and hands the figures to
//! [`verdict`](super::verdict) for the judgement. The chaos check is in
//! [`chaos`](super::chaos).

mod auth;
mod balancer;
mod cleanup;
mod database;
mod jobs;
mod load;
mod pooler;
