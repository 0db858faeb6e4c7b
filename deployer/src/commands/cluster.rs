//! The commands that talk to the target: `plan`, `apply`, `status`, `destroy`,
//! `build`. Each loads the file once, asks the library, prints, and maps the
//! result to an exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde_json::json;

use super::{load_or_report, ApplyArgs, DestroyArgs, Outcome, PlanArgs, Progress};
use crate::deploy::{base_dir, Deployment, Prepared};
use crate::history::Cause;
use crate::plan::Goal;
use crate::steps;

pub(super) async fn open(file: &Path, json_out: bool) -> anyhow::Result<Option<Deployment>> {
    let Some(loaded) = load_or_report(file, json_out)? else {
        return Ok(None);
    };
    Ok(Some(Deployment::open(file, loaded).await?))
}

pub(super) fn print_plan(d: &Deployment, p: &Prepared, with_steps: bool) {
    println!("cluster `{}`:\n", d.names().cluster());
    print!("{}", p.plan);
    if with_steps && !p.steps.is_empty() {
        println!("\nSteps:");
        for (i, line) in steps::lines(&p.steps).iter().enumerate() {
            println!("{:>4}. {line}", i + 1);
        }
    }
}

pub async fn plan(file: &Path, args: &PlanArgs) -> anyhow::Result<Outcome> {
    let Some(d) = open(file, args.json).await? else {
        return Ok(Outcome::Failed);
    };
    let p = d.prepare(Goal::Converge).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": d.names().cluster(),
                "changes": p.plan.changes,
                "steps": p.steps,
                "summary": p.plan.summary(),
                "empty": p.plan.is_empty(),
            }))?
        );
    } else {
        print_plan(&d, &p, args.steps);
    }
    Ok(if args.detailed_exitcode && !p.plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Ok
    })
}

pub(super) fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change the cluster without a terminal to ask on; pass --yes");
    }
    print!("{question} Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

pub async fn apply(file: &Path, args: &ApplyArgs) -> anyhow::Result<Outcome> {
    // Validate before anything else: a broken file changes nothing.
    let Some(d) = open(file, false).await? else {
        return Ok(Outcome::Failed);
    };
    let _lock = d.lock()?;
    let p = d.prepare(Goal::Converge).await?;
    print_plan(&d, &p, false);
    if p.plan.is_empty() {
        return Ok(Outcome::Ok);
    }
    println!();
    if !confirm("Apply these changes?", args.yes)? {
        println!("Apply cancelled.");
        return Ok(Outcome::Failed);
    }
    let progress = Progress::new();
    let recorded = d.apply_and_record(&p, &progress, Cause::Apply).await?;
    let applied = recorded.applied;
    println!(
        "\nApply complete in {:.1}s. {} Recorded as revision {} (`deployer history`).",
        progress.elapsed().as_secs_f64(),
        p.plan.summary().replace("Plan: ", "Done: "),
        recorded.revision.number
    );
    if !applied.left.is_empty() {
        eprintln!(
            "warning: the cluster still differs from cluster.toml:\n{}",
            applied.left
        );
        return Ok(Outcome::Failed);
    }
    match d.spec().balancer().tls() {
        Some(_) => println!(
            "The balancer answers on {} (HTTP/2; http://{}/ redirects to it)",
            d.spec().balancer_url(),
            d.spec().balancer_address()
        ),
        None => println!("The balancer answers on {}", d.spec().balancer_url()),
    }
    Ok(Outcome::Ok)
}

pub async fn destroy(file: &Path, args: &DestroyArgs) -> anyhow::Result<Outcome> {
    let Some(d) = open(file, false).await? else {
        return Ok(Outcome::Failed);
    };
    let _lock = d.lock()?;
    let p = d
        .prepare(Goal::Destroy {
            volumes: args.volumes,
        })
        .await?;
    let cluster = d.names().cluster();
    if p.observed.volume.is_owned() && !args.volumes {
        println!(
            "(volume {} is kept; --volumes removes it)",
            d.names().volume()
        );
    }
    for (kind, presence, name) in [
        ("network", p.observed.network, d.names().network()),
        ("volume", p.observed.volume, d.names().volume()),
    ] {
        if presence == crate::observed::Presence::Foreign {
            println!("({kind} {name} is not the deployer's: left alone)");
        }
    }
    if p.plan.is_empty() {
        println!("cluster `{cluster}`: nothing to destroy");
        return Ok(Outcome::Ok);
    }
    for c in &p.plan.changes {
        println!("{c}");
    }
    if !confirm(&format!("\nDestroy cluster `{cluster}`?"), args.yes)? {
        println!("Destroy cancelled.");
        return Ok(Outcome::Failed);
    }
    let progress = Progress::new();
    let applied = d.apply(&p, &progress).await?;
    if !applied.left.is_empty() {
        eprintln!(
            "warning: something of the cluster is left:\n{}",
            applied.left
        );
        return Ok(Outcome::Failed);
    }
    println!(
        "Destroy complete in {:.1}s.",
        progress.elapsed().as_secs_f64()
    );
    Ok(Outcome::Ok)
}

pub async fn status(file: &Path, json_out: bool) -> anyhow::Result<Outcome> {
    let Some(d) = open(file, json_out).await? else {
        return Ok(Outcome::Failed);
    };
    let observed = d.observe().await?;
    let budget = d.spec().budget();
    let usage = d.connections(&observed).await;
    let pools = d.pooler_pools(&observed).await;
    // The pooler's connections to PostgreSQL are its servers (`SHOW POOLS`): in
    // pg_stat_activity they carry the name of the node whose queries they last ran.
    let pooler_name = crate::model::pooler_name(d.spec()).unwrap_or_default();
    let conns = |name: &str| {
        if name == pooler_name {
            let pools = pools.as_ref().ok()?.as_ref()?;
            return Some(pools.iter().map(crate::pooler::PoolStats::servers).sum());
        }
        usage
            .as_ref()
            .ok()
            .and_then(|u| u.iter().find(|(n, _)| n == name).map(|(_, n)| *n))
    };
    let cluster = d.names().cluster();
    let tasks = match d.spec().target().swarm() {
        Some(_) => Some(d.tasks().await?),
        None => None,
    };
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": cluster,
                "containers": observed.units.iter().map(|c| json!({
                    "name": c.name, "role": c.role, "node": c.slot.and_then(|s| s.node()), "running": c.running,
                    "health": c.health, "image": c.image, "status": c.status,
                    "connections": conns(&c.name),
                })).collect::<Vec<_>>(),
                "tasks": tasks.as_ref().map(|t| t.iter().map(|t| json!({
                    "name": t.name, "service": t.service, "host": t.host, "state": t.state,
                    "error": t.error, "connections": conns(&t.name),
                })).collect::<Vec<_>>()),
                "network": observed.network,
                "volume": observed.volume,
                "budget": budget,
                "connections_in_use": usage.as_ref().ok().map(|u| u.iter().map(|(_, n)| n).sum::<u32>()),
                "pooler_pools": pools.as_ref().ok().cloned().flatten(),
            }))?
        );
        return Ok(Outcome::Ok);
    }
    if observed.is_empty() {
        println!("cluster `{cluster}` is not deployed (run `deployer apply`)");
        return Ok(Outcome::Ok);
    }
    println!("cluster `{cluster}`");
    println!(
        "  {:<22} {:<9} {:<10} {:<10} {:<19} {:>5}  STATUS",
        "NAME", "ROLE", "STATE", "HEALTH", "IMAGE", "CONNS"
    );
    for c in &observed.units {
        println!(
            "  {:<22} {:<9} {:<10} {:<10} {:<19} {:>5}  {}",
            c.name,
            c.role.as_str(),
            if c.running { "running" } else { "stopped" },
            c.health.as_deref().unwrap_or("-"),
            c.image.get(..19).unwrap_or(&c.image),
            conns(&c.name).map_or("-".into(), |n| n.to_string()),
            c.status
        );
    }
    if let Some(tasks) = &tasks {
        println!(
            "\n  {:<22} {:<12} {:<10} {:>5}  ERROR",
            "TASK", "HOST", "STATE", "CONNS"
        );
        for t in tasks {
            println!(
                "  {:<22} {:<12} {:<10} {:>5}  {}",
                t.name,
                t.host,
                t.state,
                conns(&t.name).map_or("-".into(), |n| n.to_string()),
                t.error.as_deref().unwrap_or("")
            );
        }
    }
    for (kind, presence, name) in [
        ("network", observed.network, d.names().network()),
        ("volume", observed.volume, d.names().volume()),
    ] {
        match presence {
            crate::observed::Presence::Owned => {}
            crate::observed::Presence::Absent => println!("  {kind} {name}: missing"),
            crate::observed::Presence::Foreign => {
                println!("  {kind} {name}: exists but is not the deployer's (no cluster label)")
            }
        }
    }
    match &usage {
        Ok(u) => {
            let total: u32 = u.iter().map(|(_, n)| n).sum();
            println!(
                "\nconnections: {total} in use (all clients), budget peak {} of limit {} (max_connections {} − {} reserved)",
                budget.peak, budget.limit, budget.max_connections, budget.superuser_reserved
            );
        }
        Err(e) => println!("\nconnections: unknown ({e})"),
    }
    if let (Some(c), Some(p)) = (&budget.clients, d.spec().database().pooler()) {
        let name = &pooler_name;
        match &pools {
            Ok(Some(pools)) => {
                for pool in pools {
                    println!(
                        "pooler {name} (SHOW POOLS, {}@{}): {}; budget: servers ≤ {} (pooler_pool_size), clients at peak {} of {} (pooler_max_client_conn)",
                        pool.user,
                        pool.database,
                        pool.summary(),
                        p.pool_size(),
                        c.peak,
                        c.limit
                    );
                }
                if pools.is_empty() {
                    println!("pooler {name}: no pool yet (no client has connected)");
                }
            }
            Ok(None) => {}
            Err(e) => println!("pooler {name}: unknown ({e})"),
        }
    }
    Ok(Outcome::Ok)
}

pub async fn build(file: &Path) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let workspace = base_dir(file);
    let workspace = if workspace.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        workspace
    };
    let engine = crate::target::docker::engine::Engine::connect().await?;
    let progress = Progress::new();
    progress.line("compiling the app (cargo build --release -p app)");
    let binary = crate::build::compile(&workspace)?;
    progress.line("building the image");
    let built = crate::build::image(
        &engine,
        &workspace,
        &binary,
        loaded.spec.app().image().as_str(),
    )
    .await?;
    progress.line(format!(
        "{} = {} ({}){}",
        built.tag,
        built.hash_tag,
        built.id.get(..19).unwrap_or(&built.id),
        if built.reused { ", unchanged" } else { "" }
    ));
    if let Some(swarm) = loaded.spec.target().swarm() {
        progress.line(format!(
            "pushing to {} (the swarm's hosts pull from {})",
            swarm.push_registry(),
            swarm.registry()
        ));
        let pushed =
            crate::build::push(&engine, &built.tag, swarm.push_registry().as_str()).await?;
        progress.line(format!("{pushed}: pushed"));
    }
    Ok(Outcome::Ok)
}
