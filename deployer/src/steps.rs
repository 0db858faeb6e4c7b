//! Steps: what apply will do, one effect at a time, in order. A target's
//! schedule turns a [`Plan`](crate::plan::Plan) into steps (a pure function,
//! table-tested); the applier ([`crate::apply`]) only carries them out. Every
//! decision — surge batches, stop-first replacement, what is undone when a
//! health gate fails — is visible here, in `plan --json` and in the tests.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    CreateNetwork {
        name: String,
    },
    CreateVolume {
        name: String,
    },
    /// Create each unit from the model (under the given name), place its files,
    /// start it. Concurrently; no waiting.
    Create {
        names: Vec<String>,
    },
    /// Start existing, stopped units.
    Start {
        names: Vec<String>,
    },
    /// Wait until each unit passes its health check (or exits: a failure).
    WaitHealthy {
        names: Vec<String>,
    },
    /// Read the running database's max_connections and the connections other
    /// clients hold; refuse a peak that does not fit.
    CheckBudget,
    /// Run `app migrate` once in a one-off unit, check its exit, remove it.
    Migrate,
    /// Give a unit another name (the old node steps aside as `<node>-old`).
    Rename {
        from: String,
        to: String,
    },
    /// Point the balancer at exactly these nodes: write its config, `nginx -t`,
    /// reload (no restart). No-op while no balancer runs.
    Reload {
        upstream: Vec<String>,
        why: String,
    },
    /// Let requests already sent to nodes on their way out finish.
    Drain {
        #[serde(serialize_with = "secs", rename = "seconds")]
        duration: Duration,
    },
    /// SIGTERM (the unit's stop signal), SIGKILL after `grace`.
    Stop {
        names: Vec<String>,
        #[serde(serialize_with = "secs", rename = "grace_seconds")]
        grace: Duration,
    },
    Remove {
        names: Vec<String>,
    },
    /// Create or update a service to the model and wait for the outcome: the
    /// engine rolls its tasks itself (Swarm: start-first, `max_surge` at a
    /// time, health-gated, rolled back on failure). Fails if it was rolled back.
    Deploy {
        service: String,
        replicas: u32,
        why: String,
    },
    RemoveNetwork {
        name: String,
    },
    RemoveVolume {
        name: String,
    },
    /// Carry out `steps`; if one fails, carry out `undo` (best effort) and stop
    /// the apply with the failure.
    Guarded {
        steps: Vec<Step>,
        undo: Vec<Step>,
        why: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |n: &[String]| n.join(", ");
        match self {
            Step::CreateNetwork { name } => write!(f, "create network {name}"),
            Step::CreateVolume { name } => write!(f, "create volume {name}"),
            Step::Create { names } => write!(f, "create {}", list(names)),
            Step::Start { names } => write!(f, "start {}", list(names)),
            Step::WaitHealthy { names } => write!(f, "wait healthy {}", list(names)),
            Step::CheckBudget => write!(f, "check the budget against the running database"),
            Step::Migrate => write!(f, "migrate"),
            Step::Rename { from, to } => write!(f, "rename {from} → {to}"),
            Step::Reload { upstream, why } => {
                write!(f, "reload nginx → [{}] ({why})", list(upstream))
            }
            Step::Drain { duration } => write!(f, "drain {}s", duration.as_secs_f64()),
            Step::Stop { names, grace } => {
                write!(f, "stop {} (grace {}s)", list(names), grace.as_secs())
            }
            Step::Remove { names } => write!(f, "remove {}", list(names)),
            Step::Deploy {
                service,
                replicas,
                why,
            } => write!(
                f,
                "deploy service {service} × {replicas} ({why}), wait until it converged"
            ),
            Step::RemoveNetwork { name } => write!(f, "remove network {name}"),
            Step::RemoveVolume { name } => write!(f, "remove volume {name}"),
            Step::Guarded { steps, undo, why } => {
                write!(f, "guarded ({why}): ")?;
                let s: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
                let u: Vec<String> = undo.iter().map(|s| s.to_string()).collect();
                write!(f, "{}; on failure: {}", s.join("; "), u.join("; "))
            }
        }
    }
}

/// Steps as one line each, nested guarded steps indented (`plan --steps`, tests).
pub fn lines(steps: &[Step]) -> Vec<String> {
    fn walk(steps: &[Step], indent: &str, out: &mut Vec<String>) {
        for s in steps {
            match s {
                Step::Guarded { steps, undo, why } => {
                    out.push(format!("{indent}guarded ({why}):"));
                    walk(steps, &format!("{indent}  "), out);
                    out.push(format!("{indent}on failure:"));
                    walk(undo, &format!("{indent}  "), out);
                }
                s => out.push(format!("{indent}{s}")),
            }
        }
    }
    let mut out = Vec::new();
    walk(steps, "", &mut out);
    out
}
