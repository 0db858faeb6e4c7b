//! The seam between the shared pipeline and an engine. Everything above it —
//! config, budget, the node contract, the model, the planner, verify — is the
//! same for every target; a target only knows how to observe the cluster on its
//! engine, how to schedule a plan as steps, and how to carry out one step.
//!
//! To add a target: a sibling module of [`docker`] implementing [`Target`].

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::events::Events;
use crate::observed::Observed;
use crate::plan::Plan;
use crate::steps::Step;

pub mod docker;
pub mod live_budget;
pub mod logs;
pub mod swarm;

pub trait Target: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// What of the cluster exists on the engine now (found by its label).
    fn observe(&self) -> impl Future<Output = Result<Observed, Self::Error>> + Send;

    /// The steps that carry out `plan` here. Pure.
    fn schedule(&self, plan: &Plan) -> Vec<Step>;

    /// Carries out one step (never [`Step::Guarded`]: the applier unfolds those).
    fn execute(
        &self,
        step: &Step,
        events: &dyn Events,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What `deployer verify` asks of a running cluster beyond HTTP through the
/// balancer: the target's way to look inside it. The checks themselves are
/// target-neutral.
pub trait Probes: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Rows of tab-separated fields from one SQL statement in the cluster's
    /// database (never published on the host: the target reaches it inside).
    fn sql(&self, sql: &str) -> impl Future<Output = Result<Vec<Vec<String>>, Self::Error>> + Send;

    /// Rows of tab-separated fields, column names first, from one statement on the
    /// pooler's admin console (`SHOW POOLS`); only for a cluster with a pooler.
    fn pooler_console(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<Vec<String>>, Self::Error>> + Send;

    /// Runs a `sh` script inside the cluster's network, where node names
    /// resolve (on the balancer); its exit code and output.
    fn in_cluster(
        &self,
        script: &str,
        env: &[String],
    ) -> impl Future<Output = Result<(i64, String), Self::Error>> + Send;

    /// The last `lines` lines a unit wrote (the balancer's access log).
    fn logs(
        &self,
        unit: &str,
        lines: usize,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Each node's address as the balancer's log shows it (`ip:port`) → its name.
    fn node_addresses(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, String>, Self::Error>> + Send;

    /// Where each node answers on the cluster's network (`host:port`), by node name.
    fn node_endpoints(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, String>, Self::Error>> + Send;

    /// Stops a unit as its engine would (stop signal, SIGKILL after `grace`).
    fn stop(
        &self,
        unit: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The target a cluster file names, as one type the front door can hold.
pub enum AnyTarget {
    Docker(docker::DockerTarget),
    Swarm(swarm::SwarmTarget),
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    #[error(transparent)]
    Swarm(#[from] swarm::SwarmError),
    #[error(transparent)]
    Engine(#[from] docker::engine::EngineError),
}

impl Target for AnyTarget {
    type Error = TargetError;

    async fn observe(&self) -> Result<Observed, TargetError> {
        Ok(match self {
            AnyTarget::Docker(t) => t.observe().await?,
            AnyTarget::Swarm(t) => t.observe().await?,
        })
    }

    fn schedule(&self, plan: &Plan) -> Vec<Step> {
        match self {
            AnyTarget::Docker(t) => t.schedule(plan),
            AnyTarget::Swarm(t) => t.schedule(plan),
        }
    }

    async fn execute(&self, step: &Step, events: &dyn Events) -> Result<(), TargetError> {
        match self {
            AnyTarget::Docker(t) => t.execute(step, events).await?,
            AnyTarget::Swarm(t) => t.execute(step, events).await?,
        }
        Ok(())
    }
}

/// The probes of the target a cluster file names (one per command: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnyProbes {
    Docker(docker::probes::DockerProbes),
    Swarm(swarm::probes::SwarmProbes),
}

/// Runs the same call on whichever probes `$self` holds, converting the error.
macro_rules! on_probes {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            AnyProbes::Docker($p) => Ok($call.await?),
            AnyProbes::Swarm($p) => Ok($call.await?),
        }
    };
}

impl Probes for AnyProbes {
    type Error = TargetError;

    async fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, TargetError> {
        on_probes!(self, p => p.sql(sql))
    }

    async fn pooler_console(&self, sql: &str) -> Result<Vec<Vec<String>>, TargetError> {
        on_probes!(self, p => p.pooler_console(sql))
    }

    async fn in_cluster(&self, script: &str, env: &[String]) -> Result<(i64, String), TargetError> {
        on_probes!(self, p => p.in_cluster(script, env))
    }

    async fn logs(&self, unit: &str, lines: usize) -> Result<String, TargetError> {
        on_probes!(self, p => p.logs(unit, lines))
    }

    async fn node_addresses(&self) -> Result<HashMap<String, String>, TargetError> {
        on_probes!(self, p => p.node_addresses())
    }

    async fn node_endpoints(&self) -> Result<HashMap<String, String>, TargetError> {
        on_probes!(self, p => p.node_endpoints())
    }

    async fn stop(&self, unit: &str, grace: Duration) -> Result<(), TargetError> {
        on_probes!(self, p => p.stop(unit, grace))
    }
}
