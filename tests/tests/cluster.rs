//! The deployer against the real Docker engine: apply, drift, scaling, rolling
//! updates under load, budget refusal, locking, destroy, and networks and volumes
//! that have the cluster's names but are not the deployer's.

use std::collections::BTreeSet;
use std::time::Duration;

use deployer::deploy::DeployError;
use deployer::plan::{Change, PlanError};
use e2e::{nodes_seen, serial, wait_for, Cluster, HandMade, Load};
use serde_json::{json, Value};

/// Every container in `ids` rotates its log (json-file, 10 MB × 3: the defaults of [logs]) and
/// shows no secret of the cluster in `docker inspect`.
fn assert_rotated_logs_and_no_secrets(c: &Cluster, ids: &[String]) {
    assert!(!ids.is_empty());
    let dir = c.dir.path().join(".deployer").join("secrets");
    let secrets: Vec<String> = ["db_password", "jwt_secret"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    for id in ids {
        let out = std::process::Command::new("docker")
            .args(["inspect", id])
            .output()
            .unwrap();
        assert!(out.status.success());
        let inspect = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Value = serde_json::from_str(&inspect).unwrap();
        let name = v[0]["Name"].as_str().unwrap_or_default();
        let log = &v[0]["HostConfig"]["LogConfig"];
        assert_eq!(log["Type"], "json-file", "{name}: {log}");
        assert_eq!(log["Config"]["max-size"], "10m", "{name}: {log}");
        assert_eq!(log["Config"]["max-file"], "3", "{name}: {log}");
        for secret in &secrets {
            assert!(
                !inspect.contains(secret.as_str()),
                "{name}: a secret shows in docker inspect"
            );
        }
    }
}

#[test]
fn apply_serves_through_the_balancer_heals_drift_and_destroys_cleanly() {
    let _serial = serial();
    let c = Cluster::new("life");

    // Apply 3 nodes from nothing.
    c.apply().unwrap();
    assert!(
        c.plan().is_empty(),
        "a plan right after apply is empty: {}",
        c.plan()
    );

    // The balancer on 127.0.0.1 reaches all 3 nodes.
    let seen: BTreeSet<String> = nodes_seen(&c, 12).into_iter().collect();
    let want: BTreeSet<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();
    assert_eq!(seen, want);

    // Every container rotates its log; no secret in `docker inspect`.
    let ids: Vec<String> = c.container_ids().into_iter().map(|(_, id)| id).collect();
    assert_rotated_logs_and_no_secrets(&c, &ids);

    // The config nginx runs is byte for byte generated/nginx.conf.
    let generated = std::fs::read_to_string(c.dir.path().join("generated/nginx.conf")).unwrap();
    assert_eq!(c.observe().nginx_conf.as_deref(), Some(generated.as_str()));

    // Stateless auth: a user signs up, logs in, and /me works 20 times on any node.
    c.rt.block_on(async {
        let client = c.client();
        let r = client
            .post(c.url("/api/users"))
            .json(&json!({"email": "ada@example.com", "full_name": "Ada", "password": "correct horse", "password_confirmation": "correct horse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let r = client
            .post(c.url("/api/auth/login"))
            .json(&json!({"email": "ada@example.com", "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let token = r.json::<Value>().await.unwrap()["data"]["access_token"].as_str().unwrap().to_string();
        for _ in 0..20 {
            let r = client.get(c.url("/api/auth/me")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<Value>().await.unwrap()["data"]["email"], "ada@example.com");
        }
        // The scraper's and the orchestrator's endpoints are not the internet's.
        for path in ["/metrics", "/api/ready"] {
            let r = client.get(c.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path} through the balancer");
        }
    });

    // Drift: a node stopped by hand shows in the plan; traffic keeps flowing; apply heals it.
    let node2 = format!("{}-app-2", c.name);
    let out = std::process::Command::new("docker")
        .args(["stop", "-t", "5", &node2])
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan = c.plan();
    assert_eq!(
        plan.changes,
        vec![
            Change::Migrate,
            Change::Start {
                name: node2.clone(),
                role: deployer::names::Role::App,
                reason: "stopped outside the deployer".into()
            }
        ],
        "{plan}"
    );
    // nginx drops the stopped node at its next DNS answer (within a second); once it is
    // dropped, every request is served, by the others.
    e2e::wait_until_dropped(&c, &node2);
    let seen = nodes_seen(&c, 10);
    assert!(!seen.contains(&node2));
    c.apply().unwrap();
    assert!(c.plan().is_empty());
    wait_for("node 2 to serve again", Duration::from_secs(20), || {
        nodes_seen(&c, 6).contains(&node2).then_some(())
    });

    // An over-budget edit is refused and nothing on the engine changes.
    let before = c.container_ids();
    let status_before: Vec<bool> = c.observe().units.iter().map(|o| o.running).collect();
    c.write(|t| t.replace("pool_size = 10 ", "pool_size = 40 "));
    let err = c.apply().unwrap_err();
    assert!(
        err.downcast_ref::<deployer::config::LoadError>().is_some(),
        "{err:#}"
    );
    assert!(
        format!("{err:#}").contains("the connection budget does not fit"),
        "{err:#}"
    );
    assert_eq!(c.container_ids(), before);
    assert_eq!(
        c.observe()
            .units
            .iter()
            .map(|o| o.running)
            .collect::<Vec<_>>(),
        status_before
    );
    c.write(|t| t);

    // destroy --volumes leaves no container, network or volume.
    c.destroy();
    let o = c.observe();
    assert!(
        o.units.is_empty() && o.network.is_absent() && o.volume.is_absent(),
        "{o:?}"
    );
}

#[test]
fn scaling_touches_only_the_affected_nodes_and_rollouts_lose_no_request() {
    let _serial = serial();
    let c = Cluster::new("scale");
    c.apply().unwrap();
    let three = c.container_ids();

    // 3 → 5: the three nodes (and everything else) keep their containers.
    c.write(|t| t.replace("nodes = 3 ", "nodes = 5 "));
    c.apply().unwrap();
    let five = c.container_ids();
    for (name, id) in &three {
        assert_eq!(
            five.iter().find(|(n, _)| n == name).map(|(_, i)| i),
            Some(id),
            "{name} was recreated"
        );
    }
    let added: Vec<&String> = five
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !three.iter().any(|(m, _)| m == *n))
        .collect();
    assert_eq!(
        added,
        [&format!("{}-app-4", c.name), &format!("{}-app-5", c.name)]
    );
    let seen: BTreeSet<String> = nodes_seen(&c, 20).into_iter().collect();
    assert_eq!(seen.len(), 5);

    // 5 → 2: nodes 3, 4, 5 go; nothing else is touched.
    c.write(|t| t.replace("nodes = 3 ", "nodes = 2 "));
    c.apply().unwrap();
    let two = c.container_ids();
    let expected: Vec<(String, String)> = five
        .iter()
        .filter(|(n, _)| !(3..=5).any(|i| *n == format!("{}-app-{i}", c.name)))
        .cloned()
        .collect();
    assert_eq!(two, expected);
    assert!(c.plan().is_empty());

    // A changed env rolls both nodes while a client loop runs: no request fails.
    let load = Load::start(&c, 4, "/api/health", None);
    std::thread::sleep(Duration::from_millis(500));
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 2 ")
            .replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\"")
    });
    let plan = c.plan();
    assert_eq!(
        plan.count(|ch| matches!(ch, Change::Roll { .. })),
        2,
        "{plan}"
    );
    c.apply().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    load.assert_none_failed(101, "the rollout");
    let after = c.container_ids();
    for i in 1..=2 {
        let name = format!("{}-app-{i}", c.name);
        let old = two.iter().find(|(n, _)| *n == name).unwrap();
        let new = after.iter().find(|(n, _)| *n == name).unwrap();
        assert_ne!(old.1, new.1, "{name} was not replaced");
    }
    assert!(c.plan().is_empty());
}

#[test]
fn a_second_apply_while_one_runs_is_refused() {
    let _serial = serial();
    let c = Cluster::new("lock");
    // Hold the cluster's lock as a running apply does.
    let lock_path = c.dir.path().join(format!(".deployer/{}.lock", c.name));
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    f.lock().unwrap();
    let err = c.apply().unwrap_err();
    assert!(
        format!("{err:#}").contains("another deployer apply or destroy is running"),
        "{err:#}"
    );
    assert!(c.observe().units.is_empty());
    f.unlock().unwrap();
}

/// Not a test on its own: the body of a child process that `an_apply_killed_midway_…`
/// starts (and kills) — it applies the cluster file named in E2E_CHILD_APPLY.
#[test]
fn child_apply() {
    if let Ok(file) = std::env::var("E2E_CHILD_APPLY") {
        let rt = e2e::runtime();
        let _ = rt.block_on(async {
            let file = std::path::Path::new(&file);
            let d = deployer::deploy::Deployment::open(file, deployer::config::load(file)?).await?;
            let _lock = d.lock()?;
            let p = d.prepare(deployer::plan::Goal::Converge).await?;
            d.apply(&p, &deployer::events::Silent).await?;
            Ok::<_, anyhow::Error>(())
        });
    }
}

#[test]
fn an_apply_killed_midway_is_converged_by_the_next_one() {
    let _serial = serial();
    let c = Cluster::new("kill");
    c.write(|t| t.replace("nodes = 3 ", "nodes = 2 "));
    c.apply().unwrap();

    // Start a rollout in another process and kill it in the middle.
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 2 ")
            .replace("RUST_LOG = \"info\"", "RUST_LOG = \"warn\"")
    });
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_apply", "--nocapture", "--test-threads=1"])
        .env("E2E_CHILD_APPLY", c.file())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first node's replacement exists (mid-rollout).
    let old = format!("{}-app-1-old", c.name);
    wait_for("the rollout to start", Duration::from_secs(60), || {
        c.observe()
            .units
            .iter()
            .any(|o| o.name == old)
            .then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // The next apply converges from whatever was left, and the cluster serves.
    c.apply().unwrap();
    let plan = c.plan();
    assert!(plan.is_empty(), "{plan}");
    let names: Vec<String> = c.observe().units.into_iter().map(|o| o.name).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("-old") || n.ends_with("-new")),
        "{names:?}"
    );
    let seen: BTreeSet<String> = nodes_seen(&c, 8).into_iter().collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn the_generated_compose_file_brings_up_a_working_cluster() {
    let _serial = serial();
    let c = Cluster::new("compose");
    c.write(|t| t.replace("nodes = 3 ", "nodes = 2 "));
    // render creates the secrets the compose file reads.
    let file = c.file();
    let loaded = deployer::config::load(&file).unwrap();
    let templates = deployer::render::Templates::load(None).unwrap();
    deployer::deploy::Generated::render(&file, &templates, &loaded.spec, None)
        .unwrap()
        .write()
        .unwrap();
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .args(["-p", &c.name, "-f", "generated/docker-compose.yml"])
            .args(args)
            .current_dir(c.dir.path())
            .output()
            .expect("docker-compose is installed (scripts/install-deps)")
    };
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let seen = wait_for(
        "the compose cluster to serve on both nodes",
        Duration::from_secs(60),
        || {
            let seen: BTreeSet<String> = c.rt.block_on(async {
                let client = c.client();
                let mut s = BTreeSet::new();
                for _ in 0..6 {
                    if let Ok(r) = client.get(c.url("/api/health")).send().await {
                        if let Ok(v) = r.json::<Value>().await {
                            s.insert(v["node"].as_str().unwrap_or("").to_string());
                        }
                    }
                }
                s
            });
            (seen.len() == 2).then_some(seen)
        },
    );
    assert!(seen.contains(&format!("{}-app-1", c.name)));
    // The database answers through the app: sign-up works.
    let status = c.rt.block_on(async {
        c.client()
            .post(c.url("/api/users"))
            .json(&json!({"email": "c@example.com", "full_name": "C", "password": "password1", "password_confirmation": "password1"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201);
    // The compose path too: rotated logs, secrets only as files (the migration included).
    let ps = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=com.docker.compose.project={}", c.name))
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        ids.len(),
        5,
        "postgres, migrate, 2 nodes, balancer: {ids:?}"
    );
    assert_rotated_logs_and_no_secrets(&c, &ids);
    let down = compose(&["down", "-v"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

#[test]
fn a_node_failing_its_health_gate_stops_the_rollout_and_the_old_nodes_keep_serving() {
    let _serial = serial();
    let c = Cluster::new("gate");
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 2 ")
            .replace("health_timeout = 60", "health_timeout = 10")
    });
    c.apply().unwrap();
    let before = c.container_ids();

    // A config the app refuses at start: the new node never becomes ready.
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 2 ")
            .replace("health_timeout = 60", "health_timeout = 10")
            .replace(
                "RUST_LOG = \"info\"",
                "RUST_LOG = \"info\"\nJWT_TTL_SECS = \"0\"",
            )
    });
    let err = c.apply().unwrap_err();
    let msg = format!("{err:#}");
    // It failed its gate under `-new`, a name the balancer never resolves.
    let node1 = format!("{}-app-1-new", c.name);
    assert!(
        msg.contains(&format!("{node1} did not become healthy")),
        "{msg}"
    );
    assert!(
        msg.contains("JWT_TTL_SECS"),
        "the node's last log lines are shown: {msg}"
    );

    // Nothing was lost: the same containers serve, under their own names.
    assert_eq!(c.container_ids(), before);
    let seen: BTreeSet<String> = nodes_seen(&c, 8).into_iter().collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn nodes_publishing_host_ports_are_replaced_stop_first_without_failed_requests() {
    let _serial = serial();
    let c = Cluster::new("ports");
    // Three consecutive free ports (nodes + max_surge), below the kernel's ephemeral range
    // (32768–60999): there an outgoing connection — the load loop's own — can take one
    // between this check and the apply.
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    let base = (start..32_000)
        .step_by(3)
        .find(|p| (0..3).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()))
        .expect("three free consecutive ports");
    let edit = move |t: String| {
        t.replace("nodes = 3 ", "nodes = 2 ").replace(
            "# host_port_base = 4001",
            &format!("host_port_base = {base}"),
        )
    };
    c.write(edit);
    c.apply().unwrap();
    let direct = |port: u16| -> String {
        c.rt.block_on(async {
            let r = c
                .client()
                .get(format!("http://127.0.0.1:{port}/api/health"))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["node"]
                .as_str()
                .unwrap()
                .to_string()
        })
    };
    assert_eq!(direct(base), format!("{}-app-1", c.name));
    assert_eq!(direct(base + 1), format!("{}-app-2", c.name));

    let load = Load::start(&c, 4, "/api/health", None);
    std::thread::sleep(Duration::from_millis(300));
    c.write(move |t| edit(t).replace("RUST_LOG = \"info\"", "RUST_LOG = \"debug\""));
    c.apply().unwrap();
    let (ok, failed, errors) = load.finish();
    assert!(ok > 50, "{ok}");
    assert_eq!(failed, 0, "{errors:?}");
    assert!(c.plan().is_empty());
    // The replacements publish the same ports.
    assert_eq!(direct(base), format!("{}-app-1", c.name));
    assert_eq!(direct(base + 1), format!("{}-app-2", c.name));
}

/// `apply` with a foreign `kind` ("network"/"volume") named `<cluster><suffix>`: refused
/// with an error naming it, before anything is created; the object is untouched.
fn apply_refuses_a_foreign(kind: &'static str, suffix: &str, tag: &str) {
    let _serial = serial();
    let c = Cluster::without_images(tag);
    let name = format!("{}{suffix}", c.name);
    let hand_made = HandMade::create(kind, &name, &[]);

    let err = c.apply().expect_err("apply must refuse");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!(
            "{kind} {name} exists but was not created by the deployer (it lacks the label io.deployer.cluster={})",
            c.name
        )),
        "{msg}"
    );
    let typed = match err.downcast_ref::<DeployError>() {
        Some(DeployError::Plan(e)) => Some(e),
        _ => None,
    };
    assert!(
        match kind {
            "network" => matches!(typed, Some(PlanError::ForeignNetwork { .. })),
            _ => matches!(typed, Some(PlanError::ForeignVolume { .. })),
        },
        "{err:?}"
    );
    // `plan` refuses the same way.
    let plan = c.try_plan();
    assert!(
        matches!(&plan, Err(e) if matches!(e.downcast_ref::<DeployError>(), Some(DeployError::Plan(_)))),
        "{plan:?}"
    );

    // Nothing of the cluster was made; the hand-made object is still there.
    let o = c.observe();
    assert!(o.is_empty(), "{o:?}");
    assert!(o.units.is_empty(), "{o:?}");
    match kind {
        "network" => assert!(o.network.is_foreign() && o.volume.is_absent(), "{o:?}"),
        _ => assert!(o.volume.is_foreign() && o.network.is_absent(), "{o:?}"),
    }
    assert!(hand_made.exists(), "{kind} {name} must be left in place");
}

#[test]
fn apply_refuses_a_volume_it_did_not_create() {
    apply_refuses_a_foreign("volume", "-pgdata", "fvol");
}

#[test]
fn apply_refuses_a_network_it_did_not_create() {
    apply_refuses_a_foreign("network", "-net", "fnet");
}

#[test]
fn destroy_volumes_leaves_a_volume_it_did_not_create() {
    let _serial = serial();
    let c = Cluster::without_images("fdestroy");
    // Never applied: the volume's name is taken by hand (once without any label, once
    // with another cluster's), and the network is one the deployer made.
    let other = format!("io.deployer.cluster={}-other", c.name);
    for args in [vec![], vec!["--label", other.as_str()]] {
        let volume = HandMade::create("volume", &format!("{}-pgdata", c.name), &args);
        c.rt.block_on(async {
            let engine = deployer::target::docker::engine::Engine::connect()
                .await
                .unwrap();
            engine
                .create_network(
                    &format!("{}-net", c.name),
                    [("io.deployer.cluster".to_string(), c.name.clone())].into(),
                )
                .await
                .unwrap();
        });
        let o = c.observe();
        assert!(o.network.is_owned() && o.volume.is_foreign(), "{o:?}");

        c.destroy_all().unwrap();
        let o = c.observe();
        assert!(
            o.network.is_absent(),
            "the deployer's network is removed: {o:?}"
        );
        assert!(o.volume.is_foreign(), "{o:?}");
        assert!(volume.exists(), "destroy --volumes removed {}", volume.name);

        // Again, with nothing of ours left: still left alone.
        c.destroy_all().unwrap();
        assert!(volume.exists(), "destroy --volumes removed {}", volume.name);
    }
}

/// The secrets directory lost while the cluster's data volume lives on: `apply` refuses with
/// an error that says what happened and both ways out, and changes nothing (no new secrets, no
/// network, no container).
#[test]
fn apply_refuses_to_replace_lost_secrets_while_the_data_volume_exists() {
    let _serial = serial();
    let c = Cluster::without_images("lostsecrets");
    let label = format!("io.deployer.cluster={}", c.name);
    let volume = HandMade::create(
        "volume",
        &format!("{}-pgdata", c.name),
        &["--label", &label],
    );
    let secrets = c.dir.path().join(".deployer").join("secrets");
    assert!(!secrets.exists());

    let err = c.apply().expect_err("apply must refuse");
    let msg = format!("{err:#}");
    for part in [
        format!(
            "the database volume {} holds this cluster's data",
            volume.name
        ),
        "its password file".to_string(),
        "is missing".to_string(),
        "Nothing was changed".to_string(),
        "restore the directory".to_string(),
        "`deployer destroy --volumes`".to_string(),
    ] {
        assert!(msg.contains(&part), "`{part}` not in: {msg}");
    }
    assert!(
        matches!(
            err.downcast_ref::<DeployError>(),
            Some(DeployError::SecretsLost { .. })
        ),
        "{err:?}"
    );
    assert!(
        !secrets.join("db_password").exists(),
        "no new secret was made"
    );
    let observed = c.observe();
    assert!(
        observed.network.is_absent() && observed.units.is_empty(),
        "{observed:?}"
    );
    assert!(volume.exists());
}

/// Secrets made afresh by `render` (the compose path makes them when they are missing)
/// after the cluster's were lost: the data volume records which password it was created
/// with, so `apply` refuses before any node is replaced, and says how out.
#[test]
fn apply_refuses_secrets_that_render_made_afresh_for_an_existing_volume() {
    let _serial = serial();
    let c = Cluster::new("freshsecrets");
    c.apply().unwrap();
    let ids = c.container_ids();
    let secrets = c.dir.path().join(".deployer").join("secrets");
    std::fs::remove_dir_all(&secrets).unwrap();

    // What `deployer render` does: templates rendered, secrets made when missing.
    let loaded = deployer::config::load(&c.file()).unwrap();
    let templates = deployer::render::Templates::load(None).unwrap();
    deployer::deploy::Generated::render(&c.file(), &templates, &loaded.spec, None)
        .unwrap()
        .write()
        .unwrap();
    assert!(
        secrets.join("db_password").exists(),
        "render made a new password"
    );

    let err = c.apply().expect_err("apply must refuse");
    let msg = format!("{err:#}");
    for part in [
        "was created with another database password",
        "Nothing was changed",
        "restore the directory",
        "`deployer destroy --volumes`",
    ] {
        assert!(msg.contains(part), "`{part}` not in: {msg}");
    }
    assert!(
        matches!(
            err.downcast_ref::<DeployError>(),
            Some(DeployError::SecretsReplaced { .. })
        ),
        "{err:?}"
    );
    assert_eq!(c.container_ids(), ids, "nothing was replaced");
    // The nodes still serve with the password the data was made with.
    let seen: BTreeSet<String> = nodes_seen(&c, 6).into_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}
