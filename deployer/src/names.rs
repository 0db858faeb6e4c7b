//! Names of everything a cluster owns on a target, derived from its DNS label.
//! One place, so `render`, `plan` and every target always agree; the
//! `<node>-old` convention of a rolling update is a [`Slot`], never a suffix check.

use std::fmt;

use serde::Serialize;

use crate::config::ClusterSpec;

/// Label keys every object of a cluster carries.
pub const LABEL_CLUSTER: &str = "io.deployer.cluster";
pub const LABEL_ROLE: &str = "io.deployer.role";
pub const LABEL_NODE: &str = "io.deployer.node";
pub const LABEL_SPEC_HASH: &str = "io.deployer.spec-hash";
/// The fingerprint itself (non-secret values only), so a plan can say what changed.
pub const LABEL_FINGERPRINT: &str = "io.deployer.fingerprint";

/// The port nginx listens on inside its container (non-root, so ≥ 1024).
pub const BALANCER_LISTEN_PORT: u16 = 8080;
/// The uid:gid each image's user has.
pub const NGINX_USER: (u32, u32) = (101, 101);
pub const POSTGRES_USER: (u32, u32) = (999, 999);
pub const REDIS_USER: (u32, u32) = (999, 999);

/// What a container (or service) of the cluster is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Postgres,
    Redis,
    App,
    Balancer,
    Migrate,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Postgres,
        Role::Redis,
        Role::App,
        Role::Balancer,
        Role::Migrate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Postgres => "postgres",
            Role::Redis => "redis",
            Role::App => "app",
            Role::Balancer => "balancer",
            Role::Migrate => "migrate",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An app node's number, 1-based: node 1 is `<cluster>-app-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeIndex(u32);

impl NodeIndex {
    /// None for 0: nodes are numbered from 1.
    pub fn new(i: u32) -> Option<NodeIndex> {
        (i > 0).then_some(NodeIndex(i))
    }

    /// Nodes 1..=n.
    pub fn first(n: u32) -> impl Iterator<Item = NodeIndex> {
        (1..=n).map(NodeIndex)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for NodeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an object sits in the cluster: its name is derived from it, and an
/// observed name parses back into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "node", rename_all = "snake_case")]
pub enum Slot {
    Postgres,
    Redis,
    /// An app node under its own name.
    Node(NodeIndex),
    /// The old container of a node being replaced: it steps aside under
    /// `<node>-old` so its replacement can take the node's own name (and the
    /// balancer's config never changes).
    OldNode(NodeIndex),
    Balancer,
    /// The one-off migration container.
    Migrate,
}

impl Slot {
    pub fn role(self) -> Role {
        match self {
            Slot::Postgres => Role::Postgres,
            Slot::Redis => Role::Redis,
            Slot::Node(_) | Slot::OldNode(_) => Role::App,
            Slot::Balancer => Role::Balancer,
            Slot::Migrate => Role::Migrate,
        }
    }

    pub fn node(self) -> Option<NodeIndex> {
        match self {
            Slot::Node(i) | Slot::OldNode(i) => Some(i),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    cluster: String,
}

impl Names {
    pub fn of(spec: &ClusterSpec) -> Names {
        Names::for_cluster(spec.name().as_str())
    }

    /// For a cluster name already checked to be a DNS label.
    pub fn for_cluster(cluster: &str) -> Names {
        Names {
            cluster: cluster.to_string(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn network(&self) -> String {
        format!("{}-net", self.cluster)
    }
    pub fn volume(&self) -> String {
        format!("{}-pgdata", self.cluster)
    }
    pub fn postgres(&self) -> String {
        self.of_slot(Slot::Postgres)
    }
    pub fn redis(&self) -> String {
        self.of_slot(Slot::Redis)
    }
    pub fn balancer(&self) -> String {
        self.of_slot(Slot::Balancer)
    }
    pub fn migrate(&self) -> String {
        self.of_slot(Slot::Migrate)
    }
    /// The one service all app nodes are tasks of, on a target with services
    /// (Swarm); its task in slot `i` is named like node `i`.
    pub fn app_service(&self) -> String {
        format!("{}-app", self.cluster)
    }
    /// Node `i`, as container name, host name and upstream server.
    pub fn node(&self, i: NodeIndex) -> String {
        self.of_slot(Slot::Node(i))
    }

    /// The name of the object in `slot`.
    pub fn of_slot(&self, slot: Slot) -> String {
        let c = &self.cluster;
        match slot {
            Slot::Postgres => format!("{c}-postgres"),
            Slot::Redis => format!("{c}-redis"),
            Slot::Balancer => format!("{c}-lb"),
            Slot::Migrate => format!("{c}-migrate"),
            Slot::Node(i) => format!("{c}-app-{i}"),
            Slot::OldNode(i) => format!("{c}-app-{i}-old"),
        }
    }

    /// The slot a name of this cluster stands for; None for a name the deployer
    /// never gives.
    pub fn parse(&self, name: &str) -> Option<Slot> {
        let rest = name
            .strip_prefix(self.cluster.as_str())?
            .strip_prefix('-')?;
        let fixed = [
            ("postgres", Slot::Postgres),
            ("redis", Slot::Redis),
            ("lb", Slot::Balancer),
            ("migrate", Slot::Migrate),
        ];
        if let Some((_, s)) = fixed.iter().find(|(n, _)| *n == rest) {
            return Some(*s);
        }
        let node = rest.strip_prefix("app-")?;
        let (digits, old) = match node.strip_suffix("-old") {
            Some(d) => (d, true),
            None => (node, false),
        };
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let i = NodeIndex::new(digits.parse().ok()?)?;
        Some(if old { Slot::OldNode(i) } else { Slot::Node(i) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_round_trips_through_its_name() {
        let n = Names::for_cluster("demo");
        let i = NodeIndex::new(12).unwrap();
        for slot in [
            Slot::Postgres,
            Slot::Redis,
            Slot::Balancer,
            Slot::Migrate,
            Slot::Node(i),
            Slot::OldNode(i),
        ] {
            assert_eq!(n.parse(&n.of_slot(slot)), Some(slot), "{slot:?}");
        }
        assert_eq!(n.of_slot(Slot::OldNode(i)), "demo-app-12-old");
    }

    #[test]
    fn names_the_deployer_never_gives_are_not_slots() {
        let n = Names::for_cluster("demo");
        for name in [
            "demo-app-0",
            "demo-app-01",
            "demo-app-",
            "demo-app-1-older",
            "demo-app-x",
            "other-app-1",
            "demo-postgres-old",
            "demox-lb",
        ] {
            assert_eq!(n.parse(name), None, "{name}");
        }
    }
}
