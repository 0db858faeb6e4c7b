//! `[database] pooler = "pgbouncer"` on the real engine: the pooler comes up between
//! PostgreSQL and the nodes, unpublished, with its password only in a secret file; nodes
//! query through it and LISTEN directly; turning it on, changing it and turning it off
//! roll the nodes under load without a failed request; verify holds both sides of the
//! budget.

use std::time::Duration;

use deployer::plan::Change;
use deployer::verify::Options;
use e2e::{psql, serial, Cluster, Load};
use serde_json::Value;

const ON: &str = "pooler = \"pgbouncer\"";
const OFF: &str = "pooler = \"none\"";

fn pooled(t: String) -> String {
    t.replace(OFF, ON)
}

/// A cluster of the example (the pooler off), with PgBouncer's image on the engine.
fn cluster(tag: &str) -> Cluster {
    e2e::require_images(&[deployer::config::POOLER_IMAGE]);
    Cluster::new(tag)
}

/// An edit of the cluster file.
type Edit = fn(String) -> String;

/// The pooler's name as the cluster file makes it: `<cluster>-pooler-<generation>`.
fn pooler_of(c: &Cluster) -> Option<String> {
    deployer::model::pooler_name(&deployer::config::load(&c.file()).unwrap().spec)
}

/// `docker inspect` of one container, as JSON.
fn inspect(name: &str) -> Value {
    let out = std::process::Command::new("docker")
        .args(["inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker inspect {name}");
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn env_of(container: &Value) -> Vec<String> {
    container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn apply_with_the_pooler_puts_it_between_postgres_and_the_nodes() {
    let _serial = serial();
    let c = cluster("pool");
    c.write(pooled);
    let plan = c.plan();
    let pooler = pooler_of(&c).expect("a pooler in the file");
    let order: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|ch| match ch {
            Change::Create { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let at = |n: &str| order.iter().position(|o| o == n).unwrap();
    assert!(
        at(&format!("{}-postgres", c.name)) < at(&pooler),
        "{order:?}"
    );
    assert!(at(&pooler) < at(&format!("{}-app-1", c.name)), "{order:?}");
    c.apply().unwrap();
    assert!(c.plan().is_empty(), "not empty after apply:\n{}", c.plan());

    // The pooler: never published, non-root, its password only in its secret file.
    // The engine's own check agrees with the deployer's gate within one health_interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let mut p = inspect(&pooler);
    while p["State"]["Health"]["Status"] != "healthy" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        p = inspect(&pooler);
    }
    assert_eq!(p["State"]["Health"]["Status"], "healthy");
    assert_eq!(p["Config"]["User"], "70:70");
    let ports = &p["HostConfig"]["PortBindings"];
    assert!(
        ports.is_null() || ports.as_object().unwrap().is_empty(),
        "published: {ports}"
    );
    let password =
        std::fs::read_to_string(c.dir.path().join(".deployer/secrets/db_password")).unwrap();
    let env = env_of(&p);
    assert!(
        env.contains(&"POOL_MODE=transaction".to_string()),
        "{env:?}"
    );
    assert!(
        env.contains(&"MAX_PREPARED_STATEMENTS=200".to_string()),
        "{env:?}"
    );
    assert!(env.contains(&"AUTH_FILE=/run/secrets/pgbouncer_auth".to_string()));
    let logs = std::process::Command::new("docker")
        .args(["logs", &pooler])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout) + String::from_utf8_lossy(&logs.stderr);
    for (what, text) in [("env", env.join("\n")), ("logs", logs.to_string())] {
        assert!(
            !text.contains(password.trim()),
            "the password in the pooler's {what}"
        );
    }
    // `deployer render`: the compose file names the auth file, never the password.
    let loaded = deployer::config::load(&c.file()).unwrap();
    let templates =
        deployer::render::Templates::load(Some(&e2e::repo().join("templates"))).unwrap();
    let generated =
        deployer::deploy::Generated::render(&c.file(), &templates, &loaded.spec, None).unwrap();
    generated.write().unwrap();
    let compose =
        std::fs::read_to_string(c.dir.path().join("generated/docker-compose.yml")).unwrap();
    assert!(compose.contains("pgbouncer_auth"), "{compose}");
    assert!(
        !compose.contains(password.trim()),
        "the password in the compose file"
    );

    // Nodes: queries through the pooler, LISTEN and migrations to PostgreSQL.
    let node = env_of(&inspect(&format!("{}-app-1", c.name)));
    assert!(
        node.contains(&format!("DATABASE_URL=postgres://app@{pooler}:5432/app")),
        "{node:?}"
    );
    assert!(
        node.contains(&format!(
            "DATABASE_DIRECT_URL=postgres://app@{}-postgres:5432/app",
            c.name
        )),
        "{node:?}"
    );

    // Requests that query the database work, and PgBouncer carried them.
    let token = e2e::token(&c, "pooler");
    e2e::me(&c, &token, 30);
    let pools = psql(&c, &pooler, "pgbouncer", "SHOW POOLS");
    assert!(
        pools.iter().any(|r| r[0] == "app" && r[1] == "app"),
        "no pool for app@app: {pools:?}"
    );
    let listeners = psql(
        &c,
        &format!("{}-postgres", c.name),
        "app",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'listen%' AND application_name LIKE '{}-app-%'",
            c.name
        ),
    );
    assert_eq!(listeners[0][0], "3", "one direct LISTEN session per node");

    // verify: both sides of the budget under load, every check passing.
    let options = Options {
        requests: 400,
        jobs: 20,
        ..Options::default()
    };
    let report = e2e::verify(&c, &options).unwrap();
    let lines: Vec<String> = report.checks.iter().map(|c| c.line()).collect();
    assert!(report.passed(), "{}", lines.join("\n"));
    let pooler_check = report.check("pooler").expect("a pooler check");
    assert!(pooler_check.figures["samples"].as_u64().unwrap() > 0);
    assert!(
        pooler_check.figures["peak_postgres_connections"]
            .as_u64()
            .unwrap()
            <= pooler_check.figures["budget"]["peak"].as_u64().unwrap()
    );
}

#[test]
fn turning_the_pooler_on_changing_it_and_off_under_load_fails_no_request() {
    let _serial = serial();
    let c = cluster("pooltog");
    c.apply().unwrap();
    let token = e2e::token(&c, "pooler");

    let bigger =
        |t: String| pooled(t).replace("# pooler_pool_size = 20 ", "pooler_pool_size = 30 # ");
    let phases: [(&str, Edit); 3] = [
        ("turning the pooler on", pooled),
        (
            "changing the pooler (a new one, the nodes roll over)",
            bigger,
        ),
        ("turning the pooler off", |t| t),
    ];
    for (what, edit) in phases {
        // A client loop whose every request queries the database through the nodes' pools.
        let load = Load::start(&c, 4, "/api/auth/me", Some(token.clone()));
        std::thread::sleep(Duration::from_millis(500));
        c.write(edit);
        let plan = c.plan();
        assert_eq!(
            plan.count(|ch| matches!(ch, Change::Roll { .. })),
            3,
            "{what}: {plan}"
        );
        c.apply().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        load.assert_none_failed(101, what);
        let poolers: Vec<String> = c
            .observe()
            .units
            .into_iter()
            .filter(|u| u.role == deployer::names::Role::Pooler)
            .map(|u| u.name)
            .collect();
        assert_eq!(
            poolers,
            pooler_of(&c).into_iter().collect::<Vec<_>>(),
            "{what}"
        );
        assert!(c.plan().is_empty(), "{what}");
    }
}
