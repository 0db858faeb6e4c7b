//! The applier: carries out a schedule of [`Step`]s on a [`Target`], in order,
//! and nothing else. It decides nothing: every decision is a step the schedule
//! emitted. A [`Step::Guarded`] group whose step fails has its undo steps carried
//! out (best effort) before the failure is returned.

use std::time::Instant;

use crate::events::{Event, Events};
use crate::steps::Step;
use crate::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("step `{step}` failed")]
    Step {
        step: String,
        /// The target's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{why}: it failed, and was rolled back")]
    RolledBack {
        why: String,
        #[source]
        source: Box<ApplyError>,
    },
}

/// Carries out `steps` on `target`. Safe to run again after a failure or an
/// interruption: the next plan starts from what is observed then.
pub async fn apply<T: Target>(
    target: &T,
    steps: &[Step],
    events: &dyn Events,
) -> Result<(), ApplyError> {
    for step in steps {
        run(target, step, events).await?;
    }
    Ok(())
}

async fn run<T: Target>(target: &T, step: &Step, events: &dyn Events) -> Result<(), ApplyError> {
    if let Step::Guarded { steps, undo, why } = step {
        for s in steps {
            if let Err(e) = Box::pin(run(target, s, events)).await {
                for u in undo {
                    // Best effort: each undo step runs even when another fails.
                    let _ = Box::pin(run(target, u, events)).await;
                }
                events.event(Event::RolledBack { why });
                return Err(ApplyError::RolledBack {
                    why: why.clone(),
                    source: Box::new(e),
                });
            }
        }
        return Ok(());
    }
    events.event(Event::Started(step));
    let t = Instant::now();
    target
        .execute(step, events)
        .await
        .map_err(|source| ApplyError::Step {
            step: step.to_string(),
            source: Box::new(source),
        })?;
    events.event(Event::Finished(step, t.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::observed::Observed;
    use crate::plan::Plan;

    #[derive(Debug, thiserror::Error)]
    #[error("{0} is unhealthy")]
    struct Unhealthy(String);

    /// Records the steps it carries out; `WaitHealthy` of `failing` fails.
    struct Fake {
        failing: &'static str,
        done: Mutex<Vec<String>>,
    }

    impl Target for Fake {
        type Error = Unhealthy;
        async fn observe(&self) -> Result<Observed, Unhealthy> {
            Ok(Observed::default())
        }
        fn schedule(&self, _: &Plan) -> Vec<Step> {
            Vec::new()
        }
        fn stop_nodes(&self, _: &Observed) -> Vec<Step> {
            Vec::new()
        }
        async fn execute(&self, step: &Step, _: &dyn Events) -> Result<(), Unhealthy> {
            self.done.lock().unwrap().push(step.to_string());
            match step {
                Step::WaitHealthy { names } if names.iter().any(|n| n == self.failing) => {
                    Err(Unhealthy(self.failing.into()))
                }
                _ => Ok(()),
            }
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn rollout() -> Vec<Step> {
        vec![
            Step::Rename {
                from: "t-app-1".into(),
                to: "t-app-1-old".into(),
            },
            Step::Guarded {
                steps: vec![
                    Step::Create {
                        names: names(&["t-app-1"]),
                    },
                    Step::WaitHealthy {
                        names: names(&["t-app-1"]),
                    },
                ],
                undo: vec![
                    Step::Remove {
                        names: names(&["t-app-1"]),
                    },
                    Step::Rename {
                        from: "t-app-1-old".into(),
                        to: "t-app-1".into(),
                    },
                ],
                why: "health gate".into(),
            },
            Step::Reload {
                upstream: names(&["t-app-1"]),
                why: "traffic to the new nodes".into(),
            },
        ]
    }

    #[tokio::test]
    async fn a_failing_health_gate_runs_the_undo_steps_and_stops() {
        let fake = Fake {
            failing: "t-app-1",
            done: Mutex::new(Vec::new()),
        };
        let err = apply(&fake, &rollout(), &crate::events::Silent)
            .await
            .unwrap_err();
        assert!(matches!(err, ApplyError::RolledBack { .. }), "{err}");
        assert_eq!(
            *fake.done.lock().unwrap(),
            [
                "rename t-app-1 → t-app-1-old",
                "create t-app-1",
                "wait healthy t-app-1",
                "remove t-app-1",
                "rename t-app-1-old → t-app-1",
            ],
            "the reload never runs: nginx keeps sending to the old node"
        );
    }

    #[tokio::test]
    async fn a_passing_health_gate_goes_on_without_undo() {
        let fake = Fake {
            failing: "none",
            done: Mutex::new(Vec::new()),
        };
        apply(&fake, &rollout(), &crate::events::Silent)
            .await
            .unwrap();
        assert_eq!(
            *fake.done.lock().unwrap(),
            [
                "rename t-app-1 → t-app-1-old",
                "create t-app-1",
                "wait healthy t-app-1",
                "reload nginx → [t-app-1] (traffic to the new nodes)",
            ]
        );
    }
}
