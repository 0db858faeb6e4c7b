//! Names of everything a cluster owns on a target, derived from its DNS label.
//! One place, so `render`, `plan` and every target always agree; the
//! `<node>-old` convention of a rolling update is a [`Slot`], never a suffix check.

use std::fmt;

use serde::Serialize;

use crate::config::ClusterSpec;

/// Label keys every object of a cluster carries.
pub const LABEL_CLUSTER: &str = "io.deployer.cluster";
/// On the data volume: [`crate::secrets::password_check`] of the password the data was
/// created with, so an apply with other secrets is refused before any node fails.
pub const LABEL_PASSWORD_CHECK: &str = "io.deployer.password-check";
pub const LABEL_ROLE: &str = "io.deployer.role";
pub const LABEL_NODE: &str = "io.deployer.node";
pub const LABEL_SPEC_HASH: &str = "io.deployer.spec-hash";
/// The fingerprint itself (non-secret values only), so a plan can say what changed.
pub const LABEL_FINGERPRINT: &str = "io.deployer.fingerprint";

/// The port nginx listens on inside its container (non-root, so ≥ 1024).
pub const BALANCER_LISTEN_PORT: u16 = 8080;
/// The port nginx serves HTTPS on inside its container, when the balancer has a certificate.
pub const BALANCER_TLS_LISTEN_PORT: u16 = 8443;
/// The uid:gid each image's user has.
pub const NGINX_USER: (u32, u32) = (101, 101);
pub const POSTGRES_USER: (u32, u32) = (999, 999);
pub const REDIS_USER: (u32, u32) = (999, 999);
/// PgBouncer's image user (uid/gid 70, as in edoburu/pgbouncer and the local build).
pub const POOLER_USER: (u32, u32) = (70, 70);
/// The port PgBouncer listens on inside the cluster network (the image's default).
pub const POOLER_PORT: u16 = 5432;

/// What a container (or service) of the cluster is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Postgres,
    Redis,
    Pooler,
    App,
    Balancer,
    Migrate,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Postgres,
        Role::Redis,
        Role::Pooler,
        Role::App,
        Role::Balancer,
        Role::Migrate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Postgres => "postgres",
            Role::Redis => "redis",
            Role::Pooler => "pooler",
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

/// Which PgBouncer: a hash of what it is configured with, so a changed pooler gets a
/// new name, starts beside the old one, and the nodes roll over to it (their
/// `DATABASE_URL` names it) before the old one goes: no pooled query is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolerGeneration(u32);

impl PoolerGeneration {
    pub fn new(hash: u32) -> PoolerGeneration {
        PoolerGeneration(hash)
    }
}

impl fmt::Display for PoolerGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl Serialize for PoolerGeneration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where an object sits in the cluster: its name is derived from it, and an
/// observed name parses back into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "node", rename_all = "snake_case")]
pub enum Slot {
    Postgres,
    Redis,
    /// PgBouncer, between the nodes and PostgreSQL: `<cluster>-pooler-<generation>`.
    Pooler(PoolerGeneration),
    /// An app node under its own name.
    Node(NodeIndex),
    /// The old container of a node being replaced: it steps aside under
    /// `<node>-old` so its replacement can take the node's own name (and the
    /// balancer's config never changes).
    OldNode(NodeIndex),
    /// The replacement of a node (or a node being added) while it passes its health
    /// gate under `<node>-new`: the balancer finds nodes by name, so a node is
    /// given its own name only once it is ready for traffic.
    NewNode(NodeIndex),
    Balancer,
    /// The one-off migration container.
    Migrate,
}

impl Slot {
    pub fn role(self) -> Role {
        match self {
            Slot::Postgres => Role::Postgres,
            Slot::Redis => Role::Redis,
            Slot::Pooler(_) => Role::Pooler,
            Slot::Node(_) | Slot::OldNode(_) | Slot::NewNode(_) => Role::App,
            Slot::Balancer => Role::Balancer,
            Slot::Migrate => Role::Migrate,
        }
    }

    pub fn node(self) -> Option<NodeIndex> {
        match self {
            Slot::Node(i) | Slot::OldNode(i) | Slot::NewNode(i) => Some(i),
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
    pub fn pooler(&self, generation: PoolerGeneration) -> String {
        self.of_slot(Slot::Pooler(generation))
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
            Slot::Pooler(g) => format!("{c}-pooler-{g}"),
            Slot::Balancer => format!("{c}-lb"),
            Slot::Migrate => format!("{c}-migrate"),
            Slot::Node(i) => format!("{c}-app-{i}"),
            Slot::OldNode(i) => format!("{c}-app-{i}-old"),
            Slot::NewNode(i) => format!("{c}-app-{i}-new"),
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
        if let Some(hex) = rest.strip_prefix("pooler-") {
            let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            if hex.len() != 8 || !hex.bytes().all(lower_hex) {
                return None;
            }
            let g = u32::from_str_radix(hex, 16).ok()?;
            return Some(Slot::Pooler(PoolerGeneration(g)));
        }
        let node = rest.strip_prefix("app-")?;
        let (digits, make): (&str, fn(NodeIndex) -> Slot) =
            if let Some(d) = node.strip_suffix("-old") {
                (d, Slot::OldNode)
            } else if let Some(d) = node.strip_suffix("-new") {
                (d, Slot::NewNode)
            } else {
                (node, Slot::Node)
            };
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let i = NodeIndex::new(digits.parse().ok()?)?;
        Some(make(i))
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
            Slot::Pooler(PoolerGeneration(0x00ab_cdef)),
            Slot::Balancer,
            Slot::Migrate,
            Slot::Node(i),
            Slot::OldNode(i),
            Slot::NewNode(i),
        ] {
            assert_eq!(n.parse(&n.of_slot(slot)), Some(slot), "{slot:?}");
        }
        assert_eq!(n.of_slot(Slot::OldNode(i)), "demo-app-12-old");
        assert_eq!(n.of_slot(Slot::NewNode(i)), "demo-app-12-new");
        assert_eq!(
            n.pooler(PoolerGeneration(0x00ab_cdef)),
            "demo-pooler-00abcdef"
        );
    }

    #[test]
    fn names_the_deployer_never_gives_are_not_slots() {
        let n = Names::for_cluster("demo");
        for name in [
            "demo-app-0",
            "demo-app-01",
            "demo-app-",
            "demo-app-1-older",
            "demo-app-1-new-old",
            "demo-lb-new",
            "demo-app-x",
            "other-app-1",
            "demo-postgres-old",
            "demox-lb",
            "demo-pooler",
            "demo-pooler-abc",
            "demo-pooler-0123456G",
            "demo-pooler-0123456789",
        ] {
            assert_eq!(n.parse(name), None, "{name}");
        }
    }
}
