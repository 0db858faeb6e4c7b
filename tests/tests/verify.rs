//! `deployer verify --chaos` against a real 3-node cluster: every check passes, the
//! figures add up, and the cluster is left exactly as verify found it.

use std::time::Instant;

use deployer::verify::{Options, Report};
use e2e::{serial, verify, Cluster};
use serde_json::Value;

/// One number from psql in the cluster's database.
fn sql_count(c: &Cluster, sql: &str) -> u64 {
    let rows = e2e::psql(c, &format!("{}-postgres", c.name), "app", sql);
    let out = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {out}"))
}

fn figures<'a>(r: &'a Report, name: &str) -> &'a Value {
    &r.check(name)
        .unwrap_or_else(|| panic!("no {name} check"))
        .figures
}

#[test]
fn verify_with_chaos_passes_on_a_healthy_cluster_and_leaves_it_as_found() {
    let _serial = serial();
    let started = Instant::now();
    let c = Cluster::new("vfy");
    let args = Options {
        chaos: true,
        requests: 300,
        ..Options::default()
    };
    assert_eq!(
        (args.concurrency, args.jobs, args.auth_requests),
        (10, 50, 100)
    );

    // Nothing deployed yet: an error that says what to do, not a row of failures.
    let err = verify(&c, &args).unwrap_err();
    assert!(format!("{err:#}").contains("not deployed"), "{err:#}");

    c.apply().unwrap();
    // A real user whose email and job look like verify's own: verify must not touch them.
    c.rt.block_on(async {
        let (email, password) = ("verify-bystander@verify.invalid", "a real user's password");
        let r = c
            .client()
            .post(c.url("/api/users"))
            .json(
                &serde_json::json!({"email": email, "full_name": "B", "password": password,
                                      "password_confirmation": password}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c
            .client()
            .post(c.url("/api/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let bystander = r.json::<Value>().await.unwrap()["data"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = c
            .client()
            .post(c.url("/api/jobs"))
            .bearer_auth(&bystander)
            .json(&serde_json::json!({"kind": "noop", "args": {"verify": "mine"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    });
    let ids_before = c.container_ids();
    let users_before = sql_count(&c, "SELECT count(*) FROM users");
    let jobs_before = sql_count(&c, "SELECT count(*) FROM jobs");

    let report = verify(&c, &args).unwrap();
    let lines: Vec<String> = report.checks.iter().map(|c| c.line()).collect();
    let shown = lines.join("\n");
    println!("{shown}");
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
            "chaos",
            "load",
            "cleanup"
        ]
    );
    assert!(report.passed(), "some checks failed:\n{shown}");

    // The figures add up.
    let nodes: Vec<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();
    let d = figures(&report, "distribution");
    let served: u64 = nodes
        .iter()
        .map(|n| {
            let k = d["per_node"][n].as_u64().unwrap();
            assert!(k > 0, "{n} served nothing: {d}");
            k
        })
        .sum();
    assert_eq!(served, 300, "{d}");
    assert!(d["fairness"].as_f64().unwrap() >= 0.9, "{d}");

    assert_eq!(figures(&report, "nodes")["healthy"], 3);

    let db = figures(&report, "database");
    let per_node = db["budget"]["per_node"].as_u64().unwrap();
    for n in &nodes {
        assert!(db["per_node"][n].as_u64().unwrap() <= per_node, "{db}");
    }

    let auth = figures(&report, "auth");
    assert_eq!(auth["ok"], 100, "{auth}");
    assert!(auth["served_by"].as_object().unwrap().len() >= 2, "{auth}");
    assert!(auth["direct"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == 200));

    let jobs = figures(&report, "jobs");
    assert_eq!(jobs["completed_once"], 50, "{jobs}");
    assert_eq!(jobs["max_attempts_seen"], 1, "{jobs}");
    let by_node = jobs["by_node"].as_object().unwrap();
    assert!(by_node.len() >= 2, "{jobs}");
    assert!(by_node.keys().all(|k| nodes.contains(k)), "{jobs}");

    let chaos = figures(&report, "chaos");
    assert_eq!(chaos["node"], nodes[2].as_str());
    assert_eq!(chaos["failed"], 0, "{chaos}");
    assert!(chaos["requests"].as_u64().unwrap() > 50, "{chaos}");
    assert!(
        chaos["served_while_down"].get(&nodes[2]).is_none(),
        "{chaos}"
    );
    assert!(chaos["recovery_seconds"].as_f64().is_some(), "{chaos}");
    assert_eq!(chaos["same_container"], true);

    let load = figures(&report, "load");
    assert_eq!(load["errors"], 0, "{load}");
    assert!(load["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(load["p50_ms"].as_f64().unwrap() <= load["p99_ms"].as_f64().unwrap());

    // Left as found: the same containers, nothing to apply, no test data.
    assert_eq!(c.container_ids(), ids_before);
    assert!(c.plan().is_empty(), "{}", c.plan());
    let tag = figures(&report, "cleanup")["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sql_count(
            &c,
            &format!("SELECT count(*) FROM users WHERE email LIKE '%{tag}%'")
        ),
        0
    );
    assert_eq!(sql_count(&c, "SELECT count(*) FROM users"), users_before);
    assert_eq!(sql_count(&c, "SELECT count(*) FROM jobs"), jobs_before);
    assert_eq!(
        sql_count(
            &c,
            "SELECT count(*) FROM jobs WHERE args->>'verify' = 'mine'"
        ),
        1,
        "the bystander's job is kept"
    );
    assert_eq!(
        sql_count(&c, "SELECT count(*) FROM outbox_emails"),
        1,
        "the bystander's welcome email is kept"
    );

    c.destroy();
    println!(
        "verify e2e: {:.1}s including apply and destroy",
        started.elapsed().as_secs_f64()
    );
}
