//! The seam between the shared pipeline and an engine. Everything above it —
//! config, budget, the node contract, the model, the planner, verify — is the
//! same for every target; a target only knows how to observe the cluster on its
//! engine, how to schedule a plan as steps, and how to carry out one step.
//!
//! To add a target: a sibling module of [`docker`] implementing [`Target`].

use std::future::Future;

use crate::events::Events;
use crate::observed::Observed;
use crate::plan::Plan;
use crate::steps::Step;

pub mod docker;

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
