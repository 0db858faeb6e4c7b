//! The [rollout] section: how a rolling update adds, drains and stops nodes.

use super::Checker;
use crate::config::raw::RawRollout;
use crate::config::spec::{default_health_interval, RolloutSpec, TargetKind, MAX_NODES};

/// The section's values; an invalid one is reported and replaced by its default.
pub(super) fn convert(c: &mut Checker, r: &RawRollout, target: TargetKind) -> RolloutSpec {
    let max_surge = c.int(
        &r.max_surge,
        "max_surge",
        1,
        1..=MAX_NODES,
        "nodes added at a time during a rolling update; 1 is the gentlest",
    );
    let drain = c.seconds(
        &r.drain_seconds,
        "drain_seconds",
        2,
        0..=600,
        "seconds a node keeps serving in-flight requests after leaving the balancer",
    );
    let stop_grace = c.seconds(
        &r.stop_grace_seconds,
        "stop_grace_seconds",
        20,
        1..=600,
        "seconds between SIGTERM and SIGKILL",
    );
    let health_timeout = c.seconds(
        &r.health_timeout,
        "health_timeout",
        60,
        5..=3600,
        "seconds a new container may take to pass its health check",
    );
    let health_interval = c.seconds(
        &r.health_interval,
        "health_interval",
        default_health_interval(target).as_secs() as u32,
        1..=300,
        "seconds between the engine's health checks of each container; each check costs \
         ~60 ms of CPU, so a short interval takes throughput from the nodes",
    );
    RolloutSpec {
        max_surge: max_surge as u32,
        drain,
        stop_grace,
        health_timeout,
        health_interval,
    }
}
