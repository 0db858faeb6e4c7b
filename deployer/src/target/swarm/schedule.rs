//! A plan as Swarm steps. Pure, so every decision is visible in `plan --steps`
//! and in the table tests below. Swarm rolls a service's tasks itself: every
//! change to the app nodes — created, rolled, scaled up or down — becomes one
//! [`Step::Deploy`] of the app service with the model's replica count, after
//! the budget check and the migrations. PostgreSQL and Redis come first, the
//! balancer last; the network is the first thing made and the last removed.

use crate::model::Model;
use crate::names::{Role, Slot};
use crate::plan::{Change, Plan};
use crate::steps::Step;

/// Why a unit's service is deployed: the plan's own words.
fn why(c: &Change) -> Option<(Role, String, String)> {
    Some(match c {
        Change::Create { name, role } => (*role, name.clone(), "new".into()),
        Change::Start { name, role, reason } | Change::Replace { name, role, reason } => {
            (*role, name.clone(), reason.clone())
        }
        Change::Roll { name, reason, .. } => (Role::App, name.clone(), reason.clone()),
        Change::Reload { name, reason } => (Role::Balancer, name.clone(), reason.clone()),
        _ => return None,
    })
}

pub fn schedule(plan: &Plan, model: &Model) -> Vec<Step> {
    let mut steps = Vec::new();
    for c in &plan.changes {
        if let Change::CreateNetwork { name } = c {
            steps.push(Step::CreateNetwork { name: name.clone() });
        }
    }
    // A service unit (not a node) deployed when the plan changes it.
    let deploy = |unit: &str, steps: &mut Vec<Step>| {
        for c in &plan.changes {
            if let Some((_, name, why)) = why(c) {
                if name == unit {
                    steps.push(Step::Deploy {
                        service: name,
                        replicas: 1,
                        why,
                    });
                }
            }
        }
    };
    // The services the nodes depend on, in the model's dependency order.
    for u in &model.units {
        if !matches!(u.role(), Role::App | Role::Balancer) {
            deploy(&u.name, &mut steps);
        }
    }

    // A one-off migration left by an interrupted run goes before a new one.
    let leftovers: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Remove {
                name,
                role: Role::Migrate,
                ..
            } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !leftovers.is_empty() {
        steps.push(Step::Remove { names: leftovers });
    }

    // The app nodes: one service, rolled or scaled by the engine.
    let app = model.names.app_service();
    let nodes = model.nodes().count() as u32;
    let node_changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| match c {
            Change::Remove { slot, .. } => matches!(slot, Some(Slot::Node(_))),
            c => why(c).is_some_and(|(r, _, _)| r == Role::App),
        })
        .collect();
    if nodes > 0 && !node_changes.is_empty() {
        if plan.touches_nodes() {
            steps.push(Step::CheckBudget);
        }
        if plan.changes.contains(&Change::Migrate) {
            steps.push(Step::Migrate);
        }
        steps.push(Step::Deploy {
            service: app.clone(),
            replicas: nodes,
            why: app_why(&node_changes, nodes),
        });
    }

    for u in model.units.iter().filter(|u| u.role() == Role::Balancer) {
        deploy(&u.name, &mut steps);
    }

    // Services the model no longer has (Redis turned off, destroy, a labelled
    // service under a name the deployer never gives); app nodes scaled away are
    // the app service's business unless none are left.
    let mut gone: Vec<String> = Vec::new();
    for c in &plan.changes {
        if let Change::Remove {
            name, role, slot, ..
        } = c
        {
            let service = match (role, slot) {
                (Role::Migrate, _) => continue,
                (Role::App, Some(Slot::Node(_))) if nodes > 0 => continue,
                (Role::App, Some(Slot::Node(_))) => app.clone(),
                _ => name.clone(),
            };
            if !gone.contains(&service) {
                gone.push(service);
            }
        }
    }
    // In reverse dependency order (the balancer first, PostgreSQL last):
    // nothing is left sending to a gone service.
    gone.sort_by_key(|s| {
        let role = model
            .names
            .parse(s)
            .map(|slot| slot.role())
            .or((*s == app).then_some(Role::App));
        std::cmp::Reverse(role)
    });
    if !gone.is_empty() {
        steps.push(Step::Remove { names: gone });
    }
    for c in &plan.changes {
        match c {
            Change::RemoveNetwork { name } => {
                steps.push(Step::RemoveNetwork { name: name.clone() })
            }
            Change::RemoveVolume { name } => steps.push(Step::RemoveVolume { name: name.clone() }),
            _ => {}
        }
    }
    steps
}

/// "scale 3 → 5", "image: … → …", or both.
fn app_why(changes: &[&Change], nodes: u32) -> String {
    let created = changes
        .iter()
        .filter(|c| matches!(c, Change::Create { .. }))
        .count() as u32;
    let removed = changes
        .iter()
        .filter(|c| matches!(c, Change::Remove { .. }))
        .count() as u32;
    let mut parts = Vec::new();
    let before = nodes + removed - created;
    if before != nodes {
        parts.push(if before == 0 {
            "new".to_string()
        } else {
            format!("scale {before} → {nodes}")
        });
    }
    let mut reasons: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Roll { reason, .. }
            | Change::Replace { reason, .. }
            | Change::Start { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    reasons.dedup();
    parts.extend(reasons);
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{converged, want};
    use crate::observed::Observed;
    use crate::plan::{plan, Goal};
    use crate::steps::lines;
    use std::time::Duration;

    const SWARM: &str = "target = \"swarm\"\n[swarm]\nregistry = \"reg:5000\"\ndatabase_host = \"h1\"\nbalancer_host = \"h2\"\n";

    /// On a swarm the balancer's config names `tasks.<app>`, whatever the node count.
    fn m(extra: &str) -> Model {
        let mut m = want(&format!("{SWARM}{extra}"));
        m.nginx_conf = "upstream: tasks.t-app resolve".into();
        m
    }

    fn steps(desired: &Model, observed: &Observed, goal: Goal) -> Vec<String> {
        lines(&schedule(&plan(desired, observed, goal).unwrap(), desired))
    }

    #[test]
    fn from_nothing_services_come_up_in_dependency_order() {
        let d = m("[redis]\nenabled = true\n");
        assert_eq!(
            steps(&d, &Observed::default(), Goal::Converge),
            [
                "create network t-net",
                "deploy service t-postgres × 1 (new), wait until it converged",
                "deploy service t-redis × 1 (new), wait until it converged",
                "check the budget against the running database",
                "migrate",
                "deploy service t-app × 3 (new), wait until it converged",
                "deploy service t-lb × 1 (new), wait until it converged",
            ]
        );
    }

    #[test]
    fn a_task_serves_on_for_the_drain_after_its_stop_signal() {
        let node = |m: &Model| m.nodes().next().unwrap().clone();
        let env = |m: &Model| node(m).env;
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        // The engine takes the task out of DNS; the balancer asks again within a second.
        let swarm = m("[rollout]\ndrain_seconds = 3\nstop_grace_seconds = 10\n");
        assert_eq!(
            get(&env(&swarm), "SHUTDOWN_DELAY_SECS").as_deref(),
            Some("3")
        );
        assert_eq!(
            get(&env(&swarm), "SHUTDOWN_TIMEOUT_SECS").as_deref(),
            Some("8")
        );
        assert_eq!(node(&swarm).stop_grace, Duration::from_secs(13));
        // On one engine the deployer drains before it stops: no delay, the grace as written.
        let docker = want("[rollout]\ndrain_seconds = 3\nstop_grace_seconds = 10\n");
        assert_eq!(get(&env(&docker), "SHUTDOWN_DELAY_SECS"), None);
        assert_eq!(node(&docker).stop_grace, Duration::from_secs(10));
    }

    #[test]
    fn a_converged_cluster_has_no_steps() {
        let d = m("");
        assert!(steps(&d, &converged(&d), Goal::Converge).is_empty());
    }

    #[test]
    fn scaling_is_one_deploy_of_the_app_service() {
        let before = m("");
        let up = m("[app]\nnodes = 5\n");
        assert_eq!(
            steps(&up, &converged(&before), Goal::Converge),
            [
                "check the budget against the running database",
                "migrate",
                "deploy service t-app × 5 (scale 3 → 5), wait until it converged",
            ]
        );
        let down = m("[app]\nnodes = 2\n");
        assert_eq!(
            steps(&down, &converged(&before), Goal::Converge),
            ["deploy service t-app × 2 (scale 3 → 2), wait until it converged"]
        );
    }

    #[test]
    fn an_env_change_is_one_rolling_update_after_the_migrations() {
        let before = m("");
        let after = m("[app.env]\nRUST_LOG = \"debug\"\n");
        assert_eq!(
            steps(&after, &converged(&before), Goal::Converge),
            [
                "check the budget against the running database",
                "migrate",
                "deploy service t-app × 3 (env.RUST_LOG: unset → debug), wait until it converged",
            ]
        );
    }

    #[test]
    fn redis_turned_off_is_removed_after_the_nodes_moved_on() {
        let before = m("[redis]\nenabled = true\n");
        let after = m("");
        let s = steps(&after, &converged(&before), Goal::Converge);
        assert_eq!(s.last().unwrap(), "remove t-redis");
        assert!(s.iter().any(|l| l.starts_with("deploy service t-app × 3")));
    }

    #[test]
    fn destroy_removes_the_balancer_first_and_the_network_last() {
        let d = m("[redis]\nenabled = true\n");
        let nothing = Model::empty(d.names.clone());
        let goal = Goal::Destroy { volumes: true };
        assert_eq!(
            lines(&schedule(
                &plan(&nothing, &converged(&d), goal).unwrap(),
                &nothing
            )),
            [
                "remove t-lb, t-app, t-redis, t-postgres",
                "remove network t-net",
                "remove volume t-pgdata",
            ]
        );
    }
}
