//! The one desired model: every unit (container, or later service) the spec
//! calls for, target-neutral. Each unit carries everything a target needs to
//! realise it — image, user, command, environment, secret files, ports, health
//! check, stop signal and grace — and a fingerprint of the values it is made
//! from. The Docker target, the compose file and the next targets are all
//! derived from this one value; app nodes are described by the
//! [`NodeContract`] the app itself parses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use node_contract::{HealthCheck, NodeContract, Secret};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ClusterSpec, TargetKind};
use crate::names::{self, Names, NodeIndex, Role, Slot};

/// The images each role runs: references (`render`) or the engine's image IDs (`apply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub app: String,
    pub postgres: String,
    pub redis: Option<String>,
    pub balancer: String,
}

impl Images {
    /// The references cluster.toml names (what a compose file pulls).
    pub fn refs(spec: &ClusterSpec) -> Images {
        Images {
            app: spec.app().image().to_string(),
            postgres: spec.database().image().to_string(),
            redis: spec.redis().map(|r| r.image().to_string()),
            balancer: spec.balancer().image().to_string(),
        }
    }
}

/// The values a unit is made from (non-secret); its hash is the unit's identity.
pub type Fingerprint = BTreeMap<String, String>;

pub fn hash(fp: &Fingerprint) -> String {
    let json = serde_json::to_string(fp).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..8])
}

/// A health check as every target writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `["CMD", program, args…]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Health {
    /// The service containers' check (PostgreSQL, Redis, the balancer): the same
    /// rhythm as a node's.
    fn service(spec: &ClusterSpec, test: Vec<String>) -> Health {
        let node = HealthCheck::node();
        Health {
            test,
            interval: node.interval,
            timeout: node.timeout,
            retries: node.retries,
            start_period: spec.rollout().health_timeout(),
        }
    }

    fn of_node(check: &HealthCheck, port: u16) -> Health {
        Health {
            test: check.command(port),
            interval: check.interval,
            timeout: check.timeout,
            retries: check.retries,
            start_period: check.start_period,
        }
    }
}

/// A secret file placed in a unit at `path`, owned by the unit's user, mode 0400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecretFile {
    pub secret: Secret,
}

impl SecretFile {
    pub fn path(&self) -> &'static str {
        self.secret.path()
    }
}

/// A port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// Everything a target needs to run one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    pub slot: Slot,
    pub name: String,
    pub image: String,
    /// `uid:gid` the process runs as (never root).
    pub user: (u32, u32),
    pub command: Vec<String>,
    /// In order; never a secret (those are files).
    pub env: Vec<(String, String)>,
    pub secrets: Vec<SecretFile>,
    pub publish: Option<Published>,
    pub health: Option<Health>,
    /// Sent to stop the process; SIGKILL follows after `stop_grace`.
    pub stop_signal: &'static str,
    pub stop_grace: Duration,
    /// Restarted by the engine when it exits (not the one-off migration).
    pub restart: bool,
    /// The named volume mounted at its path (PostgreSQL's data).
    pub volume: Option<(String, &'static str)>,
    pub fingerprint: Fingerprint,
}

impl Unit {
    pub fn role(&self) -> Role {
        self.slot.role()
    }

    pub fn hash(&self) -> String {
        hash(&self.fingerprint)
    }
}

/// The whole cluster as it should be.
#[derive(Debug, Clone)]
pub struct Model {
    pub names: Names,
    pub network: String,
    pub volume: String,
    /// PostgreSQL, Redis (when on), the nodes in order, the balancer.
    pub units: Vec<Unit>,
    /// The one-off migration unit (run before nodes change, never kept).
    pub migrate: Unit,
    /// The balancer's config once converged: byte for byte generated/nginx.conf.
    pub nginx_conf: String,
}

impl Model {
    /// A cluster with nothing in it: what `destroy` converges to.
    pub fn empty(names: Names) -> Model {
        let migrate_name = names.migrate();
        Model {
            network: names.network(),
            volume: names.volume(),
            units: Vec::new(),
            migrate: Unit {
                slot: Slot::Migrate,
                name: migrate_name,
                image: String::new(),
                user: node_contract::NODE_USER,
                command: Vec::new(),
                env: Vec::new(),
                secrets: Vec::new(),
                publish: None,
                health: None,
                stop_signal: "SIGTERM",
                stop_grace: Duration::ZERO,
                restart: false,
                volume: None,
                fingerprint: Fingerprint::new(),
            },
            names,
            nginx_conf: String::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }

    pub fn unit(&self, slot: Slot) -> Option<&Unit> {
        self.units.iter().find(|u| u.slot == slot)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(|u| u.role() == Role::App)
    }

    /// The upstream the balancer sends to once converged.
    pub fn upstream(&self) -> Vec<String> {
        self.nodes().map(|n| n.name.clone()).collect()
    }
}

fn fp(pairs: &[(&str, String)]) -> Fingerprint {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// What node `name` is given.
pub fn node_contract(spec: &ClusterSpec, name: String) -> NodeContract {
    let n = Names::of(spec);
    NodeContract {
        node_name: name,
        port: spec.app().port(),
        database_url: format!(
            "postgres://{}@{}:5432/{}",
            spec.database().user(),
            n.postgres(),
            spec.database().name()
        ),
        pool_size: spec.app().pool_size(),
        job_workers: spec.app().job_workers(),
        log_format: spec.app().log_format(),
        shutdown_timeout: node_contract::shutdown_timeout_for(spec.rollout().stop_grace()),
        redis_url: spec.redis().map(|_| format!("redis://{}:6379", n.redis())),
        extra_env: spec.app().env().clone(),
        secrets: vec![Secret::DatabasePassword, Secret::JwtSecret],
        // Failures while a node starts (up to health_timeout) do not count:
        // Docker's own status, which compose waits on, agrees with the deployer's gate.
        health: HealthCheck {
            start_period: spec.rollout().health_timeout(),
            ..HealthCheck::node()
        },
        stop_signal: "SIGTERM",
        stop_grace: spec.rollout().stop_grace(),
        user: node_contract::NODE_USER,
    }
}

fn node_unit(spec: &ClusterSpec, images: &Images, slot: Slot, name: String, command: &str) -> Unit {
    let contract = node_contract(spec, name.clone());
    let mut fingerprint = fp(&[
        ("image", images.app.clone()),
        ("port", spec.app().port().to_string()),
        ("pool_size", spec.app().pool_size().to_string()),
        ("job_workers", spec.app().job_workers().to_string()),
        ("log_format", spec.app().log_format().as_str().to_string()),
        ("redis", spec.redis().is_some().to_string()),
        (
            "database",
            format!("{}@{}", spec.database().user(), spec.database().name()),
        ),
        ("stop_grace", format!("{}s", contract.stop_grace.as_secs())),
    ]);
    let publish = match (slot, spec.app().host_port_base()) {
        (Slot::Node(i), Some(base)) => Some(Published {
            host_ip: IpAddr::from([127, 0, 0, 1]),
            host_port: (base as u32 + i.get() - 1) as u16,
            container_port: spec.app().port(),
        }),
        _ => None,
    };
    if let Some(p) = publish {
        fingerprint.insert("host_port".into(), p.host_port.to_string());
    }
    for (k, v) in spec.app().env() {
        fingerprint.insert(format!("env.{k}"), v.clone());
    }
    let serving = command == "serve";
    Unit {
        slot,
        name,
        image: images.app.clone(),
        user: contract.user,
        command: vec!["app".into(), command.into()],
        env: contract.env(),
        secrets: contract
            .secrets
            .iter()
            .map(|&secret| SecretFile { secret })
            .collect(),
        publish,
        health: serving.then(|| Health::of_node(&contract.health, contract.port)),
        stop_signal: contract.stop_signal,
        stop_grace: contract.stop_grace,
        restart: serving,
        volume: None,
        fingerprint,
    }
}

/// PostgreSQL's command line: the budget's limits, and on a swarm TCP
/// keepalives, so the connections of a host that died (its nodes never said
/// goodbye) leave within about 25 s instead of the kernel's two hours, and the
/// live budget counts what is really held.
fn postgres_command(spec: &ClusterSpec) -> Vec<String> {
    let db = spec.database();
    let mut settings = vec![
        format!("max_connections={}", db.max_connections()),
        format!(
            "superuser_reserved_connections={}",
            db.superuser_reserved_connections()
        ),
    ];
    if spec.target().kind() == TargetKind::Swarm {
        settings.extend([
            "tcp_keepalives_idle=10".to_string(),
            "tcp_keepalives_interval=5".to_string(),
            "tcp_keepalives_count=3".to_string(),
        ]);
    }
    std::iter::once("postgres".to_string())
        .chain(settings.into_iter().flat_map(|s| ["-c".to_string(), s]))
        .collect()
}

/// What the spec calls for, given the images and the final nginx config.
pub fn model(spec: &ClusterSpec, images: &Images, nginx_conf: String) -> Model {
    let n = Names::of(spec);
    let db = &spec.database();
    let mut units = vec![Unit {
        slot: Slot::Postgres,
        name: n.postgres(),
        image: images.postgres.clone(),
        user: names::POSTGRES_USER,
        command: postgres_command(spec),
        env: vec![
            ("POSTGRES_USER".into(), db.user().to_string()),
            ("POSTGRES_DB".into(), db.name().to_string()),
            (
                "POSTGRES_PASSWORD_FILE".into(),
                Secret::DatabasePassword.path().into(),
            ),
        ],
        secrets: vec![SecretFile {
            secret: Secret::DatabasePassword,
        }],
        publish: None,
        health: Some(Health::service(
            spec,
            [
                "CMD",
                "pg_isready",
                "-h",
                "127.0.0.1",
                "-U",
                db.user().as_str(),
                "-d",
                db.name().as_str(),
            ]
            .map(String::from)
            .to_vec(),
        )),
        stop_signal: "SIGINT",
        stop_grace: Duration::from_secs(10),
        restart: true,
        volume: Some((n.volume(), "/var/lib/postgresql/data")),
        fingerprint: fp(&[
            ("image", images.postgres.clone()),
            ("max_connections", db.max_connections().to_string()),
            (
                "superuser_reserved_connections",
                db.superuser_reserved_connections().to_string(),
            ),
            ("user", db.user().to_string()),
            ("database", db.name().to_string()),
        ])
        .into_iter()
        .chain(
            (spec.target().kind() == TargetKind::Swarm)
                .then(|| ("tcp_keepalives".to_string(), "10s+3×5s".to_string())),
        )
        .collect(),
    }];
    if let (Some(_), Some(image)) = (&spec.redis(), &images.redis) {
        units.push(Unit {
            slot: Slot::Redis,
            name: n.redis(),
            image: image.clone(),
            user: names::REDIS_USER,
            command: [
                "redis-server",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(String::from)
            .to_vec(),
            env: Vec::new(),
            secrets: Vec::new(),
            publish: None,
            health: Some(Health::service(
                spec,
                ["CMD", "redis-cli", "ping"].map(String::from).to_vec(),
            )),
            stop_signal: "SIGTERM",
            stop_grace: Duration::from_secs(10),
            restart: true,
            volume: None,
            fingerprint: fp(&[("image", image.clone())]),
        });
    }
    for i in NodeIndex::first(spec.app().nodes()) {
        units.push(node_unit(spec, images, Slot::Node(i), n.node(i), "serve"));
    }
    units.push(Unit {
        slot: Slot::Balancer,
        name: n.balancer(),
        image: images.balancer.clone(),
        user: names::NGINX_USER,
        command: Vec::new(),
        env: Vec::new(),
        secrets: Vec::new(),
        publish: Some(Published {
            host_ip: spec.balancer().bind(),
            host_port: spec.balancer().port(),
            container_port: names::BALANCER_LISTEN_PORT,
        }),
        health: Some(Health::service(
            spec,
            [
                "CMD".to_string(),
                "bash".into(),
                "-c".into(),
                node_contract::probe_script(names::BALANCER_LISTEN_PORT, "/lb/health"),
            ]
            .to_vec(),
        )),
        stop_signal: "SIGQUIT",
        stop_grace: Duration::from_secs(10),
        restart: true,
        volume: None,
        fingerprint: fp(&[
            ("image", images.balancer.clone()),
            ("port", spec.balancer().port().to_string()),
            ("bind", spec.balancer().bind().to_string()),
        ]),
    });
    let migrate = node_unit(spec, images, Slot::Migrate, n.migrate(), "migrate");
    Model {
        network: n.network(),
        volume: n.volume(),
        units,
        migrate,
        names: n,
        nginx_conf,
    }
}

/// The nodes' names, in order: the balancer's upstream once converged.
pub fn node_names(spec: &ClusterSpec) -> Vec<String> {
    let n = Names::of(spec);
    NodeIndex::first(spec.app().nodes())
        .map(|i| n.node(i))
        .collect()
}
