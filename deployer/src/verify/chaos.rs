//! The chaos check: stop one node under traffic, bring it back with the deployer's own
//! convergence, and count what failed meanwhile. Everything it borrows from the apply
//! path (the cluster lock, the prepared session, the plan, the [`Applier`]) is in
//! [`Convergence`], so that path can be rewired in one place.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::traffic::Traffic;
use super::verdict::{self, ChaosFigures};
use super::{Check, Verifier};
use crate::config::Loaded;
use crate::deploy::{Deployment, Prepared};
use crate::events::Silent;
use crate::lock::Lock;
use crate::names::NodeIndex;
use crate::observed::Observed;
use crate::plan::{self, Goal, Plan};
use crate::target::Probes;

/// The deployer's convergence, held for the whole chaos check: the cluster's lock (no
/// apply or destroy meanwhile) and the cluster on its target, through which convergence
/// runs exactly as `deployer apply` does.
struct Convergence {
    _lock: Lock,
    deployment: Deployment,
    prepared: Prepared,
}

impl Convergence {
    /// Takes the cluster's lock and prepares a convergence to `loaded`. When the cluster
    /// already differs from it, the differences (one per change) instead: chaos must not
    /// run then, since converging afterwards would change more than it restores.
    async fn open(
        file: &Path,
        loaded: &Loaded,
    ) -> anyhow::Result<Result<Convergence, Vec<String>>> {
        let deployment = Deployment::open(file, loaded.clone()).await?;
        let lock = deployment.lock()?;
        let prepared = deployment.prepare(Goal::Converge).await?;
        if !prepared.plan.is_empty() {
            return Ok(Err(steps(&prepared.plan)));
        }
        Ok(Ok(Convergence {
            _lock: lock,
            deployment,
            prepared,
        }))
    }

    /// The cluster as observed when the convergence was prepared.
    fn observed(&self) -> &Observed {
        &self.prepared.observed
    }

    /// What converging would change in the cluster as `observed`.
    fn pending(&self, observed: &Observed) -> anyhow::Result<Plan> {
        Ok(plan::plan(&self.prepared.model, observed, Goal::Converge)?)
    }

    /// Converges exactly as `deployer apply` does, from what is observed now; the plan it
    /// carried out.
    async fn converge(&self) -> anyhow::Result<Plan> {
        let prepared = self.deployment.prepare(Goal::Converge).await?;
        self.deployment.apply(&prepared, &Silent).await?;
        Ok(prepared.plan)
    }

    async fn observe(&self) -> anyhow::Result<Observed> {
        Ok(self.deployment.observe().await?)
    }
}

/// A plan's steps, one line each.
fn steps(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| c.to_string().trim().to_string())
        .collect()
}

impl Verifier<'_> {
    /// Check 7: stops the last node, counts failed requests through the balancer while it is
    /// down, brings it back with the deployer's convergence, waits until it serves again.
    pub(super) async fn chaos(&self) -> Check {
        match self.chaos_run().await {
            Ok(c) => c,
            Err(e) => Check::failed("chaos", format!("{e:#}")),
        }
    }

    async fn chaos_run(&self) -> anyhow::Result<Check> {
        let spec = &self.loaded.spec;
        if spec.app().nodes() < 2 {
            return Ok(Check::failed(
                "chaos",
                "a cluster of one node cannot lose one: needs at least 2 nodes",
            ));
        }
        let convergence = match Convergence::open(self.file, self.loaded).await? {
            Ok(c) => c,
            Err(changes) => return Ok(verdict::chaos_not_in_sync(&changes)),
        };
        let victim = self
            .names
            .node(NodeIndex::new(spec.app().nodes()).context("a cluster has at least one node")?);
        let victim_id = convergence
            .observed()
            .get(&victim)
            .map(|c| c.id.clone())
            .unwrap_or_default();

        // One new connection per request: what is measured is failover away from the
        // lost node. (A client that keeps connections alive can also see an idle one
        // closed by the nginx reload that convergence ends with.)
        let traffic = Traffic::start(
            self.clients.fresh.clone(),
            self.url("/api/health"),
            self.options.concurrency as usize,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Stop: SIGTERM, the app drains, SIGKILL after the grace period.
        let t_stop = Instant::now();
        let grace = spec.rollout().stop_grace();
        let stopped = self.probes.stop(&victim, grace).await;
        let stop_s = t_stop.elapsed().as_secs_f64();
        tokio::time::sleep(self.options.chaos_duration).await;
        let t_converge = Instant::now();
        let served_while_down =
            traffic.nodes_between(t_stop + Duration::from_secs_f64(stop_s), t_converge);

        let converged = match stopped {
            Ok(()) => convergence.converge().await,
            Err(e) => Err(e.into()),
        };
        let converge_s = t_converge.elapsed().as_secs_f64();

        // Back: the node answers through the balancer again.
        let back_deadline = Instant::now() + Duration::from_secs(30);
        let back_at = loop {
            if let Some(at) = traffic.first_from(&victim, t_converge) {
                break Some(at);
            }
            if converged.is_err() || Instant::now() > back_deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // A moment of traffic on the healed cluster, then stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hits = traffic.finish().await;

        let after = convergence.observe().await?;
        let left = convergence.pending(&after)?;
        let same_container = after.get(&victim).map(|c| c.id.as_str()) == Some(victim_id.as_str());
        Ok(verdict::chaos_check(&ChaosFigures {
            stop_seconds: stop_s,
            hits,
            stopped_at: t_stop,
            converge_began: t_converge,
            back_at,
            served_while_down,
            converged: converged.as_ref().map(steps).map_err(|e| format!("{e:#}")),
            converge_seconds: converge_s,
            same_container,
            left: (!left.is_empty()).then(|| left.summary()),
            victim,
        }))
    }
}
