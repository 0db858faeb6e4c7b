//! The validated cluster: what `cluster.toml` means once every value was checked.
//!
//! Types here are built by [`super::convert::from_raw`] (or the checked
//! constructors), so a name that reaches nginx, YAML or Docker is always a DNS
//! label, a port is always in range, a timeout is a [`Duration`], and the
//! connection budget always fits.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::budget::{Budget, BudgetInput, PoolerInput};

/// A lowercase DNS label (RFC 1123): `[a-z0-9-]`, starts with a letter, does not
/// end with `-`. Safe in a container name, a host name, an nginx directive and YAML.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DnsLabel(String);

impl DnsLabel {
    pub const MAX_LEN: usize = 40;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the name is empty".into());
        }
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "the name is {} characters long; at most {} fit, since container names add suffixes such as `-app-12`",
                s.chars().count(),
                Self::MAX_LEN
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            let shown = if c.is_control() || c.is_whitespace() {
                format!("{:?}", c)
            } else {
                format!("`{c}`")
            };
            return Err(format!(
                "the name contains {shown}; only lowercase letters a-z, digits and `-` are allowed"
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err("the name must start with a letter".into());
        }
        if s.ends_with('-') {
            return Err("the name must not end with `-`".into());
        }
        Ok(DnsLabel(s.to_string()))
    }

    /// A default written in the converter: known to be a label, so not re-checked
    /// in release builds.
    pub(super) fn known(s: &'static str) -> Self {
        debug_assert!(Self::parse(s).is_ok(), "{s}");
        DnsLabel(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Docker image reference such as `postgres:15-bookworm` or
/// `registry.example.com:5000/team/app:1.2@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 255 {
            return Err("an image reference has 1 to 255 characters".into());
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = d
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(format!("`{d}` is not a sha256 digest"));
            }
        }
        // The tag is what follows the last `:` after the last `/`.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(format!("`{tag}` is not a valid image tag"));
            }
        }
        let mut parts = name.split('/').peekable();
        let mut first = true;
        while let Some(part) = parts.next() {
            let is_registry = first
                && parts.peek().is_some()
                && (part.contains('.') || part.contains(':') || part == "localhost");
            first = false;
            let ok = if is_registry {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
            } else {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            };
            if !ok {
                return Err(format!(
                    "`{part}` is not a valid image name component (lowercase letters, digits, `.`, `_`, `-`)"
                ));
            }
        }
        Ok(ImageRef(s.to_string()))
    }

    /// A default written in the converter: known to be valid, so not re-checked
    /// in release builds.
    pub(super) fn known(s: &'static str) -> Self {
        debug_assert!(Self::parse(s).is_ok(), "{s}");
        ImageRef(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastConn,
    IpHash,
    Random,
}

/// A key whose value is one of a few names (`strategy`, `access_log`): the
/// names and what each means, in one table.
pub trait Choice: Copy + PartialEq + 'static {
    const ALL: &'static [(&'static str, Self)];

    fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(n, _)| n)
    }
}

impl Choice for Strategy {
    const ALL: &'static [(&'static str, Strategy)] = &[
        ("round_robin", Strategy::RoundRobin),
        ("least_conn", Strategy::LeastConn),
        ("ip_hash", Strategy::IpHash),
        ("random", Strategy::Random),
    ];
}

/// How a node writes its logs: the node contract's own type.
pub use node_contract::LogFormat;

/// Which engine the cluster runs on (`[cluster] target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// One Docker engine: one container per unit.
    Docker,
    /// A Docker Swarm: one service per role, driven through a manager.
    Swarm,
}

impl Choice for TargetKind {
    const ALL: &'static [(&'static str, TargetKind)] =
        &[("docker", TargetKind::Docker), ("swarm", TargetKind::Swarm)];
}

/// Where the cluster runs, with what that engine needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetSpec {
    /// The engine `DOCKER_HOST` names, or the local socket.
    Docker,
    Swarm(SwarmSpec),
}

impl TargetSpec {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSpec::Docker => TargetKind::Docker,
            TargetSpec::Swarm(_) => TargetKind::Swarm,
        }
    }

    pub fn swarm(&self) -> Option<&SwarmSpec> {
        match self {
            TargetSpec::Swarm(s) => Some(s),
            TargetSpec::Docker => None,
        }
    }
}

/// A Docker engine address in the forms the docker CLI takes in `DOCKER_HOST`:
/// `unix:///path`, `tcp://host:port`, `http://…`, `https://…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EngineAddress(String);

impl EngineAddress {
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(
                "it has no scheme; write `tcp://host:2376` or `unix:///var/run/docker.sock`".into(),
            );
        };
        if !["unix", "tcp", "http", "https"].contains(&scheme) {
            return Err(format!(
                "the scheme `{}` is not one of unix, tcp, http, https",
                scheme.escape_debug()
            ));
        }
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the address after the scheme is empty or holds spaces".into());
        }
        if scheme == "unix" && !rest.starts_with('/') {
            return Err("a unix socket address is absolute: `unix:///var/run/docker.sock`".into());
        }
        Ok(EngineAddress(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A host name or address as a Swarm node's hostname or a registry's host:
/// letters, digits, `.`, `-` and `_`, optionally with `:port`. Safe in a
/// placement constraint and an image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HostName(String);

impl HostName {
    pub fn parse(s: &str, port_allowed: bool) -> Result<Self, String> {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if port_allowed => (h, Some(p)),
            _ => (s, None),
        };
        if host.is_empty() || host.len() > 253 {
            return Err("a host name has 1 to 253 characters".into());
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(format!(
                "it contains {:?}; a host name has letters, digits, `.`, `-` and `_`{}",
                c,
                if port_allowed { ", then `:port`" } else { "" }
            ));
        }
        if let Some(p) = port {
            if !p.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(format!("`{}` is not a port", p.escape_debug()));
            }
        }
        Ok(HostName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[swarm]`: the manager to drive, the registry the hosts pull the app image
/// from, and where the stateful units are placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmSpec {
    /// None: `DOCKER_HOST`, as the docker CLI does.
    pub(in crate::config) manager: Option<EngineAddress>,
    pub(in crate::config) registry: HostName,
    pub(in crate::config) push_registry: Option<HostName>,
    pub(in crate::config) database_host: HostName,
    pub(in crate::config) balancer_host: HostName,
}

impl SwarmSpec {
    pub fn manager(&self) -> Option<&EngineAddress> {
        self.manager.as_ref()
    }

    /// The registry (host[:port]) every host pulls the app image from.
    pub fn registry(&self) -> &HostName {
        &self.registry
    }

    /// Where `deployer build` pushes (the same registry under the name this
    /// machine reaches it by).
    pub fn push_registry(&self) -> &HostName {
        self.push_registry.as_ref().unwrap_or(&self.registry)
    }

    /// The node (hostname) PostgreSQL and its volume live on.
    pub fn database_host(&self) -> &HostName {
        &self.database_host
    }

    /// The node nginx publishes the balancer's port on (host mode).
    pub fn balancer_host(&self) -> &HostName {
        &self.balancer_host
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSpec {
    pub(in crate::config) name: DnsLabel,
    pub(in crate::config) target: TargetSpec,
    pub(in crate::config) app: AppSpec,
    pub(in crate::config) database: DatabaseSpec,
    pub(in crate::config) redis: Option<RedisSpec>,
    pub(in crate::config) balancer: BalancerSpec,
    pub(in crate::config) rollout: RolloutSpec,
    pub(in crate::config) logs: LogsSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSpec {
    pub(in crate::config) nodes: u32,
    pub(in crate::config) pool_size: u32,
    pub(in crate::config) port: u16,
    pub(in crate::config) image: ImageRef,
    pub(in crate::config) job_workers: u32,
    pub(in crate::config) log_format: LogFormat,
    /// Publish node `i` (1-based) on 127.0.0.1:`host_port_base + i - 1`.
    pub(in crate::config) host_port_base: Option<u16>,
    /// Extra environment for every node (names checked, values any text).
    pub(in crate::config) env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseSpec {
    pub(in crate::config) max_connections: u32,
    pub(in crate::config) superuser_reserved_connections: u32,
    pub(in crate::config) reserve_connections: u32,
    pub(in crate::config) image: ImageRef,
    pub(in crate::config) name: DnsLabel,
    pub(in crate::config) user: DnsLabel,
    /// PgBouncer between the nodes and PostgreSQL, when `pooler = "pgbouncer"`.
    pub(in crate::config) pooler: Option<PoolerSpec>,
}

/// A connection pooler between the nodes and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolerKind {
    /// No pooler: nodes connect to PostgreSQL directly (the default).
    None,
    /// PgBouncer in transaction mode.
    Pgbouncer,
}

impl Choice for PoolerKind {
    const ALL: &'static [(&'static str, PoolerKind)] = &[
        ("none", PoolerKind::None),
        ("pgbouncer", PoolerKind::Pgbouncer),
    ];
}

/// The PgBouncer image a real user pulls: PgBouncer 1.24.1 (Debian trixie's version,
/// which `scripts/build-images.sh` builds locally under this ref when no registry answers).
pub const POOLER_IMAGE: &str = "edoburu/pgbouncer:v1.24.1-p1";

/// PgBouncer in front of PostgreSQL, in transaction mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolerSpec {
    /// Server connections PgBouncer opens to PostgreSQL at most.
    pub(in crate::config) pool_size: u32,
    /// Client connections PgBouncer accepts at most.
    pub(in crate::config) max_client_conn: u32,
    pub(in crate::config) image: ImageRef,
}

/// Read-only: a spec is only ever built by validation.
impl PoolerSpec {
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    pub fn max_client_conn(&self) -> u32 {
        self.max_client_conn
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisSpec {
    pub(in crate::config) image: ImageRef,
}

/// How the balancer writes its access log (one line per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    /// Buffered like `Buffered`, but only the lines worth reading: every answer that is not
    /// 2xx/3xx, every request slower than a second, every request that brought its own
    /// `X-Request-Id`, and 1 in 100 of the rest. The default: within noise of no log.
    Sampled,
    /// Every request, its line gathered in a 64 KiB buffer written at least every second:
    /// the engine still copies each line into the container's log (~3 µs of its CPU a line).
    Buffered,
    /// One write per request through the container's log pipe: lines appear at
    /// once, at about half the throughput.
    Unbuffered,
    /// No access log.
    Off,
}

impl Choice for AccessLog {
    const ALL: &'static [(&'static str, AccessLog)] = &[
        ("sampled", AccessLog::Sampled),
        ("buffered", AccessLog::Buffered),
        ("unbuffered", AccessLog::Unbuffered),
        ("off", AccessLog::Off),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalancerSpec {
    pub(in crate::config) strategy: Strategy,
    pub(in crate::config) port: u16,
    pub(in crate::config) bind: IpAddr,
    pub(in crate::config) image: ImageRef,
    pub(in crate::config) max_fails: u32,
    #[serde(serialize_with = "whole_seconds")]
    pub(in crate::config) fail_timeout: Duration,
    pub(in crate::config) keepalive: u32,
    #[serde(serialize_with = "whole_seconds")]
    pub(in crate::config) connect_timeout: Duration,
    #[serde(serialize_with = "whole_seconds")]
    pub(in crate::config) read_timeout: Duration,
    pub(in crate::config) worker_connections: u32,
    pub(in crate::config) access_log: AccessLog,
    /// HTTPS, when `tls_cert` and `tls_key` are set.
    pub(in crate::config) tls: Option<TlsSpec>,
}

/// The balancer's HTTPS: the certificate chain and key (read and checked: they parse and
/// belong together), the port it is published on, and HSTS. The HTTP `port` then redirects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsSpec {
    /// `tls_cert` and `tls_key` as resolved against cluster.toml's directory.
    pub(in crate::config) cert_file: std::path::PathBuf,
    pub(in crate::config) key_file: std::path::PathBuf,
    pub(in crate::config) https_port: u16,
    pub(in crate::config) hsts_max_age: u32,
    pub(in crate::config) certificate: crate::tls::Certificate,
    /// Never serialized, never printed by `Debug`.
    #[serde(skip)]
    pub(in crate::config) key: crate::tls::PrivateKey,
}

/// Read-only: a spec is only ever built by validation.
impl TlsSpec {
    pub fn cert_file(&self) -> &std::path::Path {
        &self.cert_file
    }

    pub fn key_file(&self) -> &std::path::Path {
        &self.key_file
    }

    /// The host port HTTPS is published on.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// `Strict-Transport-Security: max-age=…` in seconds (0 tells browsers to forget it).
    pub fn hsts_max_age(&self) -> u32 {
        self.hsts_max_age
    }

    pub fn certificate(&self) -> &crate::tls::Certificate {
        &self.certificate
    }

    pub fn key(&self) -> &crate::tls::PrivateKey {
        &self.key
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutSpec {
    pub(in crate::config) max_surge: u32,
    /// How long a node keeps serving in-flight requests after leaving the balancer.
    #[serde(rename = "drain_seconds", serialize_with = "whole_seconds")]
    pub(in crate::config) drain: Duration,
    /// Between SIGTERM and SIGKILL.
    #[serde(rename = "stop_grace_seconds", serialize_with = "whole_seconds")]
    pub(in crate::config) stop_grace: Duration,
    /// How long a new container may take to pass its health check.
    #[serde(serialize_with = "whole_seconds")]
    pub(in crate::config) health_timeout: Duration,
    /// Between two of the engine's health checks of a container, once it has started.
    #[serde(serialize_with = "whole_seconds")]
    pub(in crate::config) health_interval: Duration,
}

/// Read-only: a spec is only ever built by validation.
impl ClusterSpec {
    pub fn name(&self) -> &DnsLabel {
        &self.name
    }

    pub fn target(&self) -> &TargetSpec {
        &self.target
    }

    /// Where the balancer answers: `bind:port` on one engine, the balancer's
    /// host on a swarm (host-mode publishing binds every address there).
    pub fn balancer_address(&self) -> String {
        self.balancer_address_at(self.balancer.port)
    }

    /// The balancer's address at `port` (the HTTP port, or the HTTPS port).
    fn balancer_address_at(&self, port: u16) -> String {
        match &self.target {
            TargetSpec::Docker => std::net::SocketAddr::new(self.balancer.bind, port).to_string(),
            TargetSpec::Swarm(s) => format!("{}:{}", s.balancer_host, port),
        }
    }

    /// The URL users reach the cluster at: `https://…:https_port/` with TLS, else
    /// `http://…:port/`.
    pub fn balancer_url(&self) -> String {
        match &self.balancer.tls {
            Some(t) => format!("https://{}/", self.balancer_address_at(t.https_port)),
            None => format!("http://{}/", self.balancer_address()),
        }
    }

    /// The host users reach the balancer by: the bind address (None when it is every
    /// address), or the balancer's host on a swarm.
    pub fn balancer_host(&self) -> Option<String> {
        match &self.target {
            TargetSpec::Docker if self.balancer.bind.is_unspecified() => None,
            TargetSpec::Docker => Some(self.balancer.bind.to_string()),
            TargetSpec::Swarm(s) => Some(s.balancer_host.to_string()),
        }
    }

    pub fn app(&self) -> &AppSpec {
        &self.app
    }

    pub fn database(&self) -> &DatabaseSpec {
        &self.database
    }

    pub fn redis(&self) -> Option<&RedisSpec> {
        self.redis.as_ref()
    }

    pub fn balancer(&self) -> &BalancerSpec {
        &self.balancer
    }

    pub fn rollout(&self) -> &RolloutSpec {
        &self.rollout
    }

    pub fn logs(&self) -> &LogsSpec {
        &self.logs
    }
}

/// Log rotation for every container: the engine keeps at most `max_files` files of
/// `max_size_mb` each per container (json-file's `max-size` / `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogsSpec {
    pub(in crate::config) max_size_mb: u32,
    pub(in crate::config) max_files: u32,
}

impl LogsSpec {
    pub fn max_size_mb(&self) -> u32 {
        self.max_size_mb
    }

    pub fn max_files(&self) -> u32 {
        self.max_files
    }
}

/// Read-only: a spec is only ever built by validation.
impl AppSpec {
    /// Extra environment for every node (names checked, values any text).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    pub fn job_workers(&self) -> u32 {
        self.job_workers
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    pub fn host_port_base(&self) -> Option<u16> {
        self.host_port_base
    }
}

/// Read-only: a spec is only ever built by validation.
impl DatabaseSpec {
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    pub fn superuser_reserved_connections(&self) -> u32 {
        self.superuser_reserved_connections
    }

    pub fn reserve_connections(&self) -> u32 {
        self.reserve_connections
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    pub fn name(&self) -> &DnsLabel {
        &self.name
    }

    pub fn user(&self) -> &DnsLabel {
        &self.user
    }

    /// PgBouncer between the nodes and PostgreSQL, if configured.
    pub fn pooler(&self) -> Option<&PoolerSpec> {
        self.pooler.as_ref()
    }
}

/// Read-only: a spec is only ever built by validation.
impl RedisSpec {
    pub fn image(&self) -> &ImageRef {
        &self.image
    }
}

/// Read-only: a spec is only ever built by validation.
impl BalancerSpec {
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bind(&self) -> IpAddr {
        self.bind
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    pub fn max_fails(&self) -> u32 {
        self.max_fails
    }

    pub fn fail_timeout(&self) -> Duration {
        self.fail_timeout
    }

    pub fn keepalive(&self) -> u32 {
        self.keepalive
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    pub fn worker_connections(&self) -> u32 {
        self.worker_connections
    }

    pub fn access_log(&self) -> AccessLog {
        self.access_log
    }

    /// HTTPS, when configured.
    pub fn tls(&self) -> Option<&TlsSpec> {
        self.tls.as_ref()
    }
}

/// `[rollout] health_interval` when the file does not say: the nodes' contract (5 s) on one
/// engine, where the deployer's gate probes new containers itself; 1 s on a swarm, where the
/// orchestrator counts a new task as started only at its first passing check, and engines
/// before Docker 25 make that wait the whole interval (no `start_interval`). A longer interval
/// on a swarm also made connections through the lab's balancer reset while the pooler was
/// turned off under load (not explained yet), so a swarm keeps the 1 s it was tested with.
pub fn default_health_interval(target: TargetKind) -> Duration {
    match target {
        TargetKind::Docker => node_contract::HealthCheck::node().interval,
        TargetKind::Swarm => Duration::from_secs(1),
    }
}

/// Read-only: a spec is only ever built by validation.
impl RolloutSpec {
    pub fn max_surge(&self) -> u32 {
        self.max_surge
    }

    pub fn drain(&self) -> Duration {
        self.drain
    }

    pub fn stop_grace(&self) -> Duration {
        self.stop_grace
    }

    pub fn health_timeout(&self) -> Duration {
        self.health_timeout
    }

    pub fn health_interval(&self) -> Duration {
        self.health_interval
    }
}

/// Writes a duration as whole seconds, the unit `cluster.toml` uses.
fn whole_seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl ClusterSpec {
    /// The connection budget of this cluster (see [`crate::budget`]).
    pub fn budget(&self) -> Budget {
        Budget::compute(&BudgetInput {
            nodes: self.app.nodes,
            pool_size: self.app.pool_size,
            max_surge: self.rollout.max_surge,
            reserve: self.database.reserve_connections,
            max_connections: self.database.max_connections,
            superuser_reserved: self.database.superuser_reserved_connections,
            pooler: self.database.pooler.as_ref().map(|p| PoolerInput {
                server_pool: p.pool_size,
                max_clients: p.max_client_conn,
            }),
        })
    }
}

/// The most nodes a cluster may have: beyond this a single engine is the wrong tool.
pub const MAX_NODES: i64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(DnsLabel::parse("demo").is_ok());
        assert!(DnsLabel::parse("demo-2").is_ok());
        for bad in [
            "", "Demo", "de mo", "de;mo", "de{mo", "-demo", "demo-", "1demo", "dé", "de\nmo", "a_b",
        ] {
            assert!(DnsLabel::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DnsLabel::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn image_refs() {
        for ok in [
            "postgres:15-bookworm",
            "nginx",
            "library/nginx:1.22",
            "localhost:5000/team/app:v1.2",
            "registry.example.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:1 2",
            "ng;inx",
            "a//b",
            "nginx@sha256:zz",
            "x:{y}",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
