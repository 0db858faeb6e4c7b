//! `deployer logs` against real clusters, through the library calls the command
//! makes (`Deployment::logs`, `Deployment::follow_logs`) and its formatting:
//! every unit's lines named by unit and merged in time order, `--tail`,
//! `--since`, target filters, `--json`; following across a rollout, a
//! replaced node's new container going on under the node's name; on the swarm
//! lab, tasks on several hosts named by their slot, followed across a rolling
//! update.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployer::events::Silent;
use deployer::logs::{format, Line, Printer, Request, Selection};
use e2e::{serial, wait_for, Cluster};
use serde_json::Value;

fn request(c: &Cluster, targets: &[&str], since: Option<Duration>, tail: Option<usize>) -> Request {
    let spec = deployer::config::load(&c.file()).unwrap().spec;
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    Request {
        selection: Selection::parse(&spec, &targets).unwrap(),
        since,
        tail,
    }
}

/// `deployer logs [TARGET…] [--since] [--tail]`, as the command reads them.
fn logs(c: &Cluster, req: &Request) -> Vec<Line> {
    c.rt.block_on(async {
        let d = c.deployment().await.unwrap();
        d.logs(req, &Silent).await.unwrap()
    })
}

/// GET /api/health?<marker> through the balancer, once per marker, in order. Each brings its
/// own X-Request-Id, so the default sampled access log keeps its line.
fn requests(c: &Cluster, markers: &[String]) {
    get_each(c, markers, true, 200);
}

fn get_each(c: &Cluster, markers: &[String], traced: bool, status: u16) {
    c.rt.block_on(async {
        let client = c.client();
        let path = if status == 404 {
            "/api/nothing-here"
        } else {
            "/api/health"
        };
        for m in markers {
            let mut r = client.get(c.url(&format!("{path}?{m}")));
            if traced {
                r = r.header("x-request-id", m.as_str());
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), status, "{m}");
        }
    })
}

/// The markers found in the balancer's lines, in the order shown.
fn markers_in(lines: &[Line], lb: &str, prefix: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.unit == lb)
        .filter_map(|l| {
            let i = l.text.find(prefix)?;
            Some(
                l.text[i..]
                    .split(|c: char| c.is_whitespace())
                    .next()?
                    .to_string(),
            )
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The app's tracing JSON of a line, if it is one.
fn event(l: &Line) -> Option<Value> {
    serde_json::from_str::<Value>(&l.text)
        .ok()
        .filter(|v| v.get("level").is_some())
}

fn started(l: &Line) -> bool {
    event(l).is_some_and(|v| v["message"] == "node started")
}

#[test]
fn logs_show_every_unit_by_name_in_time_order_tailed_since_filtered_and_as_json() {
    let _serial = serial();
    let c = Cluster::new("logs");
    c.apply().unwrap();
    let (lb, pg) = (format!("{}-lb", c.name), format!("{}-postgres", c.name));
    let nodes: Vec<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();

    // Requests through the balancer show in its access log.
    let early: Vec<String> = (0..12).map(|i| format!("logs-e2e=early-{i:02}")).collect();
    requests(&c, &early);
    let all = request(&c, &[], None, None);
    let lines = wait_for(
        "the balancer's access log to show the requests",
        Duration::from_secs(20),
        || {
            let lines = logs(&c, &all);
            (markers_in(&lines, &lb, "logs-e2e=").len() == early.len()).then_some(lines)
        },
    );
    // (Each nginx worker buffers its own access log: two requests served by
    // different workers may be written in either order, so the set is compared.)
    assert_eq!(sorted(markers_in(&lines, &lb, "logs-e2e=")), early);

    // The default access log is sampled: a failed answer is always there, and of 300
    // plain successful requests about 1 in 100 (fewer than 30 with certainty to 1e-15).
    let plain: Vec<String> = (0..300).map(|i| format!("logs-plain={i:03}")).collect();
    get_each(&c, &plain, false, 200);
    get_each(&c, &["logs-miss=404".to_string()], false, 404);
    wait_for(
        "the failed request in the access log",
        Duration::from_secs(20),
        || (!markers_in(&logs(&c, &all), &lb, "logs-miss=").is_empty()).then_some(()),
    );
    // Both nginx workers flush within a second of the last line they buffered.
    std::thread::sleep(Duration::from_millis(1500));
    let after = logs(&c, &all);
    assert_eq!(markers_in(&after, &lb, "logs-miss="), ["logs-miss=404"]);
    let sampled = markers_in(&after, &lb, "logs-plain=").len();
    assert!(
        sampled < 30,
        "{sampled} of 300 plain requests logged: not sampled"
    );

    // Every unit, by name, merged in time order.
    assert!(
        lines.windows(2).all(|w| w[0].time <= w[1].time),
        "lines out of time order"
    );
    let units: BTreeSet<&str> = lines.iter().map(|l| l.unit.as_str()).collect();
    let want: BTreeSet<&str> = nodes
        .iter()
        .map(String::as_str)
        .chain([lb.as_str(), pg.as_str()])
        .collect();
    assert_eq!(units, want, "the units with lines");
    // Each node's own line says which node it is: the name its lines carry.
    for node in &nodes {
        let mine: Vec<&Line> = lines.iter().filter(|l| l.unit == *node).collect();
        let start = mine
            .iter()
            .find(|l| started(l))
            .unwrap_or_else(|| panic!("{node} logged no `node started`: {mine:?}"));
        assert_eq!(event(start).unwrap()["node"], node.as_str());
        let shown =
            anstream::adapter::strip_str(&Printer::new(nodes.clone()).readable(start)).to_string();
        assert!(
            shown.starts_with(&format!("{node} | ")) && shown.contains(" INFO  node started "),
            "readable: {shown}"
        );
        assert!(shown.contains(&format!("node={node}")), "readable: {shown}");
    }

    // --json: every line one JSON object naming its unit; the app's own fields kept.
    for l in &lines {
        let v: Value = serde_json::from_str(&format::json(l))
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", format::json(l)));
        assert_eq!(v["unit"], l.unit.as_str());
        if started(l) {
            assert_eq!(v["message"], "node started");
            assert_eq!(v["level"], "INFO");
            assert_eq!(v["node"], l.unit.as_str());
        } else if event(l).is_none() {
            assert_eq!(v["message"], l.text.as_str());
        }
    }

    // --tail 2: the last two lines of each unit.
    let tailed = logs(&c, &request(&c, &[], None, Some(2)));
    let mut per_unit: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in &tailed {
        per_unit.entry(&l.unit).or_default().push(&l.text);
    }
    assert_eq!(per_unit.keys().copied().collect::<BTreeSet<_>>(), want);
    for (unit, texts) in &per_unit {
        let full: Vec<&str> = lines
            .iter()
            .filter(|l| l.unit == *unit)
            .map(|l| l.text.as_str())
            .collect();
        let n = full.len().min(2);
        // The balancer may have written more since; the others are quiet.
        if *unit != lb {
            assert_eq!(texts.as_slice(), &full[full.len() - n..], "{unit}");
        } else {
            assert_eq!(texts.len(), 2, "{unit}");
        }
    }

    // Targets: one node and the balancer; postgres alone.
    let some = logs(&c, &request(&c, &["app-2", "lb"], None, None));
    let units: BTreeSet<&str> = some.iter().map(|l| l.unit.as_str()).collect();
    assert_eq!(units, BTreeSet::from([nodes[1].as_str(), lb.as_str()]));
    let full_name = logs(&c, &request(&c, &[nodes[2].as_str()], None, None));
    assert!(!full_name.is_empty() && full_name.iter().all(|l| l.unit == nodes[2]));
    let only_pg = logs(&c, &request(&c, &["postgres"], None, None));
    assert!(!only_pg.is_empty() && only_pg.iter().all(|l| l.unit == pg));
    let spec = deployer::config::load(&c.file()).unwrap().spec;
    let err = Selection::parse(&spec, &["web".to_string()]).unwrap_err();
    assert!(
        err.to_string().contains("app-1 … app-3") && err.to_string().contains("postgres"),
        "{err}"
    );

    // --since 2s: the requests made now, none of those from seconds ago, no start-up line.
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<String> = (0..3).map(|i| format!("logs-e2e=late-{i}")).collect();
    requests(&c, &late);
    let recent = request(&c, &[], Some(Duration::from_secs(2)), None);
    let lines = wait_for(
        "the late requests in the log",
        Duration::from_secs(10),
        || {
            let lines = logs(&c, &recent);
            (markers_in(&lines, &lb, "logs-e2e=late").len() == late.len()).then_some(lines)
        },
    );
    assert_eq!(
        sorted(markers_in(&lines, &lb, "logs-e2e=")),
        late,
        "only the late requests"
    );
    assert!(
        !lines.iter().any(started),
        "start-up lines are older than 2s"
    );
}

/// Follows `targets` in the background from now (`--tail 0 -f`); the lines
/// seen so far, and a handle that stops following.
struct Following {
    lines: Arc<Mutex<Vec<Line>>>,
    collector: tokio::task::JoinHandle<()>,
    follower: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Following {
    fn start(c: &Cluster, targets: &[&str]) -> Following {
        let req = request(c, targets, None, Some(0));
        let file = c.file();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(1024);
        let follower = c.rt.spawn(async move {
            let loaded = deployer::config::load(&file)?;
            let d = deployer::deploy::Deployment::open(&file, loaded).await?;
            d.follow_logs(&req, tx, &Silent).await?;
            Ok(())
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let collector = c.rt.spawn(async move {
            while let Some(l) = rx.recv().await {
                seen.lock().unwrap().push(l);
            }
        });
        Following {
            lines,
            collector,
            follower,
        }
    }

    fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until every node in `nodes` logged `node started` under its own name.
    fn wait_started(
        &self,
        nodes: &[String],
        since: chrono::DateTime<chrono::Utc>,
        within: Duration,
    ) -> Vec<Line> {
        wait_for("every node's new `node started`", within, || {
            let lines = self.lines();
            let named: BTreeSet<String> = lines
                .iter()
                .filter(|l| started(l) && l.time >= since)
                .map(|l| l.unit.clone())
                .collect();
            nodes.iter().all(|n| named.contains(n)).then_some(lines)
        })
    }

    /// Stops following (as Ctrl-C or a closed pipe would): the library call
    /// returns, cleanly, within a bounded time.
    fn stop(self, c: &Cluster) {
        self.collector.abort();
        let follower = self.follower;
        let r =
            c.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), follower).await })
                .expect("following stops within 10s of its reader going away");
        r.unwrap().unwrap();
    }
}

/// Across a rollout that replaced every node: lines of each node's new
/// container, under the node's name, with the node's own name inside.
fn assert_followed_across(
    f: &Following,
    nodes: &[String],
    since: chrono::DateTime<chrono::Utc>,
    within: Duration,
) {
    let lines = f.wait_started(nodes, since, within);
    for node in nodes {
        let start = lines
            .iter()
            .find(|l| l.unit == *node && started(l) && l.time >= since)
            .unwrap();
        assert_eq!(event(start).unwrap()["node"], node.as_str(), "{start:?}");
    }
    let units: BTreeSet<&str> = lines.iter().map(|l| l.unit.as_str()).collect();
    assert!(
        units.iter().all(|u| nodes.iter().any(|n| n == u)),
        "only the nodes' names, never `-new`/`-old` or a task's: {units:?}"
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[0].unit != w[1].unit || w[0].time <= w[1].time),
        "each unit's lines in order"
    );
}

#[test]
fn following_goes_on_under_the_nodes_name_across_a_rollout() {
    let _serial = serial();
    let c = Cluster::new("logsf");
    c.write(|t| t.replace("nodes = 3 ", "nodes = 2 "));
    c.apply().unwrap();
    let nodes: Vec<String> = (1..=2).map(|i| format!("{}-app-{i}", c.name)).collect();
    let before = c.container_ids();

    // Let the old containers' start-up lines reach the engine's log before following
    // (the engine copies a container's output asynchronously: on a busy machine a line
    // written just before can still arrive after `--tail 0`).
    std::thread::sleep(Duration::from_secs(3));
    let f = Following::start(&c, &["app"]);
    std::thread::sleep(Duration::from_secs(1));
    let rollout_began = chrono::Utc::now();

    // A rollout: each node's replacement starts as `<node>-new`, takes the
    // node's name, and the old one stops.
    c.write(|t| {
        t.replace("nodes = 3 ", "nodes = 2 ").replace(
            "RUST_LOG = \"info\"",
            "RUST_LOG = \"info\"\nLOGS_E2E = \"rolled\"",
        )
    });
    c.apply().unwrap();
    let after = c.container_ids();
    for node in &nodes {
        let id = |ids: &[(String, String)]| ids.iter().find(|(n, _)| n == node).unwrap().1.clone();
        assert_ne!(id(&before), id(&after), "{node} was replaced");
    }
    assert_followed_across(&f, &nodes, rollout_began, Duration::from_secs(30));
    // The old containers' last words, under the same names.
    wait_for(
        "each old container's `node stopped`",
        Duration::from_secs(30),
        || {
            let lines = f.lines();
            nodes
                .iter()
                .all(|n| {
                    lines.iter().any(|l| {
                        l.unit == *n && event(l).is_some_and(|v| v["message"] == "node stopped")
                    })
                })
                .then_some(())
        },
    );
    f.stop(&c);
}

#[test]
fn logs_on_a_swarm_name_tasks_on_several_hosts_by_slot_and_follow_a_rolling_update() {
    let _serial = serial();
    let c = Cluster::on_swarm("logs", 4006);
    c.apply().unwrap();
    let nodes: Vec<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();
    let hosts: BTreeSet<String> = c.app_tasks().into_iter().map(|(_, h)| h).collect();
    assert!(hosts.len() >= 2, "tasks on one host only: {hosts:?}");

    // `logs app`: every task's lines, read on its host through the manager,
    // named by its slot, in time order.
    let lines = wait_for(
        "every task's `node started`",
        Duration::from_secs(30),
        || {
            let lines = logs(&c, &request(&c, &["app"], None, None));
            let named: BTreeSet<&str> = lines
                .iter()
                .filter(|l| started(l))
                .map(|l| l.unit.as_str())
                .collect();
            nodes
                .iter()
                .all(|n| named.contains(n.as_str()))
                .then_some(lines.clone())
        },
    );
    assert!(lines.windows(2).all(|w| w[0].time <= w[1].time));
    let units: BTreeSet<&str> = lines.iter().map(|l| l.unit.as_str()).collect();
    assert_eq!(
        units,
        nodes.iter().map(String::as_str).collect(),
        "named by slot"
    );
    for l in lines.iter().filter(|l| started(l)) {
        assert_eq!(event(l).unwrap()["node"], l.unit.as_str());
    }
    // The whole cluster: PostgreSQL and the balancer too.
    let everything = logs(&c, &request(&c, &[], None, Some(5)));
    let units: BTreeSet<&str> = everything.iter().map(|l| l.unit.as_str()).collect();
    for u in [format!("{}-postgres", c.name), nodes[0].clone()] {
        assert!(units.contains(u.as_str()), "{u} in {units:?}");
    }

    // -f across Swarm's rolling update: the new tasks keep their slots.
    let f = Following::start(&c, &["app"]);
    std::thread::sleep(Duration::from_secs(2));
    let rollout_began = chrono::Utc::now();
    c.write(|t| {
        t.replace(
            "RUST_LOG = \"info\"",
            "RUST_LOG = \"info\"\nLOGS_E2E = \"rolled\"",
        )
    });
    c.apply().unwrap();
    assert_followed_across(&f, &nodes, rollout_began, Duration::from_secs(60));
    f.stop(&c);
}
