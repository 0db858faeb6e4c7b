//! The commands that read and write files only: `validate`, `render`, `images`.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::{load_or_report, Outcome, RenderArgs};
use crate::config::Choice;
use crate::deploy::{base_dir, Generated};
use crate::render::Templates;

pub fn images(file: &Path) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let spec = &loaded.spec;
    println!("{}", spec.database().image());
    println!("{}", spec.balancer().image());
    if let Some(r) = &spec.redis() {
        println!("{}", r.image());
    }
    if let Some(p) = spec.database().pooler() {
        println!("{}", p.image());
    }
    Ok(Outcome::Ok)
}

pub fn validate(file: &Path, json_out: bool) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, json_out)? else {
        return Ok(Outcome::Failed);
    };
    let spec = &loaded.spec;
    let budget = spec.budget();
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": true,
                "file": file.display().to_string(),
                "cluster": spec,
                "budget": budget,
                "headroom": budget.headroom(),
                "headroom_percent": (budget.headroom_percent() * 10.0).round() / 10.0,
                "diagnostics": loaded.warnings_report().json(),
            }))?
        );
    } else {
        if !loaded.warnings.is_empty() {
            eprint!("{}", loaded.warnings_report());
            eprintln!();
        }
        println!(
            "{}: ok — cluster `{}`{}: {} node{} × pool {}, {} balancing on {}{}",
            file.display(),
            spec.name(),
            match spec.target().swarm() {
                Some(_) => " on a swarm",
                None => "",
            },
            spec.app().nodes(),
            if spec.app().nodes() == 1 { "" } else { "s" },
            spec.app().pool_size(),
            spec.balancer().strategy().as_str(),
            spec.balancer_address(),
            if spec.redis().is_some() {
                ", with redis"
            } else {
                ""
            },
        );
        print!("\n{}", budget.table());
        if let Some(tls) = spec.balancer().tls() {
            print!("\n{}", https_table(spec, tls));
        }
    }
    Ok(Outcome::Ok)
}

/// What `validate` shows of HTTPS: the files, what the certificate covers, until when.
fn https_table(spec: &crate::config::ClusterSpec, tls: &crate::config::TlsSpec) -> String {
    let cert = tls.certificate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = (cert.not_after - now).div_euclid(86_400);
    let rows = [
        (
            "url",
            format!(
                "{} (HTTP/2, HSTS max-age {}s)",
                spec.balancer_url(),
                tls.hsts_max_age()
            ),
        ),
        (
            "http",
            format!("http://{}/ redirects to it (308)", spec.balancer_address()),
        ),
        (
            "certificate",
            format!(
                "{} ({} in the chain), {}",
                tls.cert_file().display(),
                cert.chain_len,
                cert.subject
            ),
        ),
        (
            "covers",
            if cert.names.is_empty() {
                "no name".to_string()
            } else {
                cert.names.join(", ")
            },
        ),
        (
            "expires",
            if days < 0 {
                format!("{} (expired)", cert.expiry_date())
            } else {
                format!("{} (in {days} days)", cert.expiry_date())
            },
        ),
        (
            "key",
            format!(
                "{} ({}), matches the certificate",
                tls.key_file().display(),
                tls.key().kind
            ),
        ),
        ("sha256", cert.sha256.clone()),
    ];
    let mut out = String::from("https\n");
    for (k, v) in rows {
        out.push_str(&format!("  {k:<12} {v}\n"));
    }
    out
}

pub fn render(file: &Path, args: &RenderArgs) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, args.json)? else {
        return Ok(Outcome::Failed);
    };
    let templates = Templates::load(Some(&base_dir(file).join("templates")))?;
    let generated = Generated::render(file, &templates, &loaded.spec, args.out.as_deref())
        .context("rendering templates")?;
    let (out, files) = (&generated.out, &generated.files);

    if args.check {
        let drift = generated.drift();
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "ok": drift.is_empty(),
                    "out": out.display().to_string(),
                    "stale": drift.iter().map(|d| json!({"file": d.name, "missing": d.missing, "diff": d.diff})).collect::<Vec<_>>(),
                }))?
            );
        } else if drift.is_empty() {
            println!("{}: up to date with {}", out.display(), file.display());
        } else {
            for d in &drift {
                eprint!("{}", d.diff);
            }
            eprintln!(
                "\n{}: {} file{} out of date — run `deployer render` and commit the result",
                out.display(),
                drift.len(),
                if drift.len() == 1 { " is" } else { "s are" }
            );
        }
        return Ok(if drift.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        });
    }

    let changed = generated.write()?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": true,
                "out": out.display().to_string(),
                "templates": templates.source,
                "files": files.iter().map(|f| json!({"file": f.name, "changed": changed.contains(&f.name), "bytes": f.contents.len()})).collect::<Vec<_>>(),
            }))?
        );
    } else {
        for f in files {
            let state = if changed.contains(&f.name) {
                "written"
            } else {
                "unchanged"
            };
            println!("{}/{} ({state})", out.display(), f.name);
        }
    }
    Ok(Outcome::Ok)
}
