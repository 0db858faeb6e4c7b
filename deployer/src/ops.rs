//! The commands that talk to the engine: plan, apply, status, destroy, build.
//! Each one: load and validate, observe, then the pure plan, then (apply only)
//! the one effectful applier.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use crate::apply::{Applier, Progress};
use crate::budget::Budget;
use crate::cli::{base_dir, load_or_report, ApplyArgs, DestroyArgs, Outcome, PlanArgs};
use crate::config::Loaded;
use crate::desired::{self, Desired, Images, Role};
use crate::engine::Engine;
use crate::names::Names;
use crate::observe::{self, Observed};
use crate::plan;
use crate::render::{self, Templates};
use crate::secrets;

pub struct Session {
    pub loaded: Loaded,
    pub engine: Engine,
    pub names: Names,
    pub templates: Templates,
    pub images: Images,
    pub desired: Desired,
    pub observed: Observed,
}

/// Resolves every image the spec names; a missing one is an error that says how
/// to get it.
async fn resolve_images(engine: &Engine, loaded: &Loaded) -> anyhow::Result<Images> {
    let spec = &loaded.spec;
    let mut missing = Vec::new();
    let mut get = async |r: &str| -> anyhow::Result<String> {
        match engine.image_id(r).await? {
            Some(id) => Ok(id),
            None => {
                missing.push(r.to_string());
                Ok(String::new())
            }
        }
    };
    let images = Images {
        app: get(spec.app.image.as_str()).await?,
        postgres: get(spec.database.image.as_str()).await?,
        redis: match &spec.redis {
            Some(r) => Some(get(r.image.as_str()).await?),
            None => None,
        },
        balancer: get(spec.balancer.image.as_str()).await?,
    };
    if !missing.is_empty() {
        let app_missing = missing.iter().any(|m| m == spec.app.image.as_str());
        let others: Vec<&String> = missing
            .iter()
            .filter(|m| *m != spec.app.image.as_str())
            .collect();
        let mut hints = Vec::new();
        if app_missing {
            hints.push("build the app image with `deployer build`".to_string());
        }
        if !others.is_empty() {
            hints.push(format!(
                "pull {} with `docker pull`, or build compatible images from Debian packages with `scripts/build-images.sh {}`",
                others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            ));
        }
        bail!(
            "missing image{} on the Docker engine: {}\nhint: {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            hints.join("; ")
        );
    }
    Ok(images)
}

pub async fn prepare(file: &Path, json_out: bool) -> anyhow::Result<Option<Session>> {
    let Some(loaded) = load_or_report(file, json_out)? else {
        return Ok(None);
    };
    let engine = Engine::connect().await?;
    let names = Names::of(&loaded.spec);
    let templates = Templates::load(Some(&base_dir(file).join("templates")))?;
    let images = resolve_images(&engine, &loaded).await?;
    let nodes: Vec<String> = (1..=loaded.spec.app.nodes).map(|i| names.node(i)).collect();
    let nginx_conf = templates.nginx(&loaded.spec, &nodes)?;
    let desired = desired::desired(&loaded.spec, &images, nginx_conf);
    let observed = observe::observe(&engine, &names)
        .await
        .context("observing the cluster")?;
    Ok(Some(Session {
        loaded,
        engine,
        names,
        templates,
        images,
        desired,
        observed,
    }))
}

pub async fn plan_cmd(file: &Path, args: &PlanArgs) -> anyhow::Result<Outcome> {
    let Some(ctx) = prepare(file, args.json).await? else {
        return Ok(Outcome::Failed);
    };
    let plan = plan::plan(&ctx.desired, &ctx.observed);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": ctx.names.cluster,
                "changes": plan.changes,
                "summary": plan.summary(),
                "empty": plan.is_empty(),
            }))?
        );
    } else {
        println!("cluster `{}`:\n", ctx.names.cluster);
        print!("{plan}");
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Ok
    })
}

/// Held for the duration of an apply, a destroy or a `verify --chaos`: a second one on the same
/// cluster is refused.
pub(crate) struct Lock {
    _file: std::fs::File,
}

pub(crate) fn lock(file: &Path, cluster: &str) -> anyhow::Result<Lock> {
    let dir = base_dir(file).join(".deployer");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path: PathBuf = dir.join(format!("{cluster}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Lock { _file: f }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another deployer apply or destroy is running on cluster `{cluster}` (lock {} is held); wait for it to finish",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context(format!("locking {}", path.display())),
    }
}

fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
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

pub async fn apply_cmd(file: &Path, args: &ApplyArgs) -> anyhow::Result<Outcome> {
    // Validate before anything else: a broken file changes nothing.
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let _lock = lock(file, loaded.spec.name.as_str())?;
    let Some(ctx) = prepare(file, false).await? else {
        return Ok(Outcome::Failed);
    };
    let plan = plan::plan(&ctx.desired, &ctx.observed);
    println!("cluster `{}`:\n", ctx.names.cluster);
    print!("{plan}");
    if plan.is_empty() {
        return Ok(Outcome::Ok);
    }
    println!();
    if !confirm("Apply these changes?", args.yes)? {
        println!("Apply cancelled.");
        return Ok(Outcome::Failed);
    }

    let spec = &ctx.loaded.spec;
    let secrets_dir = secrets::dir_for(file);
    let secrets = secrets::ensure(&secrets_dir, spec).context("preparing secrets")?;
    // generated/ holds exactly what is applied.
    let out = base_dir(file).join("generated");
    let files = ctx
        .templates
        .render_all(spec, &render::relative_path(&out, &secrets_dir))?;
    render::write_all(&out, &files)?;

    let progress = Progress::new(false);
    let applier = Applier {
        engine: &ctx.engine,
        spec,
        images: &ctx.images,
        secrets: &secrets,
        templates: &ctx.templates,
        desired: &ctx.desired,
        progress: &progress,
    };
    applier.apply(&plan).await.with_context(|| {
        format!(
            "apply of cluster `{}` failed; run `deployer apply` again to converge from here",
            ctx.names.cluster
        )
    })?;

    let after = observe::observe(&ctx.engine, &ctx.names).await?;
    let left = plan::plan(&ctx.desired, &after);
    println!(
        "\nApply complete in {:.1}s. {}",
        progress.elapsed().as_secs_f64(),
        plan.summary().replace("Plan: ", "Done: ")
    );
    if !left.is_empty() {
        eprintln!("warning: the cluster still differs from cluster.toml:\n{left}");
        return Ok(Outcome::Failed);
    }
    println!(
        "The balancer answers on http://{}:{}/",
        spec.balancer.bind, spec.balancer.port
    );
    Ok(Outcome::Ok)
}

pub async fn status_cmd(file: &Path, json_out: bool) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, json_out)? else {
        return Ok(Outcome::Failed);
    };
    let engine = Engine::connect().await?;
    let names = Names::of(&loaded.spec);
    let observed = observe::observe(&engine, &names).await?;
    let budget = Budget::of(&loaded.spec);
    let usage = connections(&engine, &loaded, &names, &observed).await;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": names.cluster,
                "containers": observed.containers.iter().map(|c| json!({
                    "name": c.name, "role": c.role, "node": c.node, "running": c.running,
                    "health": c.health, "image": c.image, "status": c.status,
                    "connections": usage.as_ref().ok().and_then(|u| u.iter().find(|(n, _)| *n == c.name).map(|(_, n)| *n)),
                })).collect::<Vec<_>>(),
                "network": observed.network,
                "volume": observed.volume,
                "budget": budget,
                "connections_in_use": usage.as_ref().ok().map(|u| u.iter().map(|(_, n)| n).sum::<u32>()),
            }))?
        );
        return Ok(Outcome::Ok);
    }
    if observed.is_empty() {
        println!(
            "cluster `{}` is not deployed (run `deployer apply`)",
            names.cluster
        );
        return Ok(Outcome::Ok);
    }
    println!("cluster `{}`", names.cluster);
    println!(
        "  {:<22} {:<9} {:<10} {:<10} {:<19} {:>5}  STATUS",
        "NAME", "ROLE", "STATE", "HEALTH", "IMAGE", "CONNS"
    );
    for c in &observed.containers {
        let conns = usage
            .as_ref()
            .ok()
            .and_then(|u| {
                u.iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, n)| n.to_string())
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<22} {:<9} {:<10} {:<10} {:<19} {:>5}  {}",
            c.name,
            c.role.as_str(),
            if c.running { "running" } else { "stopped" },
            c.health.as_deref().unwrap_or("-"),
            c.image.get(..19).unwrap_or(&c.image),
            conns,
            c.status
        );
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
    Ok(Outcome::Ok)
}

/// Connections per application_name, read inside the postgres container.
async fn connections(
    engine: &Engine,
    loaded: &Loaded,
    names: &Names,
    observed: &Observed,
) -> anyhow::Result<Vec<(String, u32)>> {
    observed
        .get(&names.postgres())
        .filter(|c| c.running)
        .context("postgres is not running")?;
    let password = std::fs::read_to_string(secrets::dir_for(&loaded.path).join("db_password"))
        .context("reading the database password")?;
    let sql = "SELECT coalesce(nullif(application_name, ''), '(none)'), count(*) FROM pg_stat_activity \
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1";
    let rows = crate::engine::Psql::new(engine, &loaded.spec, &password)
        .query(sql)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.trim().parse().ok()?)))
        .collect())
}

pub async fn destroy_cmd(file: &Path, args: &DestroyArgs) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let _lock = lock(file, loaded.spec.name.as_str())?;
    let engine = Engine::connect().await?;
    let names = Names::of(&loaded.spec);
    let observed = observe::observe(&engine, &names).await?;
    let volume = args.volumes && observed.volume;
    if observed.containers.is_empty() && !observed.network && !volume {
        println!("cluster `{}`: nothing to destroy", names.cluster);
        return Ok(Outcome::Ok);
    }
    for c in &observed.containers {
        println!("  - {} {}", c.role.as_str(), c.name);
    }
    if observed.network {
        println!("  - network {}", names.network());
    }
    if volume {
        println!("  - volume {} (all data)", names.volume());
    } else if observed.volume {
        println!(
            "  (volume {} is kept; --volumes removes it)",
            names.volume()
        );
    }
    if !confirm(&format!("\nDestroy cluster `{}`?", names.cluster), args.yes)? {
        println!("Destroy cancelled.");
        return Ok(Outcome::Failed);
    }
    let progress = Progress::new(false);
    // Front to back: the balancer first, so no request reaches a stopping node.
    let order = [
        Role::Balancer,
        Role::App,
        Role::Migrate,
        Role::Redis,
        Role::Postgres,
    ];
    for role in order {
        let grace = std::time::Duration::from_secs(if role == Role::App {
            loaded.spec.rollout.stop_grace_seconds as u64
        } else {
            10
        });
        futures_util::future::try_join_all(
            observed
                .containers
                .iter()
                .filter(|c| c.role == role)
                .map(|c| {
                    let engine = &engine;
                    let progress = &progress;
                    async move {
                        engine.stop(&c.name, grace).await?;
                        engine.remove(&c.name).await?;
                        progress.step(format!("{}: removed", c.name));
                        Ok::<_, crate::engine::EngineError>(())
                    }
                }),
        )
        .await?;
    }
    if observed.network {
        engine.remove_network(&names.network()).await?;
        progress.step(format!("network {}: removed", names.network()));
    }
    if volume {
        engine.remove_volume(&names.volume()).await?;
        progress.step(format!("volume {}: removed", names.volume()));
    }
    println!(
        "Destroy complete in {:.1}s.",
        progress.elapsed().as_secs_f64()
    );
    Ok(Outcome::Ok)
}

pub async fn build_cmd(file: &Path) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let workspace = base_dir(file);
    let workspace = if workspace.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        workspace
    };
    let engine = Engine::connect().await?;
    let progress = Progress::new(false);
    progress.step("compiling the app (cargo build --release -p app)");
    let binary = crate::build::compile(&workspace)?;
    progress.step("building the image");
    let built =
        crate::build::image(&engine, &workspace, &binary, loaded.spec.app.image.as_str()).await?;
    progress.step(format!(
        "{} = {} ({}){}",
        built.tag,
        built.hash_tag,
        built.id.get(..19).unwrap_or(&built.id),
        if built.reused { ", unchanged" } else { "" }
    ));
    Ok(Outcome::Ok)
}
