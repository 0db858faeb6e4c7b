//! `history` and `rollback`: the cluster's revisions, and running an earlier one again.

use std::path::Path;

use anyhow::{anyhow, Context};
use serde_json::json;

use super::cluster::{confirm, print_plan};
use super::{HistoryArgs, Outcome, Progress, RollbackArgs};
use crate::deploy::base_dir;
use crate::history::migrations::Fits;
use crate::history::{self, Cause, Revision, Store};
use crate::lock::Lock;

/// The cluster's name from its file; a file that no longer validates still names its
/// cluster, so its history can be read (and a good revision found) while it is broken.
fn cluster_name(file: &Path) -> anyhow::Result<String> {
    match crate::config::load(file) {
        Ok(loaded) => Ok(loaded.spec.name().to_string()),
        Err(crate::config::LoadError::Invalid { report }) => {
            let table: toml::Table = toml::from_str(&report.source)
                .with_context(|| format!("{} is not valid TOML", file.display()))?;
            table
                .get("cluster")
                .and_then(|c| c.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{} names no cluster ([cluster] name)", file.display()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `2026-11-27T05:01:02Z` → `2026-11-27 05:01:02`.
fn when(at: &str) -> String {
    at.trim_end_matches('Z').replacen('T', " ", 1)
}

pub fn history(file: &Path, args: &HistoryArgs) -> anyhow::Result<Outcome> {
    let cluster = cluster_name(file)?;
    let store = Store::at(&base_dir(file), &cluster);
    let revisions = store.list()?;
    if let Some(n) = args.show {
        let r = revisions.iter().find(|r| r.number == n).ok_or_else(|| {
            anyhow!(
                "cluster `{cluster}` has no revision {n}; `deployer history` lists its revisions"
            )
        })?;
        print!("{}", r.toml);
        return Ok(Outcome::Ok);
    }
    let statuses = history::statuses(&revisions);
    if args.json {
        let rows: Vec<_> = revisions
            .iter()
            .zip(&statuses)
            .map(|(r, s)| {
                json!({
                    "revision": r.number, "at": r.at, "status": s, "description": r.description(),
                    "changes": r.changes, "cause": r.cause, "outcome": r.outcome,
                    "failure": r.failure, "target": r.target, "images": r.images,
                    "migrations": r.migrations,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": cluster,
                "dir": store.dir().display().to_string(),
                "revisions": rows,
            }))?
        );
        return Ok(Outcome::Ok);
    }
    if revisions.is_empty() {
        println!(
            "cluster `{cluster}` has no history yet: `deployer apply` records a revision each time it changes the cluster"
        );
        return Ok(Outcome::Ok);
    }
    println!(
        "{:<9} {:<20} {:<11} {:<34} CHANGES",
        "REVISION", "UPDATED (UTC)", "STATUS", "DESCRIPTION"
    );
    for (r, s) in revisions.iter().zip(&statuses) {
        println!(
            "{:<9} {:<20} {:<11} {:<34} {}",
            r.number,
            when(&r.at),
            s.as_str(),
            r.description(),
            r.changes.join(", ")
        );
    }
    Ok(Outcome::Ok)
}

pub async fn rollback(file: &Path, args: &RollbackArgs) -> anyhow::Result<Outcome> {
    // Only the revision's own file is needed: a broken cluster.toml (a bad edit is a reason
    // to roll back) still names its cluster.
    let cluster = cluster_name(file)?;
    let _lock = Lock::take(&base_dir(file), &cluster)?;
    let r = crate::rollback::prepare(file, &cluster, args.to).await?;
    let to = r.to.number;
    let from = r.from.as_ref().map_or("no revision".to_string(), |f| {
        format!("revision {}", f.number)
    });
    println!(
        "Rolling back cluster `{cluster}` from {from} to revision {to} ({}, {} UTC): {}",
        r.to.description(),
        when(&r.to.at),
        r.changes.join(", ")
    );
    if let Fits::Applies(more) = &r.fits {
        println!(
            "Its image knows {} migration(s) the database does not have yet ({}): `app migrate` applies them first.",
            more.len(),
            more.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();
    print_plan(&r.deployment, &r.prepared, false);
    if r.prepared.plan.is_empty() {
        println!("The cluster already runs revision {to}: nothing to do, nothing recorded.");
        return Ok(Outcome::Ok);
    }
    println!();
    if !confirm(&format!("Roll back to revision {to}?"), args.yes)? {
        println!("Rollback cancelled.");
        return Ok(Outcome::Failed);
    }
    let progress = Progress::new();
    let recorded = r
        .deployment
        .apply_and_record(&r.prepared, &progress, Cause::Rollback { to })
        .await?;
    println!(
        "\nRollback complete in {:.1}s: recorded as revision {} (rollback to {to}).",
        progress.elapsed().as_secs_f64(),
        recorded.revision.number
    );
    if !recorded.applied.left.is_empty() {
        eprintln!(
            "warning: the cluster still differs from revision {to}:\n{}",
            recorded.applied.left
        );
        return Ok(Outcome::Failed);
    }
    print_drift_note(file, &r.to, r.from.as_ref());
    Ok(Outcome::Ok)
}

/// cluster.toml is not rewritten by a rollback: say how the file and the cluster now differ.
fn print_drift_note(file: &Path, to: &Revision, from: Option<&Revision>) {
    let same = std::fs::read_to_string(file).is_ok_and(|text| text == to.toml);
    if same {
        println!(
            "{} is the file revision {} applied.",
            file.display(),
            to.number
        );
        return;
    }
    println!(
        "\n{} was not changed: it still describes {}, so the running cluster (revision {}) now differs \
         from it, and `deployer plan` shows the way back to the file; the next `deployer apply` \
         would undo this rollback. To keep the rollback, make the file match: \
         `deployer history --show {} > {}`.",
        file.display(),
        from.map_or("another spec".to_string(), |f| format!("revision {}'s spec", f.number)),
        to.number,
        to.number,
        file.display()
    );
}
