//! `deployer backup` and `deployer restore`: print, ask, and map the result to an
//! exit code; the work is [`crate::backup`]'s.

use std::path::Path;

use super::cluster::{confirm, open};
use super::{BackupArgs, Outcome, Progress, RestoreArgs};
use crate::backup::{self, BackupError};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// `14.0 kB`, `312.4 MB`, `1.2 GB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b if b < 1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}

pub async fn backup(file: &Path, args: &BackupArgs) -> anyhow::Result<Outcome> {
    let Some(d) = open(file, false).await? else {
        return Ok(Outcome::Failed);
    };
    let b = backup::backup(&d, args.out.as_deref()).await?;
    let secs = b.elapsed.as_secs_f64();
    println!(
        "backed up database `{}` of cluster `{}` to {}",
        d.spec().database().name(),
        d.names().cluster(),
        b.file.display()
    );
    println!(
        "  {} in {secs:.1}s ({:.1} MB/s)",
        size(b.bytes),
        mb(b.bytes) / secs.max(0.001)
    );
    println!("  sha256 {}  (in {})", b.sha256, b.checksum_file.display());
    println!("restore it with: deployer restore {}", b.file.display());
    Ok(Outcome::Ok)
}

pub async fn restore(file: &Path, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    // The backup file is checked before anything else: a bad one changes nothing.
    let checked = backup::check(&args.backup)?;
    println!(
        "{}: {}, sha256 {} (matches {})",
        checked.file.display(),
        size(checked.bytes),
        checked.sha256,
        backup::checksum_path(&checked.file).display()
    );
    let Some(d) = open(file, false).await? else {
        return Ok(Outcome::Failed);
    };
    let _lock = d.lock()?;
    let progress = Progress::new();
    let restored = match backup::restore(&d, &checked, args.yes, &progress).await {
        Err(e @ BackupError::NotEmpty { .. }) if !args.yes => {
            let question = format!(
                "{}\nReplace the database of cluster `{}` with {}?",
                e.to_string().lines().next().unwrap_or_default(),
                d.names().cluster(),
                checked.file.display()
            );
            // Without a terminal this is the refusal, with its hint.
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(e.into());
            }
            if !confirm(&question, false)? {
                println!("Restore cancelled.");
                return Ok(Outcome::Failed);
            }
            backup::restore(&d, &checked, true, &progress).await?
        }
        r => r?,
    };
    println!(
        "\nrestored {} into database `{}` of cluster `{}`: {} in {:.1}s ({:.1} MB/s); \
         the nodes were stopped meanwhile and are serving again ({:.1}s in all)",
        restored.file.display(),
        d.spec().database().name(),
        d.names().cluster(),
        size(restored.bytes),
        restored.restore.as_secs_f64(),
        mb(restored.bytes) / restored.restore.as_secs_f64().max(0.001),
        restored.elapsed.as_secs_f64()
    );
    for (table, rows) in &restored.tables {
        let s = if *rows == 1 { "" } else { "s" };
        println!("  {table:<32} {rows:>12} row{s}");
    }
    Ok(Outcome::Ok)
}
