//! `plan(desired, observed) -> Plan`: a pure function, the heart of the deployer.
//! It does not care why it runs: it compares what should be with what is, so
//! planning again after an apply (or after an interrupted one) is always safe.
//! `destroy` is the same function towards an empty model ([`Goal::Destroy`]).
//! How a plan is carried out, step by step, is the target's schedule
//! (`target::docker::schedule`).

use std::fmt;

use serde::Serialize;

use crate::model::{Fingerprint, Model, Unit};
use crate::names::{Names, NodeIndex, Role, Slot, LABEL_CLUSTER};
use crate::observed::{Observed, ObservedUnit};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// `+` the cluster's network.
    CreateNetwork { name: String },
    /// `+` the database volume.
    CreateVolume { name: String },
    /// `+` a unit that does not exist.
    Create { name: String, role: Role },
    /// `~` a unit that exists but is stopped (drift).
    Start {
        name: String,
        role: Role,
        reason: String,
    },
    /// `-/+` a service unit recreated in place (brief interruption).
    Replace {
        name: String,
        role: Role,
        reason: String,
    },
    /// `-/+` an app node replaced by a rolling update (no interruption).
    Roll {
        name: String,
        node: NodeIndex,
        reason: String,
    },
    /// `-` a unit the spec no longer calls for.
    Remove {
        name: String,
        role: Role,
        /// None for a labelled object under a name the deployer never gives.
        slot: Option<Slot>,
        reason: String,
    },
    /// `~` the balancer's config changes; nginx reloads, no restart.
    Reload { name: String, reason: String },
    /// migrations run once, before any new node takes traffic.
    Migrate,
    /// `-` the cluster's network (destroy).
    RemoveNetwork { name: String },
    /// `-` the database volume and all its data (destroy --volumes).
    RemoveVolume { name: String },
}

impl Change {
    pub fn symbol(&self) -> &'static str {
        match self {
            Change::CreateNetwork { .. } | Change::CreateVolume { .. } | Change::Create { .. } => {
                "+"
            }
            Change::Start { .. } | Change::Reload { .. } => "~",
            Change::Replace { .. } | Change::Roll { .. } => "-/+",
            Change::Remove { .. } | Change::RemoveNetwork { .. } | Change::RemoveVolume { .. } => {
                "-"
            }
            Change::Migrate => ">",
        }
    }

    /// A node created, started or rolled: it needs migrations first.
    fn touches_nodes(&self) -> bool {
        match self {
            Change::Create { role, .. }
            | Change::Start { role, .. }
            | Change::Replace { role, .. } => *role == Role::App,
            Change::Roll { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.symbol();
        match self {
            Change::CreateNetwork { name } => write!(f, "{s:>3} network {name}"),
            Change::CreateVolume { name } => write!(f, "{s:>3} volume {name}"),
            Change::Create { name, role } => write!(f, "{s:>3} {role} {name}"),
            Change::Start { name, role, reason } => {
                write!(f, "{s:>3} {role} {name}: start ({reason})")
            }
            Change::Replace { name, role, reason } => {
                write!(f, "{s:>3} {role} {name}: replace ({reason})")
            }
            Change::Roll { name, reason, .. } => {
                write!(f, "{s:>3} app {name}: rolling replace ({reason})")
            }
            Change::Remove {
                name, role, reason, ..
            } => {
                write!(f, "{s:>3} {role} {name}: remove ({reason})")
            }
            Change::Reload { name, reason } => {
                write!(f, "{s:>3} balancer {name}: reload nginx ({reason})")
            }
            Change::Migrate => write!(f, "{s:>3} migrations: run `app migrate` once"),
            Change::RemoveNetwork { name } => write!(f, "{s:>3} network {name}"),
            Change::RemoveVolume { name } => write!(f, "{s:>3} volume {name} (all data)"),
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
        let destroy = self.count(|c| {
            matches!(
                c,
                Change::Remove { .. } | Change::RemoveNetwork { .. } | Change::RemoveVolume { .. }
            )
        });
        format!(
            "Plan: {add} to add, {change} to change, {replace} to replace, {destroy} to destroy."
        )
    }

    /// Nodes created, started or rolled: the ones that need migrations first.
    pub fn touches_nodes(&self) -> bool {
        self.changes.iter().any(Change::touches_nodes)
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

/// Why a plan cannot be made: something in the way that is not the cluster's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("network {name} exists but was not created by the deployer (it lacks the label {LABEL_CLUSTER}={cluster}); remove or rename it, or choose another [cluster] name")]
    ForeignNetwork { name: String, cluster: String },
    #[error("volume {name} exists but was not created by the deployer (it lacks the label {LABEL_CLUSTER}={cluster}); remove it (after saving what it holds), or choose another [cluster] name")]
    ForeignVolume { name: String, cluster: String },
}

/// Refuses a network or volume under the cluster's name that is not the
/// cluster's: converging would use someone else's object.
pub fn check_ownership(names: &Names, observed: &Observed) -> Result<(), PlanError> {
    let cluster = names.cluster().to_string();
    if observed.network.is_foreign() {
        return Err(PlanError::ForeignNetwork {
            name: names.network(),
            cluster,
        });
    }
    if observed.volume.is_foreign() {
        return Err(PlanError::ForeignVolume {
            name: names.volume(),
            cluster,
        });
    }
    Ok(())
}

/// What the plan converges to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The model: create, change and remove until the cluster matches it.
    Converge,
    /// Nothing: remove every unit and the network; the volume too when
    /// `volumes` (otherwise it is kept with its data).
    Destroy { volumes: bool },
}

/// What differs between two fingerprints, e.g. `env.RUST_LOG: info → debug`.
pub fn reason(old: &Fingerprint, new: &Fingerprint) -> String {
    let mut parts = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        let short = |v: Option<&String>| match v {
            None => "unset".to_string(),
            Some(v) if v.starts_with("sha256:") => v.get(..19).unwrap_or(v).to_string(),
            Some(v) if v.chars().count() > 40 => {
                format!("{}…", v.chars().take(40).collect::<String>())
            }
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

fn compare(d: &Unit, o: &ObservedUnit) -> Option<String> {
    (d.hash() != o.hash).then(|| reason(&o.fingerprint, &d.fingerprint))
}

/// Why `o` goes; `pooler_wanted`: the desired cluster has a pooler (so an observed
/// one of another generation is being replaced, not turned off).
fn removal_reason(o: &ObservedUnit, goal: Goal, pooler_wanted: bool) -> &'static str {
    if let Goal::Destroy { .. } = goal {
        return "destroy";
    }
    match o.slot {
        Some(Slot::OldNode(_) | Slot::NewNode(_)) => "left over from an interrupted rollout",
        Some(Slot::Node(_)) => "scaled down",
        Some(Slot::Migrate) => "left over from an interrupted migration",
        Some(Slot::Redis) => "redis disabled",
        Some(Slot::Pooler(_)) if pooler_wanted => {
            "replaced by a new pooler (its configuration changed)"
        }
        Some(Slot::Pooler(_)) => "pooler turned off",
        None => "not a name the deployer gives",
        _ => "no longer in cluster.toml",
    }
}

/// The changes that take the target from `observed` to `desired` (or, for
/// [`Goal::Destroy`], to nothing), in dependency order.
pub fn plan(desired: &Model, observed: &Observed, goal: Goal) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();
    let destroy = matches!(goal, Goal::Destroy { .. });
    if !destroy {
        check_ownership(&desired.names, observed)?;
        if observed.network.is_absent() {
            changes.push(Change::CreateNetwork {
                name: desired.network.clone(),
            });
        }
        if observed.volume.is_absent() {
            changes.push(Change::CreateVolume {
                name: desired.volume.clone(),
            });
        }
    }
    let units: &[Unit] = if destroy { &[] } else { &desired.units };

    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for d in units {
        let change = match observed.get(&d.name) {
            None => Some(Change::Create {
                name: d.name.clone(),
                role: d.role(),
            }),
            Some(o) => match (compare(d, o), d.slot) {
                (Some(reason), Slot::Node(node)) => Some(Change::Roll {
                    name: d.name.clone(),
                    node,
                    reason,
                }),
                (Some(reason), _) => Some(Change::Replace {
                    name: d.name.clone(),
                    role: d.role(),
                    reason,
                }),
                (None, _) if !o.running => Some(Change::Start {
                    name: d.name.clone(),
                    role: d.role(),
                    reason: "stopped outside the deployer".into(),
                }),
                (None, _) => None,
            },
        };
        if let Some(c) = change {
            if d.role() == Role::App {
                nodes.push(c);
            } else {
                services.push(c);
            }
        }
    }

    // Everything observed that the model does not call for: surplus nodes after a
    // scale-down, leftovers of an interrupted rollout or migration, Redis turned off.
    let pooler_wanted = units.iter().any(|u| u.role() == Role::Pooler);
    let removals: Vec<Change> = observed
        .units
        .iter()
        .filter(|o| !units.iter().any(|d| d.name == o.name))
        .map(|o| Change::Remove {
            name: o.name.clone(),
            role: o.role,
            slot: o.slot,
            reason: removal_reason(o, goal, pooler_wanted).into(),
        })
        .collect();

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
    if nodes.iter().any(Change::touches_nodes) {
        changes.push(Change::Migrate);
    }
    changes.extend(nodes);
    changes.extend(removals);
    let balancer_recreated = !balancer.is_empty();
    changes.extend(balancer);
    if !balancer_recreated {
        if let Some(b) = units.iter().find(|u| u.slot == Slot::Balancer) {
            let running_conf = observed.nginx_conf.as_deref();
            if running_conf != Some(desired.nginx_conf.as_str()) {
                changes.push(Change::Reload {
                    name: b.name.clone(),
                    reason: conf_reason(running_conf, &desired.nginx_conf),
                });
            }
        }
    }
    if let Goal::Destroy { volumes } = goal {
        if observed.network.is_owned() {
            changes.push(Change::RemoveNetwork {
                name: desired.network.clone(),
            });
        }
        if volumes && observed.volume.is_owned() {
            changes.push(Change::RemoveVolume {
                name: desired.volume.clone(),
            });
        }
    }
    Ok(Plan { changes })
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
    // The certificate the config names (HTTPS): a rotation is a reload.
    let certificate = |s: &str| -> Option<String> {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("# certificate sha256 "))
            .map(|h| h.chars().take(12).collect())
    };
    match (certificate(old), certificate(new)) {
        (Some(a), Some(b)) if a != b => parts.push(format!("certificate sha256 {a}… → {b}…")),
        (None, Some(_)) => parts.push("HTTPS on".into()),
        (Some(_), None) => parts.push("HTTPS off".into()),
        _ => {}
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
    use crate::fixtures::{converged, images, want, want_with};
    use crate::observed::Presence;

    fn plan(d: &Model, o: &Observed) -> Plan {
        super::plan(d, o, Goal::Converge).unwrap()
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
            "[database]\npooler = \"pgbouncer\"\n",
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
                    o.units
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
                edit: |o| o.units.retain(|c| c.name != "t-app-3"),
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
                    crate::fixtures::leave_old_node(o, 1);
                    let mut m = o.units[0].clone();
                    m.name = "t-migrate".into();
                    m.role = Role::Migrate;
                    m.slot = Some(Slot::Migrate);
                    o.units.push(m);
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
                    o.network = Presence::Absent;
                    o.volume = Presence::Absent;
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
    fn the_pooler_is_created_then_the_nodes_roll_to_it_and_back() {
        let pooled = "[database]\npooler = \"pgbouncer\"\n";
        let name = |extra: &str| {
            crate::model::pooler_name(&crate::fixtures::spec(&format!("{pooled}{extra}"))).unwrap()
        };
        let p = name("");
        let on = plan(&want(pooled), &converged(&want("")));
        let url = format!("postgres://app@{p}:5432/ap…");
        assert_eq!(
            lines(&on),
            [
                format!("  + pooler {p}"),
                "  > migrations: run `app migrate` once".into(),
                format!("-/+ app t-app-1: rolling replace (database_url: unset → {url})"),
                format!("-/+ app t-app-2: rolling replace (database_url: unset → {url})"),
                format!("-/+ app t-app-3: rolling replace (database_url: unset → {url})"),
            ]
        );
        let off = plan(&want(""), &converged(&want(pooled)));
        assert_eq!(off.count(|c| matches!(c, Change::Roll { .. })), 3, "{off}");
        assert!(
            lines(&off).contains(&format!("  - pooler {p}: remove (pooler turned off)")),
            "{off}"
        );
        // A changed pooler is a new one beside the old: the nodes roll over to it,
        // then the old one goes.
        let bigger = "pooler_pool_size = 30\n";
        let changed = plan(
            &want(&format!("{pooled}{bigger}")),
            &converged(&want(pooled)),
        );
        let lines = lines(&changed);
        assert_eq!(
            lines[0],
            format!("  + pooler {}", name(bigger)),
            "{changed}"
        );
        assert_eq!(
            changed.count(|c| matches!(c, Change::Roll { .. })),
            3,
            "{changed}"
        );
        assert_eq!(
            lines.last().unwrap(),
            &format!(
                "  - pooler {p}: remove (replaced by a new pooler (its configuration changed))"
            )
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

    #[test]
    fn a_foreign_network_or_volume_is_never_used() {
        let d = want("");
        let cluster = "t".to_string();
        let mut o = converged(&d);
        o.network = Presence::Foreign;
        assert_eq!(
            super::plan(&d, &o, Goal::Converge),
            Err(PlanError::ForeignNetwork {
                name: "t-net".into(),
                cluster: cluster.clone()
            })
        );
        o = Observed {
            volume: Presence::Foreign,
            ..Observed::default()
        };
        let err = super::plan(&d, &o, Goal::Converge).unwrap_err();
        assert_eq!(
            err,
            PlanError::ForeignVolume {
                name: "t-pgdata".into(),
                cluster
            }
        );
        assert_eq!(
            err.to_string(),
            "volume t-pgdata exists but was not created by the deployer (it lacks the label \
             io.deployer.cluster=t); remove it (after saving what it holds), or choose another [cluster] name"
        );
        // Foreign objects alone are nothing of the cluster's.
        assert!(o.is_empty());
    }

    #[test]
    fn destroy_is_the_plan_towards_nothing_and_leaves_what_is_not_ours() {
        let d = want("[redis]\nenabled = true\n");
        let mut o = converged(&d);
        let keep = super::plan(&d, &o, Goal::Destroy { volumes: false }).unwrap();
        assert_eq!(keep.count(|c| matches!(c, Change::Remove { .. })), 6);
        assert!(keep.changes.contains(&Change::RemoveNetwork {
            name: "t-net".into()
        }));
        assert!(!keep
            .changes
            .iter()
            .any(|c| matches!(c, Change::RemoveVolume { .. })));
        let all = super::plan(&d, &o, Goal::Destroy { volumes: true }).unwrap();
        assert_eq!(
            all.changes.last(),
            Some(&Change::RemoveVolume {
                name: "t-pgdata".into()
            })
        );
        // Someone else's volume under the cluster's name is left alone, not an error.
        o.volume = Presence::Foreign;
        o.network = Presence::Foreign;
        let foreign = super::plan(&d, &o, Goal::Destroy { volumes: true }).unwrap();
        assert!(!foreign.changes.iter().any(|c| matches!(
            c,
            Change::RemoveVolume { .. } | Change::RemoveNetwork { .. }
        )));
        // Nothing left: nothing to do.
        let empty = super::plan(&d, &Observed::default(), Goal::Destroy { volumes: true }).unwrap();
        assert!(empty.is_empty(), "{empty}");
    }

    #[test]
    fn a_changed_stop_grace_rolls_the_nodes() {
        let p = plan(
            &want("[rollout]\nstop_grace_seconds = 30\n"),
            &converged(&want("")),
        );
        assert_eq!(p.count(|c| matches!(c, Change::Roll { .. })), 3, "{p}");
        assert!(p.to_string().contains("stop_grace: 20s → 30s"), "{p}");
    }

    #[test]
    fn a_new_certificate_is_named_as_the_reason_to_reload() {
        let conf = |sha: &str| {
            format!("upstream x {{\n}}\n# certificate sha256 {sha}\nlisten 8443 ssl;\n")
        };
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        for (old, new, want) in [
            (
                Some(conf(&a)),
                conf(&b),
                "certificate sha256 aaaaaaaaaaaa… → bbbbbbbbbbbb…",
            ),
            (Some("upstream x {\n}\n".to_string()), conf(&a), "HTTPS on"),
            (Some(conf(&a)), "upstream x {\n}\n".to_string(), "HTTPS off"),
            (None, conf(&a), "config missing"),
        ] {
            assert_eq!(conf_reason(old.as_deref(), &new), want);
        }
    }
}
