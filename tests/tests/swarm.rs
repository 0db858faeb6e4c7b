//! The deployer against a real multi-host Docker Swarm (the lab of
//! `scripts/swarm-lab`: three Docker hosts in containers): the same
//! cluster.toml with `target = "swarm"` — apply from nothing across hosts,
//! rolling updates and scaling with no failed request, drift healed, a failed
//! update rolled back, the budget refused with nothing changed, destroy
//! leaving nothing behind.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use e2e::{nodes_seen, serial, wait_for, Cluster, Lab, Load};

/// `docker -H <manager> ARGS`: what a person would look at by hand.
fn manager(args: &[&str]) -> String {
    let host = Lab::get().var("DOCKER_HOST");
    e2e::docker(&[&["-H", host.as_str()], args].concat())
}

/// Every object on the swarm carrying the cluster's label, as `kind name` lines.
fn labelled(c: &Cluster) -> Vec<String> {
    let filter = format!("label=io.deployer.cluster={}", c.name);
    let mut left = Vec::new();
    for kind in ["service", "network", "secret", "config"] {
        for name in manager(&[kind, "ls", "--filter", &filter, "--format", "{{.Name}}"]).lines() {
            left.push(format!("{kind} {name}"));
        }
    }
    left
}

#[test]
fn a_swarm_cluster_spreads_rolls_scales_heals_and_destroys_without_failed_requests() {
    let _serial = serial();
    let c = Cluster::on_swarm("swarm", 4001);
    c.apply().unwrap();
    assert!(c.plan().is_empty(), "{}", c.plan());

    // Served through the balancer by every task, on more than one host.
    let seen: BTreeSet<String> = nodes_seen(&c, 12).into_iter().collect();
    let want: BTreeSet<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();
    assert_eq!(seen, want);
    let hosts: BTreeSet<String> = c.app_tasks().into_iter().map(|(_, h)| h).collect();
    assert!(hosts.len() >= 2, "tasks on one host only: {hosts:?}");

    // A rolling env change under keep-alive and fresh-connection clients.
    let keep = Load::keep_alive(&c, 6);
    let fresh = Load::start(&c, 2, "/api/health", None);
    std::thread::sleep(Duration::from_secs(1));
    c.write(|t| t.replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\""));
    c.apply().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    for (what, load) in [("keep-alive", keep), ("new connections", fresh)] {
        let (ok, failed, errors) = load.finish();
        assert_eq!(
            failed, 0,
            "{what}: {failed} failed ({ok} ok) during the rollout: {errors:?}"
        );
        assert!(ok > 50, "{what}: only {ok} requests");
    }
    assert!(c.plan().is_empty(), "{}", c.plan());

    // Scale 3 → 5 → 2 under load: the service's tasks follow, nothing fails.
    let load = Load::keep_alive(&c, 4);
    for (nodes, extra) in [(5, "nodes = 5 "), (2, "nodes = 2 ")] {
        c.write(|t| {
            t.replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\"")
                .replace("nodes = 3 ", extra)
        });
        c.apply().unwrap();
        assert_eq!(c.app_tasks().len(), nodes);
        // nginx finds the tasks by DNS, again every second: no reload.
        wait_for(
            &format!("the balancer to send to exactly {nodes} tasks"),
            Duration::from_secs(15),
            || {
                let seen: BTreeSet<String> = nodes_seen(&c, 4 * nodes).into_iter().collect();
                (seen.len() == nodes).then_some(())
            },
        );
    }
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed, 0,
        "{failed} failed ({ok} ok) while scaling: {errors:?}"
    );

    // Drift: the service scaled by hand is planned back, and healed.
    manager(&["service", "scale", "--detach", &format!("{}-app=4", c.name)]);
    let drift = c.plan();
    assert!(
        drift.to_string().contains("scaled down"),
        "scaled by hand to 4, the file says 2:\n{drift}"
    );
    c.apply().unwrap();
    assert_eq!(c.app_tasks().len(), 2);

    // Destroy leaves nothing of the cluster on the swarm.
    c.destroy_all().unwrap();
    let left = labelled(&c);
    assert!(left.is_empty(), "left on the swarm: {left:?}");
}

#[test]
fn a_failed_update_is_rolled_back_by_swarm_and_the_old_tasks_keep_serving() {
    let _serial = serial();
    let c = Cluster::on_swarm("swarmgate", 4002);
    let file = |t: String, bad: bool| {
        let t = t
            .replace("nodes = 3 ", "nodes = 2 ")
            .replace("health_timeout = 60", "health_timeout = 10");
        if bad {
            t.replace(
                "RUST_LOG = \"info\"",
                "RUST_LOG = \"info\"\nJWT_TTL_SECS = \"0\"",
            )
        } else {
            t
        }
    };
    c.write(|t| file(t, false));
    c.apply().unwrap();

    // A config the app refuses at start: the new task never becomes healthy.
    c.write(|t| file(t, true));
    let err = format!("{:#}", c.apply().unwrap_err());
    assert!(err.contains("rolled it back"), "{err}");

    // The previous tasks still serve, both of them.
    let seen: BTreeSet<String> = nodes_seen(&c, 8).into_iter().collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    c.write(|t| file(t, false));
    assert!(c.plan().is_empty(), "back on the old spec:\n{}", c.plan());
}

#[test]
fn an_over_budget_file_is_refused_on_a_swarm_with_nothing_changed() {
    let _serial = serial();
    let c = Cluster::on_swarm("swarmbudget", 4003);
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 5 ")
            .replace("pool_size = 10", "pool_size = 20")
    });
    let err = format!("{:#}", c.apply().unwrap_err());
    assert!(err.contains("the connection budget does not fit"), "{err}");
    assert!(labelled(&c).is_empty());
}

#[test]
fn losing_a_whole_host_under_load_reschedules_its_tasks_and_frees_its_connections() {
    let _serial = serial();
    let lab = Lab::get();
    let c = Cluster::on_swarm("swarmkill", 4004);
    // Long jobs, so some run on the host that dies.
    let test_kinds = |t: String| t.replace("[app.env]\n", "[app.env]\nJOB_TEST_KINDS = \"true\"\n");
    c.write(test_kinds);
    c.apply().unwrap();
    let token = e2e::token(&c, "swarmkill");
    // A host other than the manager (it carries the API and the balancer) with a task.
    let manager_host = lab.var("SWARM_LAB_MANAGER");
    let victim = c
        .app_tasks()
        .into_iter()
        .map(|(_, h)| h)
        .find(|h| *h != manager_host)
        .expect("a task on a worker");

    // The client addresses of the connections each node holds in PostgreSQL.
    let addresses = |c: &Cluster| -> Vec<(String, String)> {
        c.rt.block_on(async {
            let d = c.deployment().await.unwrap();
            d.sql(&format!(
                "SELECT DISTINCT application_name, host(client_addr) FROM pg_stat_activity \
                 WHERE application_name LIKE '{}-app-%'",
                c.name
            ))
            .await
            .unwrap()
        })
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
        .collect()
    };
    let load = Load::keep_alive(&c, 4);
    std::thread::sleep(Duration::from_secs(2));
    // The victim's tasks' addresses, as PostgreSQL sees them.
    let victim_nodes: Vec<String> = c
        .app_tasks()
        .into_iter()
        .filter(|(_, h)| *h == victim)
        .map(|(n, _)| n)
        .collect();
    let dead: Vec<String> = addresses(&c)
        .into_iter()
        .filter(|(n, _)| victim_nodes.contains(n))
        .map(|(_, a)| a)
        .collect();
    assert!(
        !dead.is_empty(),
        "the victim's nodes {victim_nodes:?} hold connections"
    );
    // Jobs enough to keep every worker busy for a while (4 per node, 3 nodes).
    let jobs: Vec<String> = c.rt.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..24 {
            let r = c
                .client()
                .post(c.url("/api/jobs"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"kind": "sleep", "args": {"ms": 15000}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let v: serde_json::Value = r.json().await.unwrap();
            ids.push(v["data"]["id"].as_str().unwrap().to_owned());
        }
        ids
    });
    let job_rows = |c: &Cluster| -> Vec<Vec<String>> {
        c.rt.block_on(async {
            c.deployment()
                .await
                .unwrap()
                .sql("SELECT public_id, state, attempts, coalesce(node, '') FROM jobs WHERE kind = 'sleep'")
                .await
                .unwrap()
        })
    };
    let held: Vec<String> = wait_for(
        "jobs executing on the victim's nodes",
        Duration::from_secs(30),
        || {
            let held: Vec<String> = job_rows(&c)
                .into_iter()
                .filter(|r| r[1] == "executing" && victim_nodes.contains(&r[3]))
                .map(|r| r[0].clone())
                .collect();
            (!held.is_empty()).then_some(held)
        },
    );
    let killed = std::time::Instant::now();
    lab.host("kill", &victim);
    let restore = Restart(victim.clone());

    // Swarm notices the host is gone and runs its tasks elsewhere.
    wait_for(
        "every app task running again on the remaining hosts",
        Duration::from_secs(120),
        || {
            let tasks =
                c.rt.block_on(async { c.deployment().await.ok()?.tasks().await.ok() })?;
            let app: Vec<_> = tasks
                .iter()
                .filter(|t| t.service == format!("{}-app", c.name))
                .collect();
            (app.len() == 3 && app.iter().all(|t| t.state == "running" && t.host != victim))
                .then_some(())
        },
    );
    let full_strength = killed.elapsed();

    // PostgreSQL lets go of the dead host's connections (TCP keepalives), so
    // the live budget check of the next apply passes.
    wait_for(
        "the dead host's connections to leave PostgreSQL",
        Duration::from_secs(90),
        || (!addresses(&c).iter().any(|(_, a)| dead.contains(a))).then_some(()),
    );
    let freed = killed.elapsed();

    // The jobs the dead host held are rescued (its leases lapse) and run once more, on the
    // remaining hosts; every job completes, none runs a third time.
    let rows = wait_for("every job completed", Duration::from_secs(90), || {
        let rows = job_rows(&c);
        (rows.len() == jobs.len() && rows.iter().all(|r| r[1] == "completed")).then_some(rows)
    });
    for r in &rows {
        let attempts: u32 = r[2].parse().unwrap();
        let want = if held.contains(&r[0]) { 2 } else { 1 };
        assert_eq!(
            attempts,
            want,
            "job {r:?} (held by the dead host: {})",
            held.contains(&r[0])
        );
    }
    let (ok, failed, errors) = load.finish();
    eprintln!(
        "host {victim} killed: {failed} failed of {} requests, full strength after {:.1}s, its connections gone after {:.1}s, its {} jobs rescued and completed; first errors: {errors:?}",
        ok + failed,
        full_strength.as_secs_f64(),
        freed.as_secs_f64(),
        held.len()
    );
    assert!(
        ok > 100,
        "the cluster kept serving: {ok} ok, {failed} failed"
    );
    c.write(|t| test_kinds(t).replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\""));
    c.apply()
        .expect("the budget check passes once the dead host's connections left");
    let seen: BTreeSet<String> = nodes_seen(&c, 12).into_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    drop(restore);
}

/// Starts a killed lab host again when dropped (even when the test fails), so
/// the lab is whole for the next test.
struct Restart(String);

impl Drop for Restart {
    fn drop(&mut self) {
        Lab::get().host("start", &self.0);
        let host = self.0.clone();
        wait_for(
            "the host back in the swarm",
            Duration::from_secs(60),
            || {
                manager(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
                    .lines()
                    .any(|l| l == format!("{host} Ready"))
                    .then_some(())
            },
        );
    }
}

#[test]
fn the_swarm_balancer_config_passes_nginx_t_in_the_balancer_image() {
    e2e::require_docker();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(
        &file,
        "[cluster]\nname = \"t\"\ntarget = \"swarm\"\n[balancer]\nimage = \"nginx:1.30\"\n\
         [swarm]\nregistry = \"r:5000\"\ndatabase_host = \"h1\"\nbalancer_host = \"h1\"\n",
    )
    .unwrap();
    let spec = deployer::config::load(&file).unwrap().spec;
    let conf = deployer::render::Templates::load(None)
        .unwrap()
        .nginx(&spec, &deployer::model::upstream(&spec))
        .unwrap();
    assert!(conf.contains("server tasks.t-app:4000 resolve"), "{conf}");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, &conf).unwrap();
    let out = Command::new("docker")
        .args(["run", "--rm", "--user", "101:101", "-v"])
        .arg(format!("{}:/etc/nginx/nginx.conf:ro", path.display()))
        .args([spec.balancer().image().as_str(), "nginx", "-t"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -t in {}: {}\n{conf}",
        spec.balancer().image(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_pooler_runs_on_a_swarm_and_toggles_under_database_load_without_failed_requests() {
    let _serial = serial();
    e2e::require_images(&[deployer::config::POOLER_IMAGE]);
    let c = Cluster::on_swarm("swarmpool", 4005);
    c.apply().unwrap();
    let token = e2e::token(&c, "swarmpool");
    let on = |t: String| t.replace("pooler = \"none\"", "pooler = \"pgbouncer\"");
    for (what, edit) in [("on", on as fn(String) -> String), ("off", |t| t)] {
        let load = Load::start(&c, 4, "/api/auth/me", Some(token.clone()));
        std::thread::sleep(Duration::from_secs(1));
        c.write(edit);
        c.apply().unwrap();
        load.assert_none_failed(20, &format!("turning the pooler {what} on a swarm"));
        assert!(c.plan().is_empty(), "{}", c.plan());
        let pooler = labelled(&c)
            .into_iter()
            .any(|l| l.starts_with(&format!("service {}-pooler-", c.name)));
        assert_eq!(pooler, what == "on", "{:?}", labelled(&c));
        // `status` reads the pooler's pools on its admin console, through a one-off task.
        let pools = c.rt.block_on(async {
            let d = c.deployment().await.unwrap();
            let observed = d.observe().await.unwrap();
            d.pooler_pools(&observed).await
        });
        if what == "on" {
            let pools = pools.unwrap().expect("a pooler");
            assert!(pools.iter().any(|p| p.database == "app"), "{pools:?}");
        }
    }
}

/// `deployer verify` on a swarm: every look inside (each node's health and readiness on the
/// overlay network, the token on every task directly, SQL, the balancer's log) runs as a
/// one-off task; every check passes, and the cluster is left as found. `--chaos` is refused
/// with the reason.
#[test]
fn verify_looks_inside_a_swarm_through_one_off_tasks_and_passes() {
    let _serial = serial();
    let c = Cluster::on_swarm("swarmvfy", 4001);
    c.apply().unwrap();
    let loaded = deployer::config::load(&c.file()).unwrap();
    let options = deployer::verify::Options {
        requests: 300,
        url: Some(format!("http://{}", c.reach)),
        ..Default::default()
    };
    let chaos = deployer::verify::Options {
        chaos: true,
        ..options.clone()
    };
    let err =
        c.rt.block_on(deployer::verify::verify(
            &loaded,
            &c.file(),
            &chaos,
            &mut |_| {},
        ))
        .unwrap_err();
    assert!(format!("{err:#}").contains("--chaos"), "{err:#}");

    let report =
        c.rt.block_on(deployer::verify::verify(
            &loaded,
            &c.file(),
            &options,
            &mut |_| {},
        ))
        .unwrap();
    let shown: Vec<String> = report.checks.iter().map(|c| c.line()).collect();
    println!("{}", shown.join("\n"));
    assert!(report.passed(), "{}", shown.join("\n"));
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "balancer",
            "nodes",
            "distribution",
            "database",
            "auth",
            "jobs",
            "load",
            "cleanup"
        ]
    );
    let figures = |name: &str| report.check(name).unwrap().figures.clone();
    assert_eq!(figures("nodes")["healthy"], 3, "{}", figures("nodes"));
    let auth = figures("auth");
    assert!(auth["served_by"].as_object().unwrap().len() >= 2, "{auth}");
    assert!(
        auth["direct"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == 200),
        "{auth}"
    );
    let jobs = figures("jobs");
    assert_eq!(jobs["completed_once"], 50, "{jobs}");

    // As found: nothing to apply, no probe job left behind.
    assert!(c.plan().is_empty(), "{}", c.plan());
    let left = labelled(&c);
    assert!(
        !left
            .iter()
            .any(|l| l.contains("-probe-") || l.contains("-sql")),
        "{left:?}"
    );
    c.destroy();
}
