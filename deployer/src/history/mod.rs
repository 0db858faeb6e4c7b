//! The cluster's history, in the manner of `helm history`: every apply that changed the
//! cluster, and every rollback, is a numbered revision in
//! `.deployer/revisions/<cluster>/NNNN.json` next to cluster.toml, written atomically.
//!
//! A revision holds what is needed to run it again: the text of cluster.toml as applied (the
//! spec is rebuilt from it), the images it ran pinned by content (the engine's image ID, or on a
//! swarm the registry digest the app service was pinned to) next to the references the file
//! named, and the database migrations present after it (`_sqlx_migrations`: version,
//! description, checksum). It also says how it ended — applied, or failed (and what a health
//! gate rolled back) — and a short summary of what changed since the revision that ran before
//! it. It never holds a secret: the database password and the JWT key live in
//! `.deployer/secrets/` only, and cluster.toml carries none.
//!
//! The pure parts live here and in [`changes`] (the summary), [`migrations`] (when a rollback
//! fits the schema) and [`store`] (numbering, files).

pub mod changes;
pub mod migrations;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::model::Images;
pub use migrations::Migration;
pub use store::{Store, StoreError};

/// Why a revision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// `deployer apply` of cluster.toml.
    Apply,
    /// `deployer rollback` to revision `to`.
    Rollback { to: u32 },
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step done, the cluster matches the revision.
    Applied,
    /// A step failed; see [`Failure`].
    Failed,
}

/// What went wrong in a failed revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error and its causes, one per line.
    pub error: String,
    /// What was undone when a health gate failed (the new node removed, or Swarm's own
    /// rollback of the service): the nodes that ran before kept serving.
    pub rolled_back: Option<String>,
}

/// The images a revision ran: the references its file named, and what they were then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionImages {
    pub refs: Images,
    /// Single engine: image IDs (`sha256:…`). Swarm: the app image as
    /// `registry/repo:tag@sha256:…` (the digest the service was pinned to), the service
    /// images as the references the hosts pull.
    pub ids: Images,
}

/// One revision of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u32,
    /// When it finished, RFC 3339, UTC.
    pub at: String,
    pub cluster: String,
    /// `docker` or `swarm`.
    pub target: String,
    pub cause: Cause,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// What changed since the revision that ran before it ([`changes::summary`]).
    pub changes: Vec<String>,
    pub images: RevisionImages,
    /// `_sqlx_migrations` after it; `None` when the database could not be read.
    pub migrations: Option<Vec<Migration>>,
    /// cluster.toml as applied.
    pub toml: String,
}

impl Revision {
    pub fn applied(&self) -> bool {
        self.outcome == Outcome::Applied
    }

    /// What it was, in a few words: `apply`, `rollback to 2`, `apply failed; rolled back: …`.
    pub fn description(&self) -> String {
        let what = match self.cause {
            Cause::Apply => "apply".to_string(),
            Cause::Rollback { to } => format!("rollback to {to}"),
        };
        match &self.failure {
            None => what,
            Some(Failure {
                rolled_back: Some(why),
                ..
            }) => format!("{what} failed; rolled back: {why}"),
            Some(Failure { error, .. }) => {
                format!("{what} failed: {}", error.lines().next().unwrap_or(""))
            }
        }
    }
}

/// A revision's standing in the history, as `helm history` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The last revision that applied: what the cluster runs.
    Deployed,
    /// Applied, then replaced by a later one.
    Superseded,
    /// Did not apply.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::Superseded => "superseded",
            Status::Failed => "failed",
        }
    }
}

/// The status of each revision of `revisions` (in order of number).
pub fn statuses(revisions: &[Revision]) -> Vec<Status> {
    let deployed = deployed(revisions).map(|r| r.number);
    revisions
        .iter()
        .map(|r| match r.outcome {
            Outcome::Failed => Status::Failed,
            Outcome::Applied if Some(r.number) == deployed => Status::Deployed,
            Outcome::Applied => Status::Superseded,
        })
        .collect()
}

/// The last revision that applied: what the cluster runs.
pub fn deployed(revisions: &[Revision]) -> Option<&Revision> {
    revisions.iter().rev().find(|r| r.applied())
}

/// Why there is no revision to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("cluster `{cluster}` has no history yet: `deployer apply` records a revision each time it changes the cluster")]
    Empty { cluster: String },
    #[error("cluster `{cluster}` has no revision {to}; its revisions are {}\nhint: `deployer history` lists them", list(known))]
    NoSuch {
        cluster: String,
        to: u32,
        known: Vec<u32>,
    },
    #[error("revision {to} did not apply ({description}): its spec never ran healthy\nhint: roll back to a revision that applied: {}", list(applied))]
    NotApplied {
        to: u32,
        description: String,
        applied: Vec<u32>,
    },
    #[error("there is no revision before {current} that applied, so nothing to roll back to\nhint: `deployer history` lists the revisions")]
    NoPrevious { current: u32 },
}

fn list(numbers: &[u32]) -> String {
    if numbers.is_empty() {
        return "none".into();
    }
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The revision `deployer rollback [--to N]` goes to: `N`, which must have applied; by
/// default the last revision that applied before the deployed one (as `helm rollback`
/// goes to the previous release).
pub fn rollback_target<'a>(
    cluster: &str,
    revisions: &'a [Revision],
    to: Option<u32>,
) -> Result<&'a Revision, PickError> {
    if revisions.is_empty() {
        return Err(PickError::Empty {
            cluster: cluster.into(),
        });
    }
    let applied = || revisions.iter().filter(|r| r.applied());
    if let Some(to) = to {
        let r = revisions
            .iter()
            .find(|r| r.number == to)
            .ok_or_else(|| PickError::NoSuch {
                cluster: cluster.into(),
                to,
                known: revisions.iter().map(|r| r.number).collect(),
            })?;
        if !r.applied() {
            return Err(PickError::NotApplied {
                to,
                description: r.description(),
                applied: applied().map(|r| r.number).collect(),
            });
        }
        return Ok(r);
    }
    let current = deployed(revisions).ok_or_else(|| PickError::NoPrevious {
        current: revisions.last().map_or(0, |r| r.number),
    })?;
    applied()
        .rev()
        .find(|r| r.number < current.number)
        .ok_or(PickError::NoPrevious {
            current: current.number,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn images(app: &str) -> RevisionImages {
        let images = |app: &str| Images {
            app: app.into(),
            postgres: "postgres:15-bookworm".into(),
            redis: None,
            pooler: None,
            balancer: "nginx:1.30".into(),
        };
        RevisionImages {
            refs: images("deployer-app:latest"),
            ids: images(app),
        }
    }

    pub(crate) fn revision(number: u32, cause: Cause, outcome: Outcome) -> Revision {
        Revision {
            number,
            at: "2026-11-27T05:00:00Z".into(),
            cluster: "t".into(),
            target: "docker".into(),
            cause,
            outcome,
            failure: (outcome == Outcome::Failed).then(|| Failure {
                error: "step `wait healthy t-app-1-new` failed\nunhealthy".into(),
                rolled_back: Some("the new t-app-1 must pass its health gate".into()),
            }),
            changes: vec![],
            images: images("sha256:ab12"),
            migrations: Some(vec![]),
            toml: String::new(),
        }
    }

    use Cause::{Apply, Rollback};
    use Outcome::{Applied, Failed};

    fn history(rows: &[(Cause, Outcome)]) -> Vec<Revision> {
        rows.iter()
            .enumerate()
            .map(|(i, (c, o))| revision(i as u32 + 1, *c, *o))
            .collect()
    }

    #[test]
    fn rollback_targets() {
        type Case = (
            &'static str,
            &'static [(Cause, Outcome)],
            Option<u32>,
            Result<u32, &'static str>,
        );
        let cases: &[Case] = &[
            ("no history", &[], None, Err("has no history yet")),
            ("one revision", &[(Apply, Applied)], None, Err("no revision before 1")),
            ("the previous one", &[(Apply, Applied), (Apply, Applied)], None, Ok(1)),
            (
                "skips a failed one",
                &[(Apply, Applied), (Apply, Failed), (Apply, Applied)],
                None,
                Ok(1),
            ),
            (
                "after a failed apply: the one before the deployed one",
                &[(Apply, Applied), (Apply, Applied), (Apply, Failed)],
                None,
                Ok(1),
            ),
            (
                "a second rollback goes back again (as helm's)",
                &[(Apply, Applied), (Apply, Applied), (Rollback { to: 1 }, Applied)],
                None,
                Ok(2),
            ),
            ("--to an earlier one", &[(Apply, Applied), (Apply, Applied), (Apply, Applied)], Some(1), Ok(1)),
            ("--to the deployed one", &[(Apply, Applied), (Apply, Applied)], Some(2), Ok(2)),
            (
                "--to a missing one",
                &[(Apply, Applied), (Apply, Applied)],
                Some(7),
                Err("has no revision 7; its revisions are 1, 2"),
            ),
            (
                "--to a failed one",
                &[(Apply, Applied), (Apply, Failed)],
                Some(2),
                Err("revision 2 did not apply (apply failed; rolled back: the new t-app-1 must pass its health gate): its spec never ran healthy\nhint: roll back to a revision that applied: 1"),
            ),
            ("only failures", &[(Apply, Failed)], None, Err("no revision before 1 that applied")),
        ];
        for (name, rows, to, want) in cases {
            let revisions = history(rows);
            let got = rollback_target("t", &revisions, *to)
                .map(|r| r.number)
                .map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(n), Ok(g)) => assert_eq!(n, g, "{name}"),
                (Err(text), Err(e)) => assert!(e.contains(text), "{name}: {e}"),
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn statuses_and_descriptions_read_as_helm_history() {
        let revisions = history(&[
            (Apply, Applied),
            (Apply, Applied),
            (Apply, Failed),
            (Rollback { to: 1 }, Applied),
        ]);
        let got: Vec<(Status, String)> = statuses(&revisions)
            .into_iter()
            .zip(revisions.iter().map(Revision::description))
            .collect();
        assert_eq!(
            got,
            [
                (Status::Superseded, "apply".to_string()),
                (Status::Superseded, "apply".to_string()),
                (
                    Status::Failed,
                    "apply failed; rolled back: the new t-app-1 must pass its health gate"
                        .to_string()
                ),
                (Status::Deployed, "rollback to 1".to_string()),
            ]
        );
    }

    #[test]
    fn a_revision_round_trips_through_json() {
        let r = revision(3, Rollback { to: 1 }, Failed);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""cause":{"kind":"rollback","to":1}"#),
            "{json}"
        );
        assert!(json.contains(r#""outcome":"failed""#), "{json}");
        assert_eq!(serde_json::from_str::<Revision>(&json).unwrap(), r);
    }
}
