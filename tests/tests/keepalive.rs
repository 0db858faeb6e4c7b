//! Keep-alive clients across membership changes: rollouts and scale changes lose no
//! request of a client that keeps its connection (GETs, and POSTs, which nobody retries).
//! The balancer finds the nodes by DNS, so a rollout does not reload it; a scale change
//! reloads it, and its old workers never close a connection under a client that is using it.

use std::time::Duration;

use deployer::plan::Goal;
use deployer::steps::Step;
use e2e::keepalive::{Call, KeepAlive, Tally};
use e2e::{serial, Cluster};
use serde_json::json;

/// The steps the next apply will carry out, flattened.
fn steps(c: &Cluster) -> Vec<Step> {
    let prepared =
        c.rt.block_on(async { anyhow::Ok(c.deployment().await?.prepare(Goal::Converge).await?) })
            .unwrap();
    let mut out = Vec::new();
    for s in prepared.steps {
        match s {
            Step::Guarded { steps, .. } => out.extend(steps),
            s => out.push(s),
        }
    }
    out
}

fn reloads(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| matches!(s, Step::Reload { .. }))
        .count()
}

/// Requests served since `before`, per call.
fn served(now: &[Tally], before: &[Tally]) -> Vec<usize> {
    now.iter().zip(before).map(|(a, b)| a.ok - b.ok).collect()
}

#[test]
fn keep_alive_clients_lose_nothing_across_a_rollout_and_scale_changes() {
    let _serial = serial();
    let c = Cluster::new("keepalive");
    let nodes = |n: u32| move |t: String| t.replace("nodes = 3 ", &format!("nodes = {n} "));
    c.write(nodes(2));
    c.apply().unwrap();
    let token = e2e::token(&c, "keepalive");

    let load = KeepAlive::start(
        c.port,
        &[
            (
                Call::Get {
                    path: "/api/health".into(),
                },
                4,
            ),
            (
                Call::Post {
                    path: "/api/jobs".into(),
                    body: json!({"kind": "noop", "args": {"from": "keepalive"}}).to_string(),
                    token,
                },
                1,
            ),
        ],
        Duration::from_secs(180),
    );
    let wait_for_requests = |before: &[Tally]| {
        e2e::wait_for("both loops to be served", Duration::from_secs(30), || {
            served(&load.tally(), before)
                .iter()
                .all(|n| *n >= 20)
                .then_some(())
        })
    };
    wait_for_requests(&load.tally());

    // A rolling update: no reload; traffic follows the nodes' names.
    c.write(|t| nodes(2)(t).replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\""));
    let rollout = steps(&c);
    assert_eq!(
        reloads(&rollout),
        0,
        "a rollout reloads nginx: {rollout:#?}"
    );
    let before = load.tally();
    c.apply().unwrap();
    wait_for_requests(&before);

    // Scale 2 → 3 → 2: each changes the names the balancer resolves, one reload each.
    c.write(|t| nodes(3)(t).replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\""));
    assert_eq!(reloads(&steps(&c)), 1);
    c.apply().unwrap();
    wait_for_requests(&load.tally());
    c.write(|t| nodes(2)(t).replace("RUST_LOG = \"info\"", "RUST_LOG = \"info,app=debug\""));
    assert_eq!(reloads(&steps(&c)), 1);
    c.apply().unwrap();
    wait_for_requests(&load.tally());

    let tally = load.finish();
    let (get, post) = (&tally[0], &tally[1]);
    eprintln!("keep-alive GETs: {get:?}\nkeep-alive POSTs: {post:?}");
    assert_eq!(
        (get.failed, post.failed),
        (0, 0),
        "failed requests: GET {:?}; POST {:?}",
        get.errors,
        post.errors
    );
    // The clients did keep their connections: far fewer connections than requests.
    for (what, t) in [("GET", get), ("POST", post)] {
        assert!(
            t.ok >= 10 * t.connections,
            "{what}: {} requests on {} connections",
            t.ok,
            t.connections
        );
    }
    assert!(c.plan().is_empty());
}
