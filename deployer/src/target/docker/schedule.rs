//! The Docker target's schedule: a [`Plan`] becomes ordered [`Step`]s. Pure;
//! every rollout decision is made here, where the table tests below see it:
//! dependency order, health gates, surge batches, the `-old` rename, stop-first
//! nodes that publish host ports, drains, and what is undone when a new node
//! fails its health gate.

use std::time::Duration;

use crate::config::ClusterSpec;
use crate::model::{Model, RESOLVE_EVERY};
use crate::names::{Role, Slot};
use crate::plan::{Change, Plan};
use crate::steps::Step;

/// The rollout settings the schedule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Nodes replaced at a time.
    pub max_surge: u32,
    pub drain: Duration,
    /// SIGTERM → SIGKILL for nodes.
    pub node_grace: Duration,
    /// SIGTERM → SIGKILL for the other services.
    pub service_grace: Duration,
    /// Nodes publish a host port, so a replacement cannot run beside the node:
    /// it leaves the upstream, drains and stops first.
    pub stop_first: bool,
}

impl Policy {
    pub fn of(spec: &ClusterSpec) -> Policy {
        Policy {
            max_surge: spec.rollout().max_surge().max(1),
            drain: spec.rollout().drain(),
            node_grace: spec.rollout().stop_grace(),
            service_grace: Duration::from_secs(10),
            stop_first: spec.app().host_port_base().is_some(),
        }
    }
}

/// Builds the step list while tracking what the balancer sends to.
struct Schedule<'a> {
    model: &'a Model,
    policy: Policy,
    steps: Vec<Step>,
    /// The balancer runs now and can be reloaded.
    lb_live: bool,
    /// The upstream of the last reload emitted.
    last_upstream: Option<Vec<String>>,
}

impl Schedule<'_> {
    fn push(&mut self, s: Step) {
        self.steps.push(s);
    }

    fn reload(&mut self, upstream: Vec<String>, why: impl Into<String>) {
        if !self.lb_live {
            return;
        }
        self.last_upstream = Some(upstream.clone());
        self.steps.push(Step::Reload {
            upstream,
            why: why.into(),
        });
    }

    /// The name a node passes its health gate under before it takes `name`.
    fn new_name(&self, name: &str) -> String {
        match self.model.names.parse(name) {
            Some(Slot::Node(i)) => self.model.names.of_slot(Slot::NewNode(i)),
            _ => format!("{name}-new"),
        }
    }

    /// A node that left the balancer's DNS: its next answer (within
    /// [`RESOLVE_EVERY`]), then the requests already sent to the node.
    fn drain_by_dns(&mut self) {
        let duration = self.policy.drain.max(2 * RESOLVE_EVERY);
        if self.lb_live {
            self.push(Step::Drain { duration });
        }
    }

    fn drain(&mut self) {
        if self.lb_live && !self.policy.drain.is_zero() {
            self.push(Step::Drain {
                duration: self.policy.drain,
            });
        }
    }

    fn stop_remove(&mut self, names: Vec<String>, grace: Duration) {
        if names.is_empty() {
            return;
        }
        self.push(Step::Stop {
            names: names.clone(),
            grace,
        });
        self.push(Step::Remove { names });
    }

    /// Create (or start) units concurrently, then wait for all of them.
    fn bring_up(&mut self, create: Vec<String>, start: Vec<String>) {
        let mut wait = create.clone();
        wait.extend(start.iter().cloned());
        if !create.is_empty() {
            self.push(Step::Create { names: create });
        }
        if !start.is_empty() {
            self.push(Step::Start { names: start });
        }
        if !wait.is_empty() {
            self.push(Step::WaitHealthy { names: wait });
        }
    }

    /// The service units of `which` roles: replaced ones stop first, then the new,
    /// replaced and stopped ones come up together, health-gated. Returns their names.
    fn services(&mut self, plan: &Plan, which: impl Fn(&Role) -> bool) -> Vec<String> {
        let replaced = names_where(plan, |c| match c {
            Change::Replace { name, role, .. } if which(role) => Some(name),
            _ => None,
        });
        self.stop_remove(replaced.clone(), self.policy.service_grace);
        let mut created = names_where(plan, |c| match c {
            Change::Create { name, role } if which(role) => Some(name),
            _ => None,
        });
        created.extend(replaced);
        let started = names_where(plan, |c| match c {
            Change::Start { name, role, .. } if which(role) => Some(name),
            _ => None,
        });
        let up: Vec<String> = created.iter().chain(&started).cloned().collect();
        self.bring_up(created, started);
        up
    }
}

fn names_where(plan: &Plan, f: impl Fn(&Change) -> Option<&String>) -> Vec<String> {
    plan.changes.iter().filter_map(f).cloned().collect()
}

/// The steps that carry out `plan` on one Docker engine.
pub fn schedule(plan: &Plan, model: &Model, policy: Policy) -> Vec<Step> {
    let is = |role: Role| move |r: &Role| *r == role;
    let service = |r: &Role| matches!(r, Role::Postgres | Role::Redis);
    let balancer = model.unit(Slot::Balancer).map(|u| u.name.clone());
    let lb_touched = plan.changes.iter().any(|c| match c {
        Change::Create { role, .. } | Change::Start { role, .. } | Change::Remove { role, .. } => {
            *role == Role::Balancer
        }
        _ => false,
    });
    let mut s = Schedule {
        model,
        policy,
        steps: Vec::new(),
        lb_live: balancer.is_some() && !lb_touched,
        last_upstream: None,
    };

    // 0. Destroy: the balancer goes first, so no request reaches a stopping node.
    let lb_removed = names_where(plan, |c| match c {
        Change::Remove { name, role, .. } if is(Role::Balancer)(role) => Some(name),
        _ => None,
    });
    s.stop_remove(lb_removed, policy.service_grace);

    // 1. Network and volume.
    for c in &plan.changes {
        match c {
            Change::CreateNetwork { name } => s.push(Step::CreateNetwork { name: name.clone() }),
            Change::CreateVolume { name } => s.push(Step::CreateVolume { name: name.clone() }),
            _ => {}
        }
    }

    // 2. PostgreSQL and Redis, concurrently, health-gated.
    let up = s.services(plan, service);
    let postgres = model.names.postgres();
    let mut postgres_waited = up.contains(&postgres);

    // 2b. The pooler, once PostgreSQL is up, health-gated before any node uses it.
    // A replaced pooler is stop-first: nodes' pooled queries fail until it is back.
    let pooler = |r: &Role| *r == Role::Pooler;
    let pooler_changes = plan.changes.iter().any(|c| match c {
        Change::Create { role, .. } | Change::Start { role, .. } | Change::Replace { role, .. } => {
            pooler(role)
        }
        _ => false,
    });
    if pooler_changes && !postgres_waited {
        s.push(Step::WaitHealthy {
            names: vec![postgres.clone()],
        });
        postgres_waited = true;
    }
    s.services(plan, pooler);

    // 3. Before nodes change: the database answers, the budget fits the live server.
    if plan.touches_nodes() {
        if !postgres_waited {
            s.push(Step::WaitHealthy {
                names: vec![postgres],
            });
        }
        s.push(Step::CheckBudget);
    }

    // 4. A migration left over by an interrupted run goes first, then migrations once.
    let leftover = names_where(plan, |c| match c {
        Change::Remove { name, role, .. } if is(Role::Migrate)(role) => Some(name),
        _ => None,
    });
    if !leftover.is_empty() {
        s.push(Step::Remove { names: leftover });
    }
    if plan.changes.contains(&Change::Migrate) {
        s.push(Step::Migrate);
    }

    // 5. New and stopped nodes, concurrently, each health-gated before the
    // balancer sends it traffic.
    let node_creates = names_where(plan, |c| match c {
        Change::Create { name, role } if is(Role::App)(role) => Some(name),
        _ => None,
    });
    let node_starts = names_where(plan, |c| match c {
        Change::Start { name, role, .. } if is(Role::App)(role) => Some(name),
        _ => None,
    });
    // A node started again keeps its name: the balancer's DNS finds it, no reload.
    let new_nodes = !node_creates.is_empty();
    if s.lb_live && new_nodes {
        // The balancer finds nodes by name: a new node passes its health gate under
        // `<node>-new`, where no one resolves it, and takes its own name once ready.
        let news: Vec<String> = node_creates.iter().map(|n| s.new_name(n)).collect();
        s.bring_up(news.clone(), Vec::new());
        for (new, name) in news.iter().zip(&node_creates) {
            s.push(Step::Rename {
                from: new.clone(),
                to: name.clone(),
            });
        }
        s.bring_up(Vec::new(), node_starts);
    } else {
        s.bring_up(node_creates, node_starts);
    }

    // Nodes on their way out: surplus nodes serve until they leave the upstream;
    // `-old` and `-new` leftovers of an interrupted rollout are already out of it.
    let surplus: Vec<(String, Option<Slot>)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Remove {
                name,
                role: Role::App,
                slot,
                ..
            } => Some((name.clone(), *slot)),
            _ => None,
        })
        .collect();
    let serving_surplus: Vec<String> = surplus
        .iter()
        .filter(|(_, slot)| matches!(slot, Some(Slot::Node(_))))
        .map(|(n, _)| n.clone())
        .collect();
    let canonical = model.upstream();
    let mut upstream = canonical.clone();
    upstream.extend(serving_surplus.iter().cloned());
    if new_nodes {
        // The config names what the balancer resolves: a node added is a name added.
        s.reload(upstream.clone(), "new nodes in the upstream");
    }

    // 6. Rolling replacement, max_surge nodes at a time.
    let rolls: Vec<(String, Slot)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Roll { name, node, .. } => Some((name.clone(), Slot::OldNode(*node))),
            _ => None,
        })
        .collect();
    for batch in rolls.chunks(policy.max_surge.max(1) as usize) {
        let names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
        if policy.stop_first {
            // A node publishing a host port cannot have its replacement beside it:
            // out of the upstream, drain, stop, then the new one takes its name and port.
            let remaining: Vec<String> = upstream
                .iter()
                .filter(|u| !names.contains(u))
                .cloned()
                .collect();
            if !remaining.is_empty() {
                s.reload(remaining, "nodes out for replacement");
                s.drain();
            }
            s.stop_remove(names.clone(), policy.node_grace);
            s.bring_up(names, Vec::new());
            s.reload(upstream.clone(), "replaced nodes back in the upstream");
            continue;
        }
        // The new container passes its health gate under `<node>-new`, where the
        // balancer does not look; then the old one steps aside under `-old` and the
        // new one takes the node's name: the balancer's next DNS answer (within
        // RESOLVE_EVERY, no reload) sends new requests to it. The old one keeps its
        // address while requests already sent to it finish, drains, stops.
        let news: Vec<String> = names.iter().map(|n| s.new_name(n)).collect();
        let olds: Vec<String> = batch
            .iter()
            .map(|(_, old)| s.model.names.of_slot(*old))
            .collect();
        s.push(Step::Guarded {
            steps: vec![
                Step::Create {
                    names: news.clone(),
                },
                Step::WaitHealthy {
                    names: news.clone(),
                },
            ],
            undo: vec![Step::Remove {
                names: news.clone(),
            }],
            why: format!(
                "the new {} must pass its health gate; the old one keeps serving",
                names.join(", ")
            ),
        });
        for ((name, old), new) in names.iter().zip(&olds).zip(&news) {
            s.push(Step::Rename {
                from: name.clone(),
                to: old.clone(),
            });
            s.push(Step::Rename {
                from: new.clone(),
                to: name.clone(),
            });
        }
        s.drain_by_dns();
        s.stop_remove(olds, policy.node_grace);
    }

    // 7. Scale down (and leftovers): out of the upstream, drain, stop.
    if !surplus.is_empty() {
        upstream.retain(|u| !serving_surplus.contains(u));
        if !serving_surplus.is_empty() {
            s.reload(
                upstream.clone(),
                format!("upstream - {}", serving_surplus.join(", ")),
            );
            s.drain();
        }
        let all: Vec<String> = surplus.iter().map(|(n, _)| n.clone()).collect();
        s.stop_remove(all, policy.node_grace);
    }

    // 8. Other services the spec no longer calls for (the pooler or Redis turned
    // off, once no node uses it any more; destroy).
    for role in [Role::Pooler, Role::Redis, Role::Postgres] {
        let gone = names_where(plan, |c| match c {
            Change::Remove { name, role: r, .. } if *r == role => Some(name),
            _ => None,
        });
        s.stop_remove(gone, policy.service_grace);
    }

    // 9. The balancer: created or replaced with the final config, or started.
    for c in &plan.changes {
        match c {
            Change::Create {
                name,
                role: Role::Balancer,
            } => s.bring_up(vec![name.clone()], Vec::new()),
            Change::Replace {
                name,
                role: Role::Balancer,
                ..
            } => {
                s.stop_remove(vec![name.clone()], policy.service_grace);
                s.bring_up(vec![name.clone()], Vec::new());
            }
            Change::Start {
                name,
                role: Role::Balancer,
                ..
            } => {
                s.bring_up(Vec::new(), vec![name.clone()]);
                s.lb_live = true;
            }
            _ => {}
        }
    }
    // ...and when it kept running, its config ends as the model's.
    let replaced_lb = plan.changes.iter().any(|c| {
        matches!(
            c,
            Change::Replace {
                role: Role::Balancer,
                ..
            }
        )
    });
    if s.lb_live && !replaced_lb {
        let drift = plan.changes.iter().find_map(|c| match c {
            Change::Reload { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        let differs = s.last_upstream.as_ref().is_some_and(|u| *u != canonical);
        let never_reloaded = s.last_upstream.is_none() && drift.is_some();
        if differs || never_reloaded {
            s.reload(canonical, drift.unwrap_or_else(|| "config changed".into()));
        }
    }

    // 10. Destroy: the network and the volume last.
    for c in &plan.changes {
        match c {
            Change::RemoveNetwork { name } => s.push(Step::RemoveNetwork { name: name.clone() }),
            Change::RemoveVolume { name } => s.push(Step::RemoveVolume { name: name.clone() }),
            _ => {}
        }
    }
    s.steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{converged, spec, want};
    use crate::observed::Observed;
    use crate::plan::{plan, Goal};
    use crate::steps::lines;

    /// The steps from `before` (converged) to `after`, after `edit` of what is observed.
    fn steps(before: &str, after: &str, edit: fn(&mut Observed), goal: Goal) -> Vec<String> {
        let mut observed = converged(&want(before));
        edit(&mut observed);
        let model = want(after);
        let p = plan(&model, &observed, goal).unwrap();
        lines(&schedule(&p, &model, Policy::of(&spec(after))))
    }

    fn converge(before: &str, after: &str) -> Vec<String> {
        steps(before, after, |_| {}, Goal::Converge)
    }

    /// The lines of one rolling batch: the health gate under `-new`, the renames
    /// that move the node's name (and so the balancer's traffic), the drain.
    fn batch(nodes: &[u32]) -> Vec<String> {
        let names: Vec<String> = nodes.iter().map(|i| format!("t-app-{i}")).collect();
        let news: Vec<String> = names.iter().map(|n| format!("{n}-new")).collect();
        let olds: Vec<String> = names.iter().map(|n| format!("{n}-old")).collect();
        let (n, w, o) = (names.join(", "), news.join(", "), olds.join(", "));
        let mut out: Vec<String> = vec![
            format!("guarded (the new {n} must pass its health gate; the old one keeps serving):"),
            format!("  create {w}"),
            format!("  wait healthy {w}"),
            "on failure:".into(),
            format!("  remove {w}"),
        ];
        for ((n, o), w) in names.iter().zip(&olds).zip(&news) {
            out.push(format!("rename {n} → {o}"));
            out.push(format!("rename {w} → {n}"));
        }
        out.extend([
            "drain 2s".into(),
            format!("stop {o} (grace 20s)"),
            format!("remove {o}"),
        ]);
        out
    }

    const THREE: &str = "t-app-1, t-app-2, t-app-3";

    #[test]
    fn from_nothing_in_dependency_order_each_health_gated() {
        let got = steps("", "", |o| *o = Observed::default(), Goal::Converge);
        assert_eq!(
            got,
            [
                "create network t-net",
                "create volume t-pgdata",
                "create t-postgres",
                "wait healthy t-postgres",
                "check the budget against the running database",
                "migrate",
                &format!("create {THREE}"),
                &format!("wait healthy {THREE}"),
                "create t-lb",
                "wait healthy t-lb",
            ]
        );
    }

    const POOLED: &str = "[database]\npooler = \"pgbouncer\"\n";

    /// `t-pooler-<generation>` of [`POOLED`].
    fn pooler() -> String {
        crate::model::pooler_name(&spec(POOLED)).unwrap()
    }

    #[test]
    fn the_pooler_comes_after_postgres_and_before_the_nodes() {
        let got = steps("", POOLED, |o| *o = Observed::default(), Goal::Converge);
        let p = pooler();
        assert_eq!(
            got,
            [
                "create network t-net",
                "create volume t-pgdata",
                "create t-postgres",
                "wait healthy t-postgres",
                &format!("create {p}"),
                &format!("wait healthy {p}"),
                "check the budget against the running database",
                "migrate",
                &format!("create {THREE}"),
                &format!("wait healthy {THREE}"),
                "create t-lb",
                "wait healthy t-lb",
            ]
        );
    }

    /// `before`, one rolling batch per node of three, then `after`.
    fn around_a_rollout(before: &[String], after: &[String]) -> Vec<String> {
        let mut want = before.to_vec();
        for i in 1..=3 {
            want.extend(batch(&[i]));
        }
        want.extend(after.iter().cloned());
        want
    }

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn turning_the_pooler_on_starts_it_then_rolls_the_nodes() {
        let p = pooler();
        let want = around_a_rollout(
            &[
                "wait healthy t-postgres".into(),
                format!("create {p}"),
                format!("wait healthy {p}"),
                "check the budget against the running database".into(),
                "migrate".into(),
            ],
            &[],
        );
        assert_eq!(converge("", POOLED), want);
    }

    #[test]
    fn turning_the_pooler_off_rolls_the_nodes_then_removes_it() {
        let p = pooler();
        let want = around_a_rollout(
            &owned(&[
                "wait healthy t-postgres",
                "check the budget against the running database",
                "migrate",
            ]),
            &[format!("stop {p} (grace 10s)"), format!("remove {p}")],
        );
        assert_eq!(converge(POOLED, ""), want);
    }

    #[test]
    fn a_changed_pooler_starts_beside_the_old_one_and_the_nodes_roll_over() {
        let (old, new) = (
            pooler(),
            crate::model::pooler_name(&spec(&format!("{POOLED}pooler_pool_size = 30\n"))).unwrap(),
        );
        assert_ne!(old, new);
        let want = around_a_rollout(
            &[
                "wait healthy t-postgres".into(),
                format!("create {new}"),
                format!("wait healthy {new}"),
                "check the budget against the running database".into(),
                "migrate".into(),
            ],
            &[format!("stop {old} (grace 10s)"), format!("remove {old}")],
        );
        assert_eq!(
            converge(POOLED, &format!("{POOLED}pooler_pool_size = 30\n")),
            want
        );
    }

    #[test]
    fn scale_up_gates_new_nodes_under_another_name_before_one_reload() {
        assert_eq!(
            converge("", "[app]\nnodes = 5\n"),
            [
                "wait healthy t-postgres",
                "check the budget against the running database",
                "migrate",
                "create t-app-4-new, t-app-5-new",
                "wait healthy t-app-4-new, t-app-5-new",
                "rename t-app-4-new → t-app-4",
                "rename t-app-5-new → t-app-5",
                "reload nginx → [t-app-1, t-app-2, t-app-3, t-app-4, t-app-5] (new nodes in the upstream)",
            ]
        );
    }

    #[test]
    fn a_rollout_never_reloads_the_balancer() {
        let got = converge("", "[app.env]\nFEATURE = \"on\"\n");
        assert!(!got.iter().any(|l| l.starts_with("reload")), "{got:#?}");
        // The drain covers the balancer's next DNS answer even when drain_seconds is shorter.
        let got = converge(
            "[rollout]\ndrain_seconds = 0\n",
            "[rollout]\ndrain_seconds = 0\n[app.env]\nFEATURE = \"on\"\n",
        );
        assert_eq!(
            got.iter().filter(|l| *l == "drain 2s").count(),
            3,
            "{got:#?}"
        );
    }

    #[test]
    fn scale_down_leaves_the_upstream_then_drains_then_stops() {
        assert_eq!(
            converge("[app]\nnodes = 5\n", ""),
            [
                &format!("reload nginx → [{THREE}] (upstream - t-app-4, t-app-5)"),
                "drain 2s",
                "stop t-app-4, t-app-5 (grace 20s)",
                "remove t-app-4, t-app-5",
            ]
        );
    }

    #[test]
    fn a_rollout_replaces_max_surge_nodes_at_a_time() {
        let head = [
            "wait healthy t-postgres",
            "check the budget against the running database",
            "migrate",
        ];
        for (surge, batches) in [
            (1, vec![vec![1], vec![2], vec![3]]),
            (2, vec![vec![1, 2], vec![3]]),
            (3, vec![vec![1, 2, 3]]),
        ] {
            let after = format!("[app.env]\nFEATURE = \"on\"\n[rollout]\nmax_surge = {surge}\n");
            let mut want: Vec<String> = head.iter().map(|s| s.to_string()).collect();
            for b in &batches {
                want.extend(batch(b));
            }
            assert_eq!(
                converge(&format!("[rollout]\nmax_surge = {surge}\n"), &after),
                want,
                "max_surge = {surge}"
            );
        }
    }

    #[test]
    fn nodes_publishing_host_ports_are_replaced_stop_first() {
        let before = "[app]\nhost_port_base = 5001\n";
        let after = "[app]\nhost_port_base = 5001\n[app.env]\nFEATURE = \"on\"\n";
        let got = converge(before, after);
        let mut want: Vec<String> = [
            "wait healthy t-postgres",
            "check the budget against the running database",
            "migrate",
        ]
        .map(String::from)
        .to_vec();
        for (i, rest) in [
            (1, "t-app-2, t-app-3"),
            (2, "t-app-1, t-app-3"),
            (3, "t-app-1, t-app-2"),
        ] {
            want.extend([
                format!("reload nginx → [{rest}] (nodes out for replacement)"),
                "drain 2s".into(),
                format!("stop t-app-{i} (grace 20s)"),
                format!("remove t-app-{i}"),
                format!("create t-app-{i}"),
                format!("wait healthy t-app-{i}"),
                format!("reload nginx → [{THREE}] (replaced nodes back in the upstream)"),
            ]);
        }
        assert_eq!(got, want);
        assert!(
            !got.iter().any(|l| l.starts_with("rename")),
            "no -old rename: the port is taken"
        );
    }

    #[test]
    fn leftovers_of_an_interrupted_rollout_are_removed_without_a_reload() {
        // Neither an `-old` nor a `-new` container is a name the balancer resolves.
        let got = steps(
            "",
            "",
            |o| crate::fixtures::leave_old_node(o, 1),
            Goal::Converge,
        );
        assert_eq!(got, ["stop t-app-1-old (grace 20s)", "remove t-app-1-old"]);
        let got = steps(
            "",
            "",
            |o| {
                let mut new = o
                    .units
                    .iter()
                    .find(|u| u.name == "t-app-2")
                    .unwrap()
                    .clone();
                new.name = "t-app-2-new".into();
                new.slot = Some(Slot::NewNode(crate::names::NodeIndex::new(2).unwrap()));
                o.units.push(new);
            },
            Goal::Converge,
        );
        assert_eq!(got, ["stop t-app-2-new (grace 20s)", "remove t-app-2-new"]);
    }

    #[test]
    fn a_balancer_config_edited_by_hand_is_reloaded_once() {
        let got = steps(
            "",
            "",
            |o| o.nginx_conf = Some("edited".into()),
            Goal::Converge,
        );
        assert_eq!(
            got,
            [format!("reload nginx → [{THREE}] (config +1 -1 lines)")]
        );
    }

    #[test]
    fn destroy_takes_the_balancer_first_and_the_data_last() {
        let got = steps(
            "[redis]\nenabled = true\n",
            "[redis]\nenabled = true\n",
            |_| {},
            Goal::Destroy { volumes: true },
        );
        assert_eq!(
            got,
            [
                "stop t-lb (grace 10s)",
                "remove t-lb",
                &format!("stop {THREE} (grace 20s)"),
                &format!("remove {THREE}"),
                "stop t-redis (grace 10s)",
                "remove t-redis",
                "stop t-postgres (grace 10s)",
                "remove t-postgres",
                "remove network t-net",
                "remove volume t-pgdata",
            ]
        );
    }

    #[test]
    fn a_converged_cluster_has_no_steps() {
        assert!(converge("", "").is_empty());
    }
}
