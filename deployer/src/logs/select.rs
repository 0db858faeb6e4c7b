//! Which units `deployer logs TARGET…` reads: the targets a person types
//! (`app`, `app-2`, `demo-app-2`, `postgres`, `lb`, …) checked against the
//! cluster file once, into a [`Selection`] the targets filter by.

use std::collections::BTreeSet;

use crate::config::ClusterSpec;
use crate::model::pooler_name;
use crate::names::{Names, NodeIndex, Role};

/// The units whose logs are read. Built only by [`Selection::parse`] (or
/// [`Selection::everything`]), so every node in it exists in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Every app node (`app`), whatever its number.
    all_nodes: bool,
    /// Single nodes (`app-2`).
    nodes: BTreeSet<NodeIndex>,
    /// Whole services other than the nodes.
    services: BTreeSet<Role>,
}

/// A target the cluster does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("unknown log target `{target}` (cluster `{cluster}`)\nhint: valid targets: {valid}")]
    Unknown {
        target: String,
        cluster: String,
        valid: String,
    },
    #[error("cluster `{cluster}` has {nodes} node{} (app-1 … app-{nodes}), not `{target}`\nhint: valid targets: {valid}",
        if *nodes == 1 { "" } else { "s" })]
    NoSuchNode {
        target: String,
        cluster: String,
        nodes: u32,
        valid: String,
    },
    #[error("cluster `{cluster}` runs no {what} ({why} in cluster.toml), so `{target}` has no logs\nhint: valid targets: {valid}")]
    NotEnabled {
        target: String,
        cluster: String,
        what: &'static str,
        why: &'static str,
        valid: String,
    },
}

impl Selection {
    /// Every unit of the cluster: no target given.
    pub fn everything() -> Selection {
        Selection {
            all_nodes: true,
            nodes: BTreeSet::new(),
            services: [Role::Postgres, Role::Redis, Role::Pooler, Role::Balancer].into(),
        }
    }

    /// The units `targets` name; every unit when there are none.
    pub fn parse(spec: &ClusterSpec, targets: &[String]) -> Result<Selection, SelectError> {
        if targets.is_empty() {
            return Ok(Selection::everything());
        }
        let names = Names::of(spec);
        let mut s = Selection {
            all_nodes: false,
            nodes: BTreeSet::new(),
            services: BTreeSet::new(),
        };
        for target in targets {
            match parse_one(&names, target) {
                Some(Wanted::AllNodes) => s.all_nodes = true,
                Some(Wanted::Node(i)) => {
                    if i.get() > spec.app().nodes() {
                        return Err(SelectError::NoSuchNode {
                            target: target.clone(),
                            cluster: names.cluster().into(),
                            nodes: spec.app().nodes(),
                            valid: valid(spec),
                        });
                    }
                    s.nodes.insert(i);
                }
                Some(Wanted::Service(role)) => {
                    let missing = match role {
                        Role::Redis if spec.redis().is_none() => {
                            Some(("Redis", "[redis] enabled = false"))
                        }
                        Role::Pooler if spec.database().pooler().is_none() => {
                            Some(("pooler", "[database] pooler = \"none\""))
                        }
                        _ => None,
                    };
                    if let Some((what, why)) = missing {
                        return Err(SelectError::NotEnabled {
                            target: target.clone(),
                            cluster: names.cluster().into(),
                            what,
                            why,
                            valid: valid(spec),
                        });
                    }
                    s.services.insert(role);
                }
                None => {
                    return Err(SelectError::Unknown {
                        target: target.clone(),
                        cluster: names.cluster().into(),
                        valid: valid(spec),
                    })
                }
            }
        }
        Ok(s)
    }

    /// Whether a unit of `role` (node `node`, for the app) is selected.
    pub fn includes(&self, role: Role, node: Option<NodeIndex>) -> bool {
        match role {
            Role::App => self.all_nodes || node.is_some_and(|i| self.nodes.contains(&i)),
            Role::Migrate => false,
            r => self.services.contains(&r),
        }
    }

    /// Whether any unit of `role` is selected (on a swarm: whether to read its service).
    pub fn wants(&self, role: Role) -> bool {
        match role {
            Role::App => self.all_nodes || !self.nodes.is_empty(),
            Role::Migrate => false,
            r => self.services.contains(&r),
        }
    }

    /// The names its lines will carry, as the file describes the cluster, in
    /// the order `status` lists units: for the prefix's width and colours.
    pub fn units(&self, spec: &ClusterSpec) -> Vec<String> {
        let names = Names::of(spec);
        let mut units = Vec::new();
        if self.wants(Role::Postgres) {
            units.push(names.postgres());
        }
        if self.wants(Role::Redis) && spec.redis().is_some() {
            units.push(names.redis());
        }
        if self.wants(Role::Pooler) {
            units.extend(pooler_name(spec));
        }
        units.extend(
            NodeIndex::first(spec.app().nodes())
                .filter(|i| self.includes(Role::App, Some(*i)))
                .map(|i| names.node(i)),
        );
        if self.wants(Role::Balancer) {
            units.push(names.balancer());
        }
        units
    }
}

enum Wanted {
    AllNodes,
    Node(NodeIndex),
    Service(Role),
}

fn parse_one(names: &Names, target: &str) -> Option<Wanted> {
    let service = match target {
        "app" | "nodes" => return Some(Wanted::AllNodes),
        "postgres" | "database" | "db" => Some(Role::Postgres),
        "balancer" | "lb" | "nginx" => Some(Role::Balancer),
        "redis" => Some(Role::Redis),
        "pooler" | "pgbouncer" => Some(Role::Pooler),
        _ => None,
    };
    if let Some(role) = service {
        return Some(Wanted::Service(role));
    }
    // `demo-pooler`, without a generation, is the pooler.
    if target == format!("{}-pooler", names.cluster()) {
        return Some(Wanted::Service(Role::Pooler));
    }
    // `app-2`: the node's name without the cluster's.
    let short = format!("{}-{target}", names.cluster());
    let slot = names.parse(target).or_else(|| names.parse(&short))?;
    Some(match (slot.node(), slot.role()) {
        (Some(i), _) => Wanted::Node(i),
        (None, Role::Migrate) => return None,
        (None, role) => Wanted::Service(role),
    })
}

/// The targets this cluster has, for an error's hint.
fn valid(spec: &ClusterSpec) -> String {
    let names = Names::of(spec);
    let n = spec.app().nodes();
    let nodes = match n {
        1 => format!(
            "app-1 (or {})",
            names.node(NodeIndex::first(1).next().unwrap())
        ),
        n => format!("app-1 … app-{n} (or {}-app-1 …)", names.cluster()),
    };
    let mut v = vec!["app (every node)".to_string(), nodes, "postgres".into()];
    if spec.redis().is_some() {
        v.push("redis".into());
    }
    if spec.database().pooler().is_some() {
        v.push("pooler".into());
    }
    v.push("balancer (or lb)".into());
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::spec;

    fn sel(extra: &str, targets: &[&str]) -> Result<Selection, SelectError> {
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        Selection::parse(&spec(extra), &targets)
    }

    fn node(i: u32) -> Option<NodeIndex> {
        NodeIndex::new(i)
    }

    #[test]
    fn targets_select_the_units_they_name() {
        use Role::*;
        let with_all = "[redis]\nenabled = true\n[database]\npooler = \"pgbouncer\"\n";
        // (role, node, included?)
        type Probe = (Role, Option<u32>, bool);
        let table: &[(&[&str], &[Probe])] = &[
            (
                &[],
                &[
                    (App, Some(1), true),
                    (App, Some(3), true),
                    (Postgres, None, true),
                    (Balancer, None, true),
                    (Redis, None, true),
                    (Pooler, None, true),
                    (Migrate, None, false),
                ],
            ),
            (
                &["app"],
                &[
                    (App, Some(2), true),
                    (Postgres, None, false),
                    (Balancer, None, false),
                ],
            ),
            (
                &["app-2"],
                &[
                    (App, Some(2), true),
                    (App, Some(1), false),
                    (Postgres, None, false),
                ],
            ),
            (&["t-app-3"], &[(App, Some(3), true), (App, Some(2), false)]),
            (&["t-app-3-new"], &[(App, Some(3), true)]),
            (
                &["lb", "postgres"],
                &[
                    (Balancer, None, true),
                    (Postgres, None, true),
                    (App, Some(1), false),
                ],
            ),
            (&["balancer"], &[(Balancer, None, true)]),
            (&["t-lb"], &[(Balancer, None, true), (Redis, None, false)]),
            (&["t-postgres"], &[(Postgres, None, true)]),
            (&["redis"], &[(Redis, None, true), (Pooler, None, false)]),
            (&["pooler"], &[(Pooler, None, true)]),
            (&["t-pooler"], &[(Pooler, None, true)]),
            (&["app-1", "app"], &[(App, Some(3), true)]),
        ];
        for (targets, probes) in table {
            let s = sel(&format!("[app]\nnodes = 3\n{with_all}"), targets).unwrap();
            for (role, i, want) in *probes {
                assert_eq!(
                    s.includes(*role, i.and_then(node)),
                    *want,
                    "{targets:?}: {role} {i:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_or_absent_targets_are_errors_that_list_the_valid_ones() {
        let e = sel("", &["web"]).unwrap_err();
        assert!(matches!(e, SelectError::Unknown { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("unknown log target `web`"), "{msg}");
        assert!(
            msg.contains(
                "app (every node), app-1 … app-3 (or t-app-1 …), postgres, balancer (or lb)"
            ),
            "{msg}"
        );
        assert!(!msg.contains("redis"), "{msg}");

        let e = sel("", &["app-4"]).unwrap_err();
        assert!(
            matches!(e, SelectError::NoSuchNode { nodes: 3, .. }),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .contains("has 3 nodes (app-1 … app-3), not `app-4`"));

        let e = sel("", &["redis"]).unwrap_err();
        assert!(e.to_string().contains("[redis] enabled = false"), "{e}");
        let e = sel("", &["pooler"]).unwrap_err();
        assert!(e.to_string().contains("pooler = \"none\""), "{e}");

        for bad in ["app-0", "app-01", "migrate", "t-migrate", "other-app-1", ""] {
            assert!(sel("", &[bad]).is_err(), "{bad}");
        }
        let e = sel("[redis]\nenabled = true\n", &["x"]).unwrap_err();
        assert!(e.to_string().contains(", redis,"), "{e}");
    }

    #[test]
    fn units_are_the_names_lines_carry() {
        let s = spec("[app]\nnodes = 2\n");
        assert_eq!(
            Selection::everything().units(&s),
            ["t-postgres", "t-app-1", "t-app-2", "t-lb"]
        );
        let only = Selection::parse(&s, &["app-2".into(), "lb".into()]).unwrap();
        assert_eq!(only.units(&s), ["t-app-2", "t-lb"]);
        assert!(only.wants(Role::App) && !only.wants(Role::Postgres));
    }
}
