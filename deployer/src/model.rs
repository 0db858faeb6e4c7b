//! The one desired model: every unit (container, or later service) the spec
//! calls for, target-neutral. Each unit carries everything a target needs to
//! realise it — image, user, command, environment, secret files, ports, health
//! check, stop signal and grace — and a fingerprint of the values it is made
//! from. The Docker target, the compose file and the next targets are all
//! derived from this one value; app nodes are described by the
//! [`NodeContract`] the app itself parses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use node_contract::{HealthCheck, NodeContract, Secret};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ClusterSpec, PoolerSpec, TargetKind};
use crate::names::{self, Names, NodeIndex, Role, Slot};
pub use crate::secrets::SecretFile;

/// The images each role runs: references (`render`) or the engine's image IDs (`apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Images {
    pub app: String,
    pub postgres: String,
    pub redis: Option<String>,
    /// PgBouncer's, when the spec has a pooler.
    pub pooler: Option<String>,
    pub balancer: String,
}

impl Images {
    /// The references cluster.toml names (what a compose file pulls).
    pub fn refs(spec: &ClusterSpec) -> Images {
        Images {
            app: spec.app().image().to_string(),
            postgres: spec.database().image().to_string(),
            redis: spec.redis().map(|r| r.image().to_string()),
            pooler: spec.database().pooler().map(|p| p.image().to_string()),
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
    /// Between checks while the container starts (until its first passing check, within
    /// `start_period`): a new container is seen healthy within a second of being ready, while
    /// the steady `interval` stays cheap. Engines with API 1.44 (Docker 25) and later; older
    /// ones check at `interval` from the start. Compose files cannot say it before Compose 2.20,
    /// so generated/docker-compose.yml does not.
    pub start_interval: Duration,
}

/// [`Health::start_interval`].
pub const START_INTERVAL: Duration = Duration::from_secs(1);

impl Health {
    /// The service containers' check (PostgreSQL, Redis, the balancer): the same
    /// rhythm as a node's.
    fn service(spec: &ClusterSpec, test: Vec<String>) -> Health {
        let node = HealthCheck::node();
        Health {
            test,
            interval: spec.rollout().health_interval(),
            timeout: node.timeout,
            retries: node.retries,
            start_period: spec.rollout().health_timeout(),
            start_interval: START_INTERVAL,
        }
    }

    fn of_node(check: &HealthCheck, port: u16) -> Health {
        Health {
            test: check.command(port),
            interval: check.interval,
            timeout: check.timeout,
            retries: check.retries,
            start_period: check.start_period,
            start_interval: START_INTERVAL,
        }
    }
}

/// A port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// Docker's embedded DNS server, inside every container on a user-defined network: the single
/// engine's bridge network and Swarm's overlay networks alike.
pub const EMBEDDED_DNS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));

/// How often the balancer asks DNS again; a node that leaves DNS gets no new request after this.
/// The drain of a rollout must be at least this long.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(1);

/// How the balancer finds the nodes: by DNS, asked again every `valid`, so nodes join and leave
/// without a reload. Every address a name answers with is one node. Target-neutral: each target
/// says which names stand for its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// The names the balancer resolves. Single engine: each node's container name (a node
    /// leaves DNS by being renamed `<node>-old`, and joins by being renamed from `<node>-new`
    /// once its health gate passed). Swarm: `tasks.<app service>`, every running task.
    pub names: Vec<String>,
    /// The port every node listens on.
    pub port: u16,
    /// The DNS server the balancer asks.
    pub resolver: IpAddr,
    /// How long an answer is trusted.
    pub valid: Duration,
}

impl Upstream {
    /// The nodes behind `names`, asked of Docker's embedded DNS every [`RESOLVE_EVERY`].
    pub fn of(spec: &ClusterSpec, names: Vec<String>) -> Upstream {
        Upstream {
            names,
            port: spec.app().port(),
            resolver: EMBEDDED_DNS,
            valid: RESOLVE_EVERY,
        }
    }
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
    /// Placed at their paths, owned by the unit's user, mode 0400.
    pub secrets: Vec<SecretFile>,
    /// Ports published on the host (the balancer's HTTP and HTTPS, a node's with
    /// `host_port_base`).
    pub publish: Vec<Published>,
    pub health: Option<Health>,
    /// Sent to stop the process; SIGKILL follows after `stop_grace`.
    pub stop_signal: &'static str,
    pub stop_grace: Duration,
    /// Restarted by the engine when it exits (not the one-off migration).
    pub restart: bool,
    /// The named volume mounted at its path (PostgreSQL's data).
    pub volume: Option<(String, &'static str)>,
    /// The balancer's: how it finds the nodes (None for every other unit).
    pub upstream: Option<Upstream>,
    /// How the engine rotates the unit's log.
    pub logs: LogRotation,
    pub fingerprint: Fingerprint,
}

/// Log rotation as every target writes it: the json-file driver keeping at most `max_files`
/// files of `max_size_mb` each, so no container's log (the balancer's access log above all)
/// grows without bound, whatever the daemon's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogRotation {
    pub max_size_mb: u32,
    pub max_files: u32,
}

impl LogRotation {
    /// The log driver both targets name.
    pub const DRIVER: &'static str = "json-file";

    pub fn of(spec: &ClusterSpec) -> Self {
        Self {
            max_size_mb: spec.logs().max_size_mb(),
            max_files: spec.logs().max_files(),
        }
    }

    /// The driver's options: `max-size` (`10m`) and `max-file` (`3`).
    pub fn options(&self) -> [(&'static str, String); 2] {
        [
            ("max-size", format!("{}m", self.max_size_mb)),
            ("max-file", self.max_files.to_string()),
        ]
    }
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
    /// PostgreSQL, Redis (when on), the pooler (when on), the nodes in order, the balancer.
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
                publish: Vec::new(),
                health: None,
                stop_signal: "SIGTERM",
                stop_grace: Duration::ZERO,
                restart: false,
                volume: None,
                upstream: None,
                logs: LogRotation {
                    max_size_mb: 1,
                    max_files: 1,
                },
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

/// The URL of the cluster's database on `host` (no password: that is a secret file).
fn database_url(spec: &ClusterSpec, host: &str, port: u16) -> String {
    format!(
        "postgres://{}@{host}:{port}/{}",
        spec.database().user(),
        spec.database().name()
    )
}

/// What node `name` is given. With a pooler, queries go through it and the
/// connections that need a session of their own (LISTEN, the migration lock) go
/// to PostgreSQL directly.
pub fn node_contract(spec: &ClusterSpec, name: String) -> NodeContract {
    let n = Names::of(spec);
    let direct = database_url(spec, &n.postgres(), 5432);
    let (database_url, database_direct_url) = match pooler_name(spec) {
        None => (direct, None),
        Some(pooler) => (
            database_url(spec, &pooler, names::POOLER_PORT),
            Some(direct),
        ),
    };
    // On one engine the deployer takes a node out of the balancer (`drain_seconds`) before
    // it stops it. On a swarm the engine does: it drops the task from DNS, waits two seconds
    // and sends SIGTERM — a balancer that has not asked DNS again since still sends there.
    // So a task serves on for `drain_seconds` after SIGTERM, and is given that much more
    // before SIGKILL.
    let shutdown_delay = match spec.target().kind() {
        TargetKind::Docker => Duration::ZERO,
        TargetKind::Swarm => spec.rollout().drain(),
    };
    NodeContract {
        node_name: name,
        port: spec.app().port(),
        database_url,
        database_direct_url,
        pool_size: spec.app().pool_size(),
        job_workers: spec.app().job_workers(),
        log_format: spec.app().log_format(),
        shutdown_timeout: node_contract::shutdown_timeout_for(spec.rollout().stop_grace()),
        shutdown_delay,
        redis_url: spec.redis().map(|_| format!("redis://{}:6379", n.redis())),
        extra_env: spec.app().env().clone(),
        secrets: vec![Secret::DatabasePassword, Secret::JwtSecret],
        // Failures while a node starts (up to health_timeout) do not count:
        // Docker's own status, which compose waits on, agrees with the deployer's gate.
        health: HealthCheck {
            interval: spec.rollout().health_interval(),
            start_period: spec.rollout().health_timeout(),
            ..HealthCheck::node()
        },
        stop_signal: "SIGTERM",
        stop_grace: spec.rollout().stop_grace() + shutdown_delay,
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
    let publish: Vec<Published> = publish.into_iter().collect();
    // Only with a pooler, so turning it on (or off) rolls the nodes and an
    // existing cluster without one keeps its hashes.
    if spec.database().pooler().is_some() {
        fingerprint.insert("database_url".into(), contract.database_url.clone());
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
        secrets: contract.secrets.iter().map(|&s| s.into()).collect(),
        publish,
        health: serving.then(|| Health::of_node(&contract.health, contract.port)),
        stop_signal: contract.stop_signal,
        stop_grace: contract.stop_grace,
        restart: serving,
        volume: None,
        upstream: None,
        logs: LogRotation::of(spec),
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
        secrets: vec![SecretFile::DatabasePassword],
        publish: Vec::new(),
        health: Some(Health::service(spec, pg_isready(spec, None))),
        stop_signal: "SIGINT",
        stop_grace: Duration::from_secs(10),
        restart: true,
        volume: Some((n.volume(), "/var/lib/postgresql/data")),
        upstream: None,
        logs: LogRotation::of(spec),
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
            publish: Vec::new(),
            health: Some(Health::service(
                spec,
                ["CMD", "redis-cli", "ping"].map(String::from).to_vec(),
            )),
            stop_signal: "SIGTERM",
            stop_grace: Duration::from_secs(10),
            restart: true,
            volume: None,
            upstream: None,
            logs: LogRotation::of(spec),
            fingerprint: fp(&[("image", image.clone())]),
        });
    }
    if let (Some(pooler), Some(image)) = (spec.database().pooler(), &images.pooler) {
        units.push(pooler_unit(spec, pooler, image));
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
        secrets: balancer_secrets(spec),
        publish: balancer_ports(spec),
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
        upstream: Some(upstream(spec)),
        logs: LogRotation::of(spec),
        fingerprint: fp(&[
            ("image", images.balancer.clone()),
            ("port", spec.balancer().port().to_string()),
            ("bind", spec.balancer().bind().to_string()),
        ])
        .into_iter()
        // Only with HTTPS, so a cluster without it keeps its hashes. The certificate is not
        // part of it: a new one is a reload (the config names its fingerprint), not a new container.
        .chain(
            spec.balancer()
                .tls()
                .map(|t| ("https_port".to_string(), t.https_port().to_string())),
        )
        .collect(),
    });
    let mut migrate = node_unit(spec, images, Slot::Migrate, n.migrate(), "migrate");
    // A changed rotation is a reason to replace: the engine sets it when it creates a container.
    for unit in units.iter_mut().chain([&mut migrate]) {
        let [size, files] = unit.logs.options();
        unit.fingerprint
            .insert("logs".into(), format!("{}x{}", size.1, files.1));
        // The engine sets the check when it creates a container. Only when it is not the
        // default, so the containers of an existing cluster keep their hashes.
        let interval = spec.rollout().health_interval();
        let default = crate::config::default_health_interval(spec.target().kind());
        if unit.health.is_some() && interval != default {
            unit.fingerprint
                .insert("health_interval".into(), format!("{}s", interval.as_secs()));
        }
    }
    Model {
        network: n.network(),
        volume: n.volume(),
        units,
        migrate,
        names: n,
        nginx_conf,
    }
}

/// The balancer's ports on the host: HTTP (which redirects when there is HTTPS), and HTTPS.
fn balancer_ports(spec: &ClusterSpec) -> Vec<Published> {
    let b = spec.balancer();
    let http = Published {
        host_ip: b.bind(),
        host_port: b.port(),
        container_port: names::BALANCER_LISTEN_PORT,
    };
    let https = b.tls().map(|t| Published {
        host_ip: b.bind(),
        host_port: t.https_port(),
        container_port: names::BALANCER_TLS_LISTEN_PORT,
    });
    std::iter::once(http).chain(https).collect()
}

/// The balancer's files under `/run/secrets`: the certificate chain and its key, with HTTPS.
fn balancer_secrets(spec: &ClusterSpec) -> Vec<SecretFile> {
    match spec.balancer().tls() {
        Some(_) => vec![SecretFile::TlsCertificate, SecretFile::TlsKey],
        None => Vec::new(),
    }
}

/// The balancer's upstream once converged: on one engine each node by its
/// container name; on a swarm one name, `tasks.<app service>`, which Docker's
/// DNS answers with every running task, wherever it runs.
pub fn upstream(spec: &ClusterSpec) -> Upstream {
    match spec.target().kind() {
        TargetKind::Docker => Upstream::of(spec, node_names(spec)),
        TargetKind::Swarm => Upstream::of(
            spec,
            vec![format!("tasks.{}", Names::of(spec).app_service())],
        ),
    }
}

/// The health check of a unit that speaks PostgreSQL's protocol on 127.0.0.1 (at
/// `port`, else the default): `pg_isready` as the cluster's user, for its database.
fn pg_isready(spec: &ClusterSpec, port: Option<u16>) -> Vec<String> {
    let db = spec.database();
    let mut test: Vec<String> = ["CMD", "pg_isready", "-h", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    if let Some(port) = port {
        test.extend(["-p".to_string(), port.to_string()]);
    }
    test.extend([
        "-U".to_string(),
        db.user().to_string(),
        "-d".to_string(),
        db.name().to_string(),
    ]);
    test
}

/// PgBouncer's `max_prepared_statements`: protocol-level prepared statements it
/// keeps per server connection. sqlx prepares every query (and caches up to 100
/// per connection), so this must be on; PgBouncer re-prepares them on whichever
/// server connection a transaction lands on.
pub const POOLER_MAX_PREPARED_STATEMENTS: u32 = 200;

/// PgBouncer's environment: what the edoburu/pgbouncer image (and the local build
/// of it) writes its configuration from. Never a password: that is in AUTH_FILE.
fn pooler_env(spec: &ClusterSpec, pooler: &PoolerSpec) -> Vec<(String, String)> {
    let n = Names::of(spec);
    let db = spec.database();
    let pool = pooler.pool_size().to_string();
    [
        ("DB_HOST", n.postgres()),
        ("DB_PORT", "5432".to_string()),
        ("DB_NAME", db.name().to_string()),
        ("DB_USER", db.user().to_string()),
        ("LISTEN_PORT", names::POOLER_PORT.to_string()),
        ("AUTH_TYPE", "scram-sha-256".to_string()),
        ("AUTH_FILE", SecretFile::PoolerAuth.path().to_string()),
        ("POOL_MODE", "transaction".to_string()),
        ("DEFAULT_POOL_SIZE", pool.clone()),
        // The server side of the budget, enforced: never more than the pool.
        ("MAX_DB_CONNECTIONS", pool),
        ("MAX_CLIENT_CONN", pooler.max_client_conn().to_string()),
        (
            "MAX_PREPARED_STATEMENTS",
            POOLER_MAX_PREPARED_STATEMENTS.to_string(),
        ),
        (
            "IGNORE_STARTUP_PARAMETERS",
            "extra_float_digits".to_string(),
        ),
        // `SHOW POOLS` for `deployer status` and `verify`, as the database user.
        ("STATS_USERS", db.user().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The pooler's generation: a hash of its environment and image reference, so
/// any change to it is a new pooler under a new name (see [`names::PoolerGeneration`]).
fn pooler_generation(spec: &ClusterSpec, pooler: &PoolerSpec) -> names::PoolerGeneration {
    let mut made_of: Fingerprint = pooler_env(spec, pooler).into_iter().collect();
    made_of.insert("image".into(), pooler.image().to_string());
    let json = serde_json::to_string(&made_of).unwrap_or_default();
    let digest = Sha256::digest(json.as_bytes());
    names::PoolerGeneration::new(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// The pooler's name when the spec has one: `<cluster>-pooler-<generation>`.
pub fn pooler_name(spec: &ClusterSpec) -> Option<String> {
    let pooler = spec.database().pooler()?;
    Some(Names::of(spec).pooler(pooler_generation(spec, pooler)))
}

/// PgBouncer in transaction mode between the nodes and PostgreSQL, never
/// published. Configured through the environment the edoburu/pgbouncer image
/// (and the local build of it) reads; the password is only in its auth file.
fn pooler_unit(spec: &ClusterSpec, pooler: &PoolerSpec, image: &str) -> Unit {
    let n = Names::of(spec);
    let env = pooler_env(spec, pooler);
    let mut fingerprint: Fingerprint = env
        .iter()
        .filter(|(k, _)| k != "AUTH_FILE")
        .map(|(k, v)| (format!("env.{k}"), v.clone()))
        .collect();
    fingerprint.insert("image".into(), image.to_string());
    let generation = pooler_generation(spec, pooler);
    Unit {
        slot: Slot::Pooler(generation),
        name: n.pooler(generation),
        image: image.to_string(),
        user: names::POOLER_USER,
        // The image's own command: pgbouncer with the config its entrypoint writes.
        command: Vec::new(),
        env,
        secrets: vec![SecretFile::PoolerAuth],
        publish: Vec::new(),
        health: Some(Health::service(
            spec,
            pg_isready(spec, Some(names::POOLER_PORT)),
        )),
        // PgBouncer's safe shutdown: no new clients, exit once server connections are released.
        stop_signal: "SIGINT",
        stop_grace: Duration::from_secs(10),
        restart: true,
        volume: None,
        upstream: None,
        logs: LogRotation::of(spec),
        fingerprint,
    }
}

/// The nodes' names, in order: the balancer's upstream once converged.
pub fn node_names(spec: &ClusterSpec) -> Vec<String> {
    let n = Names::of(spec);
    NodeIndex::first(spec.app().nodes())
        .map(|i| n.node(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::fixtures::want;

    #[test]
    fn every_container_is_checked_at_the_files_health_interval() {
        let every = |m: &super::Model| -> Vec<(String, Duration)> {
            m.units
                .iter()
                .filter_map(|u| u.health.as_ref().map(|h| (u.name.clone(), h.interval)))
                .collect()
        };
        let extras = "[redis]\nenabled = true\n[database]\npooler = \"pgbouncer\"\n";
        let default = want(extras);
        let checked = every(&default);
        // PostgreSQL, Redis, the pooler, three nodes and the balancer.
        assert_eq!(checked.len(), 7, "{checked:?}");
        assert!(
            checked.iter().all(|(_, i)| *i == Duration::from_secs(5)),
            "{checked:?}"
        );

        let slow = want(&format!("{extras}[rollout]\nhealth_interval = 30\n"));
        let checked = every(&slow);
        assert!(
            checked.iter().all(|(_, i)| *i == Duration::from_secs(30)),
            "{checked:?}"
        );
        // A new interval replaces every container (the engine sets it at creation); the
        // default leaves the hashes of a cluster made before the key existed as they were.
        assert_eq!(slow.units.len(), default.units.len());
        for (d, s) in default.units.iter().zip(&slow.units) {
            assert_eq!(d.name, s.name);
            assert_ne!(d.hash(), s.hash(), "{}", d.name);
        }
        assert!(default
            .units
            .iter()
            .all(|u| !u.fingerprint.contains_key("health_interval")));

        // A swarm keeps checking every second unless told (its rollouts wait for the check).
        let swarm = "target = \"swarm\"\n[swarm]\nregistry = \"reg:5000\"\n\
                     database_host = \"h1\"\nbalancer_host = \"h2\"\n";
        let on_swarm = want(swarm);
        let checked = every(&on_swarm);
        assert!(
            checked.iter().all(|(_, i)| *i == Duration::from_secs(1)),
            "{checked:?}"
        );
        assert!(on_swarm
            .units
            .iter()
            .all(|u| !u.fingerprint.contains_key("health_interval")));
        let slow = want(&format!("{swarm}[rollout]\nhealth_interval = 5\n"));
        assert!(every(&slow)
            .iter()
            .all(|(_, i)| *i == Duration::from_secs(5)));
        assert!(slow
            .units
            .iter()
            .all(|u| u.fingerprint.contains_key("health_interval")));
    }
}
