//! `deployer verify`: prints each check as it finishes (or one JSON object with
//! `--json`); exit 1 when any check fails.

use std::path::Path;

use serde_json::json;

use super::{load_or_report, Outcome, VerifyArgs};
use crate::verify::{self, Check};

pub async fn verify(file: &Path, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, args.json)? else {
        return Ok(Outcome::Failed);
    };
    let json_out = args.json;
    let mut print = |c: &Check| {
        if !json_out {
            println!("{}", c.line());
        }
    };
    let report = verify::verify(&loaded, file, &args.into(), &mut print).await?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": report.passed(),
                "cluster": report.cluster,
                "strategy": report.strategy,
                "nodes": report.nodes,
                "balancer": report.balancer,
                "elapsed_seconds": report.elapsed_seconds,
                "checks": report.checks,
            }))?
        );
    } else {
        let passed = report.checks.iter().filter(|c| c.passed).count();
        println!(
            "\ncluster `{}`: {passed} of {} checks passed in {:.1}s",
            report.cluster,
            report.checks.len(),
            report.elapsed_seconds
        );
    }
    Ok(if report.passed() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
