//! `plan(desired, observed) -> Plan`: a pure function, the heart of the deployer.
//! It does not care why it runs: it compares what should be with what is, so
//! planning again after an apply (or after an interrupted one) is always safe.

use std::fmt;

use serde::Serialize;

use crate::desired::{Desired, DesiredContainer, Fingerprint, Role};
use crate::observe::{Observed, ObservedContainer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// `+` the cluster's network.
    CreateNetwork { name: String },
    /// `+` the database volume.
    CreateVolume { name: String },
    /// `+` a container that does not exist.
    Create { name: String, role: Role },
    /// `~` a container that exists but is stopped (drift).
    Start {
        name: String,
        role: Role,
        reason: String,
    },
    /// `-/+` a service container recreated in place (brief interruption).
    Replace {
        name: String,
        role: Role,
        reason: String,
    },
    /// `-/+` an app node replaced by a rolling update (no interruption).
    Roll {
        name: String,
        node: u32,
        reason: String,
    },
    /// `-` a container the spec no longer calls for.
    Remove {
        name: String,
        role: Role,
        reason: String,
    },
    /// `~` the balancer's config changes; nginx reloads, no restart.
    Reload { name: String, reason: String },
    /// migrations run once, before any new node takes traffic.
    Migrate,
}

impl Change {
    pub fn symbol(&self) -> &'static str {
        match self {
            Change::CreateNetwork { .. } | Change::CreateVolume { .. } | Change::Create { .. } => {
                "+"
            }
            Change::Start { .. } | Change::Reload { .. } => "~",
            Change::Replace { .. } | Change::Roll { .. } => "-/+",
            Change::Remove { .. } => "-",
            Change::Migrate => ">",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.symbol();
        match self {
            Change::CreateNetwork { name } => write!(f, "{s:>3} network {name}"),
            Change::CreateVolume { name } => write!(f, "{s:>3} volume {name}"),
            Change::Create { name, role } => write!(f, "{s:>3} {} {name}", role.as_str()),
            Change::Start { name, role, reason } => {
                write!(f, "{s:>3} {} {name}: start ({reason})", role.as_str())
            }
            Change::Replace { name, role, reason } => {
                write!(f, "{s:>3} {} {name}: replace ({reason})", role.as_str())
            }
            Change::Roll { name, reason, .. } => {
                write!(f, "{s:>3} app {name}: rolling replace ({reason})")
            }
            Change::Remove { name, role, reason } => {
                write!(f, "{s:>3} {} {name}: remove ({reason})", role.as_str())
            }
            Change::Reload { name, reason } => {
                write!(f, "{s:>3} balancer {name}: reload nginx ({reason})")
            }
            Change::Migrate => write!(f, "{s:>3} migrations: run `app migrate` once"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, f: impl Fn(&Change) -> bool) -> usize {
        self.changes.iter().filter(|c| f(c)).count()
    }

    /// "2 to add, 1 to change, 1 to replace, 0 to destroy."
    pub fn summary(&self) -> String {
        let add = self.count(|c| {
            matches!(
                c,
                Change::Create { .. } | Change::CreateNetwork { .. } | Change::CreateVolume { .. }
            )
        });
        let change = self.count(|c| matches!(c, Change::Start { .. } | Change::Reload { .. }));
        let replace = self.count(|c| matches!(c, Change::Replace { .. } | Change::Roll { .. }));
        let destroy = self.count(|c| matches!(c, Change::Remove { .. }));
        format!(
            "Plan: {add} to add, {change} to change, {replace} to replace, {destroy} to destroy."
        )
    }

    /// Nodes created, started or rolled: the ones that need migrations first.
    pub fn touches_nodes(&self) -> bool {
        self.changes.iter().any(|c| match c {
            Change::Create { role, .. }
            | Change::Start { role, .. }
            | Change::Replace { role, .. } => *role == Role::App,
            Change::Roll { .. } => true,
            _ => false,
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "No changes. The cluster matches cluster.toml.");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        writeln!(f, "\n{}", self.summary())
    }
}

/// What differs between two fingerprints, e.g. `env.RUST_LOG: info → debug`.
pub fn reason(old: &Fingerprint, new: &Fingerprint) -> String {
    let mut parts = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        let short = |v: Option<&String>| match v {
            None => "unset".to_string(),
            Some(v) if v.starts_with("sha256:") => v.get(..19).unwrap_or(v).to_string(),
            Some(v) if v.len() > 40 => format!("{}…", &v[..40]),
            Some(v) => v.clone(),
        };
        let (a, b) = (old.get(k), new.get(k));
        if a != b {
            parts.push(format!("{k}: {} → {}", short(a), short(b)));
        }
    }
    if parts.is_empty() {
        "spec changed".into()
    } else {
        parts.join(", ")
    }
}

fn compare(d: &DesiredContainer, o: &ObservedContainer) -> Option<String> {
    (d.hash() != o.hash).then(|| reason(&o.fingerprint, &d.fingerprint))
}

/// The changes that take the engine from `observed` to `desired`, in the order
/// the applier runs them.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut changes = Vec::new();
    if !observed.network {
        changes.push(Change::CreateNetwork {
            name: desired.network.clone(),
        });
    }
    if !observed.volume {
        changes.push(Change::CreateVolume {
            name: desired.volume.clone(),
        });
    }

    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for d in &desired.containers {
        let change = match observed.get(&d.name) {
            None => Some(Change::Create {
                name: d.name.clone(),
                role: d.role,
            }),
            Some(o) => match compare(d, o) {
                Some(reason) if d.role == Role::App => Some(Change::Roll {
                    name: d.name.clone(),
                    node: d.node.unwrap_or_default(),
                    reason,
                }),
                Some(reason) => Some(Change::Replace {
                    name: d.name.clone(),
                    role: d.role,
                    reason,
                }),
                None if !o.running => Some(Change::Start {
                    name: d.name.clone(),
                    role: d.role,
                    reason: "stopped outside the deployer".into(),
                }),
                None => None,
            },
        };
        if let Some(c) = change {
            if d.role == Role::App {
                nodes.push(c);
            } else {
                services.push(c);
            }
        }
    }

    // Everything observed that the spec does not call for: surplus nodes after a
    // scale-down, leftovers of an interrupted rollout or migration, Redis turned off.
    let mut removals = Vec::new();
    for o in &observed.containers {
        if desired.get(&o.name).is_some() {
            continue;
        }
        let reason = match o.role {
            Role::App if o.name.ends_with("-old") => "left over from an interrupted rollout",
            Role::App => "scaled down",
            Role::Migrate => "left over from an interrupted migration",
            Role::Redis => "redis disabled",
            _ => "no longer in cluster.toml",
        };
        removals.push(Change::Remove {
            name: o.name.clone(),
            role: o.role,
            reason: reason.into(),
        });
    }

    // Balancer last: created or replaced with the final config, or reloaded.
    let (balancer, other): (Vec<_>, Vec<_>) = services.into_iter().partition(|c| {
        matches!(
            c,
            Change::Create {
                role: Role::Balancer,
                ..
            } | Change::Replace {
                role: Role::Balancer,
                ..
            }
        )
    });
    changes.extend(other);
    let plan_so_far = Plan {
        changes: nodes.clone(),
    };
    if plan_so_far.touches_nodes() {
        changes.push(Change::Migrate);
    }
    changes.extend(nodes);
    changes.extend(removals);
    let balancer_recreated = !balancer.is_empty();
    changes.extend(balancer);
    if !balancer_recreated {
        if let Some(b) = desired.containers.iter().find(|c| c.role == Role::Balancer) {
            let running_conf = observed.nginx_conf.as_deref();
            if running_conf != Some(desired.nginx_conf.as_str()) {
                changes.push(Change::Reload {
                    name: b.name.clone(),
                    reason: conf_reason(running_conf, &desired.nginx_conf),
                });
            }
        }
    }
    Plan { changes }
}

fn conf_reason(old: Option<&str>, new: &str) -> String {
    let Some(old) = old else {
        return "config missing".into();
    };
    let servers = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("server ")
                    .map(|r| r.split(' ').next().unwrap_or("").to_string())
            })
            .filter(|s| s.contains(':'))
            .collect()
    };
    let (a, b) = (servers(old), servers(new));
    let added: Vec<_> = b.iter().filter(|s| !a.contains(s)).cloned().collect();
    let removed: Vec<_> = a.iter().filter(|s| !b.contains(s)).cloned().collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("upstream + {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("upstream - {}", removed.join(", ")));
    }
    if parts.is_empty() {
        let diff = similar::TextDiff::from_lines(old, new);
        let count = |tag| diff.iter_all_changes().filter(|c| c.tag() == tag).count();
        parts.push(format!(
            "config +{} -{} lines",
            count(similar::ChangeTag::Insert),
            count(similar::ChangeTag::Delete)
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::desired::{desired, Images};
    use crate::observe::ObservedContainer;

    fn spec(extra: &str) -> crate::config::ClusterSpec {
        let src = format!("[cluster]\nname = \"t\"\n{extra}");
        config::parse(std::path::Path::new("cluster.toml"), src.as_bytes())
            .unwrap()
            .spec
    }

    fn images() -> Images {
        Images {
            app: "sha256:app1".into(),
            postgres: "sha256:pg".into(),
            redis: Some("sha256:redis".into()),
            balancer: "sha256:nginx".into(),
        }
    }

    fn want(extra: &str) -> Desired {
        want_with(extra, images())
    }

    fn want_with(extra: &str, images: Images) -> Desired {
        let s = spec(extra);
        desired(&s, &images, format!("conf with {} nodes", s.app.nodes))
    }

    /// What the engine would show after `d` was applied.
    fn converged(d: &Desired) -> Observed {
        Observed {
            network: true,
            volume: true,
            containers: d
                .containers
                .iter()
                .map(|c| ObservedContainer {
                    id: format!("id-{}", c.name),
                    name: c.name.clone(),
                    role: c.role,
                    node: c.node,
                    running: true,
                    health: Some("healthy".into()),
                    hash: c.hash(),
                    fingerprint: c.fingerprint.clone(),
                    image: String::new(),
                    status: "Up".into(),
                })
                .collect(),
            nginx_conf: Some(d.nginx_conf.clone()),
        }
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.changes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn from_nothing_everything_is_created_in_dependency_order() {
        let p = plan(&want(""), &Observed::default());
        assert_eq!(
            lines(&p),
            [
                "  + network t-net",
                "  + volume t-pgdata",
                "  + postgres t-postgres",
                "  > migrations: run `app migrate` once",
                "  + app t-app-1",
                "  + app t-app-2",
                "  + app t-app-3",
                "  + balancer t-lb",
            ]
        );
        assert_eq!(
            p.summary(),
            "Plan: 7 to add, 0 to change, 0 to replace, 0 to destroy."
        );
    }

    #[test]
    fn a_converged_cluster_has_an_empty_plan() {
        for extra in [
            "",
            "[app]\nnodes = 5\n",
            "[redis]\nenabled = true\n",
            "[app.env]\nA = \"1\"\n",
        ] {
            let d = want(extra);
            let p = plan(&d, &converged(&d));
            assert!(p.is_empty(), "{extra}: {p}");
        }
    }

    #[test]
    fn table_of_changes() {
        struct Case {
            name: &'static str,
            before: &'static str,
            after: &'static str,
            edit: fn(&mut Observed),
            expect: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "scale up",
                before: "",
                after: "[app]\nnodes = 5\n",
                edit: |_| {},
                expect: &[
                    "  > migrations: run `app migrate` once",
                    "  + app t-app-4",
                    "  + app t-app-5",
                    "  ~ balancer t-lb: reload nginx (config +1 -1 lines)",
                ],
            },
            Case {
                name: "scale down",
                before: "[app]\nnodes = 5\n",
                after: "",
                edit: |_| {},
                expect: &[
                    "  - app t-app-4: remove (scaled down)",
                    "  - app t-app-5: remove (scaled down)",
                    "  ~ balancer t-lb: reload nginx (config +1 -1 lines)",
                ],
            },
            Case {
                name: "env change rolls every node",
                before: "",
                after: "[app.env]\nFEATURE = \"on\"\n",
                edit: |_| {},
                expect: &[
                    "  > migrations: run `app migrate` once",
                    "-/+ app t-app-1: rolling replace (env.FEATURE: unset → on)",
                    "-/+ app t-app-2: rolling replace (env.FEATURE: unset → on)",
                    "-/+ app t-app-3: rolling replace (env.FEATURE: unset → on)",
                ],
            },
            Case {
                name: "max_connections replaces postgres",
                before: "",
                after: "[database]\nmax_connections = 200\n",
                edit: |_| {},
                expect: &["-/+ postgres t-postgres: replace (max_connections: 100 → 200)"],
            },
            Case {
                name: "a node stopped by hand",
                before: "",
                after: "",
                edit: |o| {
                    o.containers
                        .iter_mut()
                        .find(|c| c.name == "t-app-2")
                        .unwrap()
                        .running = false
                },
                expect: &[
                    "  > migrations: run `app migrate` once",
                    "  ~ app t-app-2: start (stopped outside the deployer)",
                ],
            },
            Case {
                name: "a node removed by hand",
                before: "",
                after: "",
                edit: |o| o.containers.retain(|c| c.name != "t-app-3"),
                expect: &["  > migrations: run `app migrate` once", "  + app t-app-3"],
            },
            Case {
                name: "the balancer's config edited by hand",
                before: "",
                after: "",
                edit: |o| o.nginx_conf = Some("something else".into()),
                expect: &["  ~ balancer t-lb: reload nginx (config +1 -1 lines)"],
            },
            Case {
                name: "the balancer's port changes",
                before: "",
                after: "[balancer]\nport = 8000\n",
                edit: |_| {},
                expect: &["-/+ balancer t-lb: replace (port: 4000 → 8000)"],
            },
            Case {
                name: "redis turned on",
                before: "",
                after: "[redis]\nenabled = true\n",
                edit: |_| {},
                expect: &[
                    "  + redis t-redis",
                    "  > migrations: run `app migrate` once",
                    "-/+ app t-app-1: rolling replace (redis: false → true)",
                    "-/+ app t-app-2: rolling replace (redis: false → true)",
                    "-/+ app t-app-3: rolling replace (redis: false → true)",
                ],
            },
            Case {
                name: "leftovers of an interrupted rollout and migration",
                before: "",
                after: "",
                edit: |o| {
                    let mut old = o
                        .containers
                        .iter()
                        .find(|c| c.name == "t-app-1")
                        .unwrap()
                        .clone();
                    old.name = "t-app-1-old".into();
                    o.containers.push(old);
                    let mut m = o.containers[0].clone();
                    m.name = "t-migrate".into();
                    m.role = Role::Migrate;
                    o.containers.push(m);
                },
                expect: &[
                    "  - app t-app-1-old: remove (left over from an interrupted rollout)",
                    "  - migrate t-migrate: remove (left over from an interrupted migration)",
                ],
            },
            Case {
                name: "the network and volume removed by hand",
                before: "",
                after: "",
                edit: |o| {
                    o.network = false;
                    o.volume = false;
                },
                expect: &["  + network t-net", "  + volume t-pgdata"],
            },
        ];
        for case in cases {
            let mut observed = converged(&want(case.before));
            (case.edit)(&mut observed);
            let p = plan(&want(case.after), &observed);
            assert_eq!(lines(&p), case.expect, "case: {}\n{p}", case.name);
        }
    }

    #[test]
    fn a_rebuilt_image_rolls_the_nodes_and_says_so() {
        let before = want("");
        let mut images = images();
        images.app = "sha256:0123456789abcdef0123".into();
        let p = plan(&want_with("", images), &converged(&before));
        assert_eq!(p.count(|c| matches!(c, Change::Roll { .. })), 3);
        assert!(
            p.to_string()
                .contains("image: sha256:app1 → sha256:0123456789a"),
            "{p}"
        );
    }

    #[test]
    fn planning_after_the_plan_is_carried_out_is_empty() {
        // Idempotence: converge, then plan again, from several starting points.
        for (before, after) in [
            ("", "[app]\nnodes = 5\n"),
            ("[app]\nnodes = 5\n", "[app]\nnodes = 1\n"),
        ] {
            let mut observed = converged(&want(before));
            let first = plan(&want(after), &observed);
            assert!(!first.is_empty());
            observed = converged(&want(after));
            assert!(plan(&want(after), &observed).is_empty());
        }
    }
}
