//! The validated cluster: what `cluster.toml` means once every value was checked.
//!
//! Types here can only be built through [`from_raw`] (or the checked constructors),
//! so a name that reaches nginx, YAML or Docker is always a DNS label, a port is
//! always in range, and the connection budget always fits.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use serde::Serialize;
use toml::Spanned;

use super::diagnostic::Diagnostic;
use super::raw::*;
use crate::budget::Budget;

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

impl Strategy {
    pub const ALL: [(&'static str, Strategy); 4] = [
        ("round_robin", Strategy::RoundRobin),
        ("least_conn", Strategy::LeastConn),
        ("ip_hash", Strategy::IpHash),
        ("random", Strategy::Random),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("round_robin")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSpec {
    pub name: DnsLabel,
    pub app: AppSpec,
    pub database: DatabaseSpec,
    pub redis: Option<RedisSpec>,
    pub balancer: BalancerSpec,
    pub rollout: RolloutSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSpec {
    pub nodes: u32,
    pub pool_size: u32,
    pub port: u16,
    pub image: ImageRef,
    pub job_workers: u32,
    pub log_format: LogFormat,
    /// Publish node `i` (1-based) on 127.0.0.1:`host_port_base + i - 1`.
    pub host_port_base: Option<u16>,
    /// Extra environment for every node (names checked, values any text).
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseSpec {
    pub max_connections: u32,
    pub superuser_reserved_connections: u32,
    pub reserve_connections: u32,
    pub image: ImageRef,
    pub name: DnsLabel,
    pub user: DnsLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisSpec {
    pub image: ImageRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalancerSpec {
    pub strategy: Strategy,
    pub port: u16,
    pub bind: IpAddr,
    pub image: ImageRef,
    pub max_fails: u32,
    pub fail_timeout: u32,
    pub keepalive: u32,
    pub connect_timeout: u32,
    pub read_timeout: u32,
    pub worker_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutSpec {
    pub max_surge: u32,
    pub drain_seconds: u32,
    pub stop_grace_seconds: u32,
    pub health_timeout: u32,
}

/// The most nodes a cluster may have: beyond this a single engine is the wrong tool.
pub const MAX_NODES: i64 = 64;

/// Environment variables the deployer sets itself; `[app.env]` may not override them.
pub const RESERVED_ENV: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_PASSWORD_FILE",
    "DATABASE_POOL_SIZE",
    "NODE_NAME",
    "PORT",
    "JWT_SECRET",
    "JWT_SECRET_FILE",
    "REDIS_URL",
    "LOG_FORMAT",
    "JOB_WORKERS",
];

/// Collects every problem while converting, so the user sees them all at once.
struct Checker {
    diags: Vec<Diagnostic>,
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

impl Checker {
    fn int(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        hint: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(v) => {
                let n = *v.get_ref();
                if range.contains(&n) {
                    n
                } else {
                    let what = if n < *range.start() {
                        "too small"
                    } else {
                        "too large"
                    };
                    self.diags.push(
                        Diagnostic::error(
                            format!(
                                "`{key}` = {n} is {what}: it must be between {} and {}",
                                range.start(),
                                range.end()
                            ),
                            span(v),
                        )
                        .with_hint(hint.to_string()),
                    );
                    default
                }
            }
        }
    }

    fn label(&mut self, value: &Option<Spanned<String>>, key: &str, default: &str) -> DnsLabel {
        match value {
            None => DnsLabel(default.to_string()),
            Some(v) => match DnsLabel::parse(v.get_ref()) {
                Ok(l) => l,
                Err(why) => {
                    let suggestion = suggest_label(v.get_ref());
                    let mut d = Diagnostic::error(
                        format!("`{key}` is not a valid DNS label: {why}"),
                        span(v),
                    );
                    d = match suggestion {
                        Some(s) => d.with_hint(format!(
                            "names become container, network and host names; try `{key} = \"{s}\"`"
                        )),
                        None => d.with_hint(
                            "names become container, network and host names: use lowercase letters, digits and `-`",
                        ),
                    };
                    self.diags.push(d);
                    DnsLabel(default.to_string())
                }
            },
        }
    }

    fn image(&mut self, value: &Option<Spanned<String>>, key: &str, default: &str) -> ImageRef {
        match value {
            None => ImageRef(default.to_string()),
            Some(v) => match ImageRef::parse(v.get_ref()) {
                Ok(i) => i,
                Err(why) => {
                    self.diags.push(
                        Diagnostic::error(
                            format!("`{key}` is not a valid image reference: {why}"),
                            span(v),
                        )
                        .with_hint(format!("for example `{key} = \"{default}\"`")),
                    );
                    ImageRef(default.to_string())
                }
            },
        }
    }
}

/// Lowercases and replaces what a DNS label cannot hold, when that gives a label.
fn suggest_label(s: &str) -> Option<String> {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    DnsLabel::parse(&out).ok().map(|l| l.0)
}

/// Converts the raw file into a spec, or returns every problem found.
/// Warnings (e.g. low headroom) come back with the spec.
pub fn from_raw(raw: &RawConfig) -> Result<(ClusterSpec, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Checker { diags: Vec::new() };

    // [cluster]
    let name = match &raw.cluster {
        None if raw.broken.contains("cluster") => DnsLabel("demo".into()),
        None => {
            c.diags.push(
                Diagnostic::error("missing section [cluster]", None)
                    .with_hint("start the file with\n    [cluster]\n    name = \"demo\""),
            );
            DnsLabel("demo".into())
        }
        Some(section) if section.get_ref().name.is_none() => {
            c.diags.push(
                Diagnostic::error("missing key `name` in [cluster]", span(section))
                    .with_hint("add `name = \"demo\"`: it names every container, network and volume of the cluster"),
            );
            DnsLabel("demo".into())
        }
        Some(section) => c.label(&section.get_ref().name, "name", "demo"),
    };

    // [app]
    let default_app = RawApp {
        nodes: None,
        pool_size: None,
        port: None,
        image: None,
        job_workers: None,
        log_format: None,
        host_port_base: None,
        env: None,
    };
    let a = raw
        .app
        .as_ref()
        .map(|s| s.get_ref())
        .unwrap_or(&default_app);
    let nodes = c.int(
        &a.nodes,
        "nodes",
        3,
        1..=MAX_NODES,
        "run between 1 and 64 app nodes; 3 survives the loss of one",
    );
    let pool_size = c.int(
        &a.pool_size,
        "pool_size",
        10,
        1..=1000,
        "each node's pool holds between 1 and 1000 connections; 10 is typical",
    );
    let port = c.int(
        &a.port,
        "port",
        4000,
        1024..=65535,
        "the app runs as a non-root user, so its port must be 1024 or above",
    );
    let app_image = c.image(&a.image, "image", "deployer-app:latest");
    let job_workers = c.int(
        &a.job_workers,
        "job_workers",
        4,
        0..=256,
        "job workers per node draw from the pool; 0 disables the queue on this cluster",
    );
    let log_format = match &a.log_format {
        None => LogFormat::Json,
        Some(v) => match v.get_ref().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                c.diags.push(
                    Diagnostic::error(format!("unknown log_format `{other}`"), span(v))
                        .with_hint("use `json` or `text`"),
                );
                LogFormat::Json
            }
        },
    };
    let host_port_base = a.host_port_base.as_ref().map(|_| {
        c.int(
            &a.host_port_base,
            "host_port_base",
            4001,
            1..=65535,
            "pick a free range, e.g. 4001",
        ) as u16
    });
    let mut env = BTreeMap::new();
    if let Some(e) = &a.env {
        for (key, v) in e {
            let k = v;
            let valid = key.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                c.diags.push(
                    Diagnostic::error(format!("`{}` is not a valid environment variable name", key.escape_debug()), span(k))
                        .with_hint("use uppercase letters, digits and `_`, starting with a letter, e.g. `FEATURE_FLAG`"),
                );
            } else if RESERVED_ENV.contains(&key.as_str()) {
                c.diags.push(
                    Diagnostic::error(
                        format!(
                            "`{key}` is set by the deployer and cannot be overridden in [app.env]"
                        ),
                        span(k),
                    )
                    .with_hint("set it through its own key (e.g. [app] pool_size) instead"),
                );
            } else if v.get_ref().chars().any(|c| c.is_control() && c != '\t') {
                c.diags.push(
                    Diagnostic::error(
                        format!(
                            "the value of `{key}` contains a control character (such as a newline)"
                        ),
                        span(v),
                    )
                    .with_hint("environment values are single-line text"),
                );
            } else {
                env.insert(key.clone(), v.get_ref().clone());
            }
        }
    }

    // [database]
    let d = raw.database.as_ref().map(|s| s.get_ref());
    let none = RawDatabase {
        max_connections: None,
        superuser_reserved_connections: None,
        reserve_connections: None,
        image: None,
        name: None,
        user: None,
    };
    let d = d.unwrap_or(&none);
    let max_connections = c.int(
        &d.max_connections,
        "max_connections",
        100,
        2..=10_000,
        "PostgreSQL's default is 100",
    );
    let superuser_reserved = c.int(
        &d.superuser_reserved_connections,
        "superuser_reserved_connections",
        3,
        0..=100,
        "PostgreSQL's default is 3",
    );
    if superuser_reserved >= max_connections {
        c.diags.push(
            Diagnostic::error(
                format!("superuser_reserved_connections ({superuser_reserved}) must be less than max_connections ({max_connections})"),
                d.superuser_reserved_connections.as_ref().and_then(span),
            )
            .with_hint("PostgreSQL refuses to start otherwise; the default is 3"),
        );
    }
    let reserve = c.int(&d.reserve_connections, "reserve_connections", 3, 1..=1000, "keep at least 1 for migrations; 3 leaves room for migrations, `deployer status` and a psql session");
    let db_image = c.image(&d.image, "image", "postgres:15-bookworm");
    let db_name = c.label(&d.name, "name", "app");
    let db_user = c.label(&d.user, "user", "app");

    // [redis]
    let redis = match raw.redis.as_ref().map(|s| s.get_ref()) {
        None => None,
        Some(r) => {
            let image = c.image(&r.image, "image", "redis:7.0-bookworm");
            let enabled = r.enabled.as_ref().map(|e| *e.get_ref()).unwrap_or(true);
            enabled.then_some(RedisSpec { image })
        }
    };

    // [balancer]
    let none = RawBalancer {
        strategy: None,
        port: None,
        bind: None,
        image: None,
        max_fails: None,
        fail_timeout: None,
        keepalive: None,
        connect_timeout: None,
        read_timeout: None,
        worker_connections: None,
    };
    let b = raw.balancer.as_ref().map(|s| s.get_ref()).unwrap_or(&none);
    let strategy = match &b.strategy {
        None => Strategy::RoundRobin,
        Some(v) => match Strategy::ALL.iter().find(|(n, _)| n == v.get_ref()) {
            Some((_, s)) => *s,
            None => {
                let names: Vec<&str> = Strategy::ALL.iter().map(|(n, _)| *n).collect();
                let mut d = Diagnostic::error(
                    format!("unknown strategy `{}`", v.get_ref().escape_debug()),
                    span(v),
                );
                d = match did_you_mean(v.get_ref(), &names) {
                    Some(s) => {
                        d.with_hint(format!("did you mean `{s}`? (one of {})", names.join(", ")))
                    }
                    None => d.with_hint(format!("use one of {}", names.join(", "))),
                };
                c.diags.push(d);
                Strategy::RoundRobin
            }
        },
    };
    let lb_port = c.int(
        &b.port,
        "port",
        4000,
        1..=65535,
        "the balancer's port on the host, e.g. 4000",
    );
    let bind: IpAddr = match &b.bind {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(v) => match v.get_ref().parse() {
            Ok(ip) => ip,
            Err(_) => {
                c.diags.push(
                    Diagnostic::error(format!("`bind` = {:?} is not an IP address", v.get_ref()), span(v))
                        .with_hint("use \"127.0.0.1\" (the default: only this machine) or \"0.0.0.0\" (every interface)"),
                );
                IpAddr::from([127, 0, 0, 1])
            }
        },
    };
    let lb_image = c.image(&b.image, "image", "nginx:1.22");
    let max_fails = c.int(
        &b.max_fails,
        "max_fails",
        3,
        0..=100,
        "failed attempts before nginx takes a node out for fail_timeout; 0 disables",
    );
    let fail_timeout = c.int(
        &b.fail_timeout,
        "fail_timeout",
        10,
        1..=3600,
        "seconds a failed node stays out of rotation",
    );
    let keepalive = c.int(
        &b.keepalive,
        "keepalive",
        32,
        0..=10_000,
        "idle upstream connections each nginx worker keeps; 0 disables",
    );
    let connect_timeout = c.int(
        &b.connect_timeout,
        "connect_timeout",
        2,
        1..=60,
        "seconds; keep it short so failover is fast",
    );
    let read_timeout = c.int(&b.read_timeout, "read_timeout", 30, 1..=3600, "seconds");
    let worker_connections = c.int(
        &b.worker_connections,
        "worker_connections",
        1024,
        16..=65535,
        "nginx's default is 512; 1024 is typical",
    );

    // [rollout]
    let none = RawRollout {
        max_surge: None,
        drain_seconds: None,
        stop_grace_seconds: None,
        health_timeout: None,
    };
    let r = raw.rollout.as_ref().map(|s| s.get_ref()).unwrap_or(&none);
    let max_surge = c.int(
        &r.max_surge,
        "max_surge",
        1,
        1..=MAX_NODES,
        "nodes added at a time during a rolling update; 1 is the gentlest",
    );
    let drain_seconds = c.int(
        &r.drain_seconds,
        "drain_seconds",
        2,
        0..=600,
        "seconds a node keeps serving in-flight requests after leaving the balancer",
    );
    let stop_grace_seconds = c.int(
        &r.stop_grace_seconds,
        "stop_grace_seconds",
        20,
        1..=600,
        "seconds between SIGTERM and SIGKILL",
    );
    let health_timeout = c.int(
        &r.health_timeout,
        "health_timeout",
        60,
        5..=3600,
        "seconds a new container may take to pass its health check",
    );

    // Cross-field checks.
    if let (Some(base), Some(raw_base)) = (host_port_base, &a.host_port_base) {
        let last = base as i64 + nodes + max_surge - 1;
        if last > 65535 {
            c.diags.push(
                Diagnostic::error(
                    format!("host ports {base}..{last} run past 65535"),
                    span(raw_base),
                )
                .with_hint("lower host_port_base"),
            );
        } else if (base as i64..=last).contains(&lb_port) {
            c.diags.push(
                Diagnostic::error(
                    format!("the balancer's port {lb_port} collides with the node ports {base}..{last} (host_port_base + nodes + max_surge)"),
                    b.port.as_ref().and_then(span).or(span(raw_base)),
                )
                .with_hint(format!("move host_port_base to {} or the balancer's port elsewhere", lb_port + 1)),
            );
        }
    }
    if job_workers >= pool_size && job_workers > 0 {
        c.diags.push(
            Diagnostic::error(
                format!("job_workers ({job_workers}) must be less than pool_size ({pool_size}): job workers draw from the node's pool and requests need a connection too"),
                a.job_workers.as_ref().and_then(span).or(a.pool_size.as_ref().and_then(span)),
            )
            .with_hint(format!("lower job_workers to {} or raise pool_size to {}", (pool_size - 1).max(0), job_workers + 1)),
        );
    }

    if c.diags.iter().any(|d| d.is_error()) || !raw.broken.is_empty() {
        // The budget of a half-read file would mislead: report what is known.
        return Err(c.diags);
    }

    let spec = ClusterSpec {
        name,
        app: AppSpec {
            nodes: nodes as u32,
            pool_size: pool_size as u32,
            port: port as u16,
            image: app_image,
            job_workers: job_workers as u32,
            log_format,
            host_port_base,
            env,
        },
        database: DatabaseSpec {
            max_connections: max_connections as u32,
            superuser_reserved_connections: superuser_reserved as u32,
            reserve_connections: reserve as u32,
            image: db_image,
            name: db_name,
            user: db_user,
        },
        redis,
        balancer: BalancerSpec {
            strategy,
            port: lb_port as u16,
            bind,
            image: lb_image,
            max_fails: max_fails as u32,
            fail_timeout: fail_timeout as u32,
            keepalive: keepalive as u32,
            connect_timeout: connect_timeout as u32,
            read_timeout: read_timeout as u32,
            worker_connections: worker_connections as u32,
        },
        rollout: RolloutSpec {
            max_surge: max_surge as u32,
            drain_seconds: drain_seconds as u32,
            stop_grace_seconds: stop_grace_seconds as u32,
            health_timeout: health_timeout as u32,
        },
    };

    // The connection budget.
    let budget = Budget::of(&spec);
    let budget_span = d
        .max_connections
        .as_ref()
        .and_then(span)
        .or(a.pool_size.as_ref().and_then(span))
        .or(raw.database.as_ref().map(|s| s.span()));
    if budget.over_by() > 0 {
        let mut hints = Vec::new();
        match budget.largest_pool_that_fits() {
            Some(p) => hints.push(format!("lower pool_size to {p}")),
            None => hints.push("fewer nodes or a smaller max_surge".to_string()),
        }
        hints.push(format!(
            "raise max_connections to {}",
            budget.max_connections_needed()
        ));
        let d = Diagnostic::error(
            format!(
                "the connection budget does not fit: at peak the cluster opens {} connections, but PostgreSQL allows {} ({} max_connections - {} superuser reserved); over by {}",
                budget.peak, budget.limit, budget.max_connections, budget.superuser_reserved, budget.over_by()
            ),
            budget_span,
        )
        .with_hint(format!("{}\n{}", hints.join(", or "), budget.formula()));
        return Err(vec![d]);
    }
    let mut warnings = c.diags;
    if budget.headroom_percent() < 10.0 {
        warnings.push(
            Diagnostic::warning(
                format!(
                    "only {} connections ({:.1}%) of headroom are left at peak ({} of {})",
                    budget.headroom(),
                    budget.headroom_percent(),
                    budget.peak,
                    budget.limit
                ),
                budget_span,
            )
            .with_hint(format!(
                "a manual psql session or a second migration could be refused; consider max_connections = {}",
                budget.max_connections_for_headroom(10.0)
            )),
        );
    }
    Ok((spec, warnings))
}

/// The closest candidate by edit distance, when it is close enough to be a typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

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
        assert_eq!(suggest_label("My App"), Some("my-app".into()));
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

    #[test]
    fn did_you_mean_finds_typos() {
        assert_eq!(
            did_you_mean("pool", &["pool_size", "port", "nodes"]),
            Some("pool_size")
        );
        assert_eq!(
            did_you_mean("least_con", &["round_robin", "least_conn"]),
            Some("least_conn")
        );
        assert_eq!(did_you_mean("zzz", &["round_robin", "least_conn"]), None);
    }
}
