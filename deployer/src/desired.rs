//! The desired state: every container the spec calls for, each with a
//! fingerprint (the values it is made from) whose hash is stored as a label.
//! A changed fingerprint is a reason to replace; the changed keys are the reason.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ClusterSpec, LogFormat};
use crate::names::{self, Names, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, LABEL_SPEC_HASH};
use crate::render;

/// The label holding the fingerprint itself (non-secret values only), so a
/// plan can say what changed.
pub const LABEL_FINGERPRINT: &str = "io.deployer.fingerprint";

pub const SECRETS_DIR: &str = "/run/secrets";

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
        [
            Role::Postgres,
            Role::Redis,
            Role::App,
            Role::Balancer,
            Role::Migrate,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Image references resolved to the engine's image IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub app: String,
    pub postgres: String,
    pub redis: Option<String>,
    pub balancer: String,
}

pub type Fingerprint = BTreeMap<String, String>;

pub fn hash(fp: &Fingerprint) -> String {
    let json = serde_json::to_string(fp).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..8])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredContainer {
    pub name: String,
    pub role: Role,
    pub node: Option<u32>,
    pub fingerprint: Fingerprint,
}

impl DesiredContainer {
    pub fn hash(&self) -> String {
        hash(&self.fingerprint)
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub network: String,
    pub volume: String,
    pub containers: Vec<DesiredContainer>,
    /// The balancer's config once converged: byte for byte generated/nginx.conf.
    pub nginx_conf: String,
}

impl Desired {
    pub fn get(&self, name: &str) -> Option<&DesiredContainer> {
        self.containers.iter().find(|c| c.name == name)
    }
    pub fn nodes(&self) -> impl Iterator<Item = &DesiredContainer> {
        self.containers.iter().filter(|c| c.role == Role::App)
    }
}

fn fp(pairs: &[(&str, String)]) -> Fingerprint {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// What the spec calls for, given the resolved image IDs and the final nginx config.
pub fn desired(spec: &ClusterSpec, images: &Images, nginx_conf: String) -> Desired {
    let n = Names::of(spec);
    let mut containers = vec![DesiredContainer {
        name: n.postgres(),
        role: Role::Postgres,
        node: None,
        fingerprint: fp(&[
            ("image", images.postgres.clone()),
            ("max_connections", spec.database.max_connections.to_string()),
            (
                "superuser_reserved_connections",
                spec.database.superuser_reserved_connections.to_string(),
            ),
            ("user", spec.database.user.to_string()),
            ("database", spec.database.name.to_string()),
        ]),
    }];
    if let (Some(_), Some(image)) = (&spec.redis, &images.redis) {
        containers.push(DesiredContainer {
            name: n.redis(),
            role: Role::Redis,
            node: None,
            fingerprint: fp(&[("image", image.clone())]),
        });
    }
    for i in 1..=spec.app.nodes {
        containers.push(DesiredContainer {
            name: n.node(i),
            role: Role::App,
            node: Some(i),
            fingerprint: node_fingerprint(spec, images, i),
        });
    }
    containers.push(DesiredContainer {
        name: n.balancer(),
        role: Role::Balancer,
        node: None,
        fingerprint: fp(&[
            ("image", images.balancer.clone()),
            ("port", spec.balancer.port.to_string()),
            ("bind", spec.balancer.bind.to_string()),
        ]),
    });
    Desired {
        network: n.network(),
        volume: n.volume(),
        containers,
        nginx_conf,
    }
}

fn node_fingerprint(spec: &ClusterSpec, images: &Images, i: u32) -> Fingerprint {
    let mut f = fp(&[
        ("image", images.app.clone()),
        ("port", spec.app.port.to_string()),
        ("pool_size", spec.app.pool_size.to_string()),
        ("job_workers", spec.app.job_workers.to_string()),
        ("log_format", log_format(spec).to_string()),
        ("redis", spec.redis.is_some().to_string()),
        (
            "database",
            format!("{}@{}", spec.database.user, spec.database.name),
        ),
    ]);
    if let Some(base) = spec.app.host_port_base {
        f.insert("host_port".into(), (base as u32 + i - 1).to_string());
    }
    for (k, v) in &spec.app.env {
        f.insert(format!("env.{k}"), v.clone());
    }
    f
}

fn log_format(spec: &ClusterSpec) -> &'static str {
    match spec.app.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    }
}

fn labels(spec: &ClusterSpec, c: &DesiredContainer) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (LABEL_CLUSTER.to_string(), spec.name.to_string()),
        (LABEL_ROLE.to_string(), c.role.as_str().to_string()),
        (LABEL_SPEC_HASH.to_string(), c.hash()),
        (
            LABEL_FINGERPRINT.to_string(),
            serde_json::to_string(&c.fingerprint).unwrap_or_default(),
        ),
    ]);
    if let Some(i) = c.node {
        l.insert(LABEL_NODE.to_string(), i.to_string());
    }
    l
}

/// Labels for the cluster's network and volume.
pub fn cluster_labels(spec: &ClusterSpec) -> HashMap<String, String> {
    HashMap::from([(LABEL_CLUSTER.to_string(), spec.name.to_string())])
}

fn health(cmd: Vec<String>) -> HealthConfig {
    const SECOND: i64 = 1_000_000_000;
    HealthConfig {
        test: Some(cmd),
        interval: Some(SECOND),
        timeout: Some(3 * SECOND),
        retries: Some(3),
        start_period: Some(0),
        ..Default::default()
    }
}

fn shell_health(script: String) -> HealthConfig {
    health(vec!["CMD".into(), "bash".into(), "-c".into(), script])
}

/// Attached to the cluster's network, where the container's name resolves
/// (Docker's embedded DNS; a rename updates it). No aliases: a replacement node
/// must never share a name with the node it replaces.
fn network(spec: &ClusterSpec) -> NetworkingConfig {
    let n = Names::of(spec);
    NetworkingConfig {
        endpoints_config: Some(HashMap::from([(n.network(), EndpointSettings::default())])),
    }
}

fn restart() -> Option<RestartPolicy> {
    Some(RestartPolicy {
        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
        maximum_retry_count: None,
    })
}

/// The app's environment (no secrets: those are files under /run/secrets).
pub fn app_env(spec: &ClusterSpec, node_name: &str) -> Vec<String> {
    let n = Names::of(spec);
    let mut env = vec![
        format!(
            "DATABASE_URL=postgres://{}@{}:5432/{}",
            spec.database.user,
            n.postgres(),
            spec.database.name
        ),
        format!("DATABASE_PASSWORD_FILE={SECRETS_DIR}/db_password"),
        format!("JWT_SECRET_FILE={SECRETS_DIR}/jwt_secret"),
        format!("DATABASE_POOL_SIZE={}", spec.app.pool_size),
        format!("NODE_NAME={node_name}"),
        format!("PORT={}", spec.app.port),
        format!("JOB_WORKERS={}", spec.app.job_workers),
        format!("LOG_FORMAT={}", log_format(spec)),
        format!(
            "SHUTDOWN_TIMEOUT_SECS={}",
            spec.rollout.stop_grace_seconds.saturating_sub(2).max(1)
        ),
    ];
    if spec.redis.is_some() {
        env.push(format!("REDIS_URL=redis://{}:6379", n.redis()));
    }
    for (k, v) in &spec.app.env {
        env.push(format!("{k}={v}"));
    }
    env
}

/// The container to create for `c` (its name is given at creation: a migration
/// runs under its own name).
pub fn create_body(
    spec: &ClusterSpec,
    images: &Images,
    c: &DesiredContainer,
) -> ContainerCreateBody {
    let n = Names::of(spec);
    let labels = Some(labels(spec, c));
    match c.role {
        Role::Postgres => ContainerCreateBody {
            image: Some(images.postgres.clone()),
            user: Some(names::POSTGRES_USER_ID.to_string()),
            cmd: Some(vec![
                "postgres".into(),
                "-c".into(),
                format!("max_connections={}", spec.database.max_connections),
                "-c".into(),
                format!(
                    "superuser_reserved_connections={}",
                    spec.database.superuser_reserved_connections
                ),
            ]),
            env: Some(vec![
                format!("POSTGRES_USER={}", spec.database.user),
                format!("POSTGRES_DB={}", spec.database.name),
                format!("POSTGRES_PASSWORD_FILE={SECRETS_DIR}/db_password"),
            ]),
            healthcheck: Some(health(vec![
                "CMD".into(),
                "pg_isready".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-U".into(),
                spec.database.user.to_string(),
                "-d".into(),
                spec.database.name.to_string(),
            ])),
            labels,
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:/var/lib/postgresql/data", n.volume())]),
                restart_policy: restart(),
                ..Default::default()
            }),
            networking_config: Some(network(spec)),
            ..Default::default()
        },
        Role::Redis => ContainerCreateBody {
            image: images.redis.clone(),
            user: Some(names::REDIS_USER.to_string()),
            cmd: Some(
                [
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
            ),
            healthcheck: Some(health(
                ["CMD", "redis-cli", "ping"].map(String::from).to_vec(),
            )),
            labels,
            host_config: Some(HostConfig {
                restart_policy: restart(),
                ..Default::default()
            }),
            networking_config: Some(network(spec)),
            ..Default::default()
        },
        Role::App | Role::Migrate => {
            let node_name = c.node.map(|i| n.node(i)).unwrap_or_else(|| n.migrate());
            let port_bindings = c
                .fingerprint
                .get("host_port")
                .filter(|_| c.role == Role::App)
                .map(|p| {
                    HashMap::from([(
                        format!("{}/tcp", spec.app.port),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(p.clone()),
                        }]),
                    )])
                });
            ContainerCreateBody {
                image: Some(images.app.clone()),
                user: Some(names::APP_USER.to_string()),
                cmd: Some(if c.role == Role::App {
                    vec!["app".into(), "serve".into()]
                } else {
                    vec!["app".into(), "migrate".into()]
                }),
                env: Some(app_env(spec, &node_name)),
                healthcheck: (c.role == Role::App)
                    .then(|| shell_health(render::app_healthcheck(spec.app.port))),
                stop_timeout: Some(spec.rollout.stop_grace_seconds as i64),
                labels,
                host_config: Some(HostConfig {
                    restart_policy: (c.role == Role::App).then(restart).flatten(),
                    port_bindings,
                    ..Default::default()
                }),
                networking_config: Some(network(spec)),
                ..Default::default()
            }
        }
        Role::Balancer => ContainerCreateBody {
            image: Some(images.balancer.clone()),
            user: Some(names::NGINX_USER.to_string()),
            exposed_ports: Some(vec![format!("{}/tcp", names::BALANCER_LISTEN_PORT)]),
            healthcheck: Some(shell_health(render::http_probe(
                names::BALANCER_LISTEN_PORT,
                "/lb/health",
            ))),
            labels,
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    format!("{}/tcp", names::BALANCER_LISTEN_PORT),
                    Some(vec![PortBinding {
                        host_ip: Some(spec.balancer.bind.to_string()),
                        host_port: Some(spec.balancer.port.to_string()),
                    }]),
                )])),
                restart_policy: restart(),
                ..Default::default()
            }),
            networking_config: Some(network(spec)),
            ..Default::default()
        },
    }
}
