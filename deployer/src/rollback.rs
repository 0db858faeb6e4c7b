//! `deployer rollback`: run an earlier revision of the cluster again, as an apply of that
//! revision — its cluster.toml as applied, its images pinned by ID (or by digest on a swarm)
//! whatever the file's references point to now — planned, shown, confirmed, health-gated and
//! recorded like any apply. Refused, before anything changes, when the revision is unknown or
//! failed, when its images are gone, or when the database's schema moved past what its image
//! knows ([`crate::history::migrations`]). cluster.toml itself is left as it is.

use std::path::Path;

use crate::deploy::{base_dir, ConnectionsError, DeployError, Deployment, Prepared};
use crate::history::migrations::{self, Fits, Refusal};
use crate::history::{self, PickError, Revision, Store, StoreError};
use crate::plan::Goal;

/// A rollback ready to be shown, confirmed and carried out (through its
/// [`Rollback::deployment`]'s `apply_and_record`).
pub struct Rollback {
    /// The revision the cluster runs now (the last that applied).
    pub from: Option<Revision>,
    pub to: Revision,
    /// What changes from `from` to `to`.
    pub changes: Vec<String>,
    /// How the revision fits the database's migrations.
    pub fits: Fits,
    /// The revision's deployment: its spec, its images pinned.
    pub deployment: Deployment,
    pub prepared: Prepared,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    History(#[from] StoreError),
    #[error(transparent)]
    Pick(#[from] PickError),
    #[error("cannot read the migrations the database has, so whether revision {revision} fits the schema is unknown. Nothing was changed.\nhint: is PostgreSQL running? `deployer status` shows it")]
    Database {
        revision: u32,
        #[source]
        source: ConnectionsError,
    },
    #[error(transparent)]
    Schema(#[from] Refusal),
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

/// Prepares the rollback of `cluster`, whose file is `file`, to revision `to` (by default the
/// one that applied before the deployed one). Changes nothing. Only the revision's own
/// cluster.toml is read, so a rollback works while `file` is broken. The caller holds the
/// cluster's lock.
pub async fn prepare(
    file: &Path,
    cluster: &str,
    to: Option<u32>,
) -> Result<Rollback, RollbackError> {
    let revisions = Store::at(&base_dir(file), cluster).list()?;
    let target = history::rollback_target(cluster, &revisions, to)?.clone();
    let deployment = Deployment::open_revision(file, &target).await?;
    let database = deployment
        .migrations()
        .await
        .map_err(|source| RollbackError::Database {
            revision: target.number,
            source,
        })?;
    let fits = migrations::judge(target.number, target.migrations.as_deref(), &database)?;
    let prepared = deployment.prepare(Goal::Converge).await?;
    let from = history::deployed(&revisions).cloned();
    Ok(Rollback {
        changes: history::changes::between(file, from.as_ref(), &target),
        from,
        to: target,
        fits,
        deployment,
        prepared,
    })
}
