//! Raw sections → validated spec: one converter per section, then the checks that
//! span sections, then the connection budget.
//!
//! Every problem is collected (see [`Checker`]) so the user sees them all at once;
//! an invalid value is replaced by its default so later checks can still run.

mod app;
mod balancer;
mod cluster;
mod database;
mod logs;
mod redis;
mod rollout;
mod suggest;
mod target;

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::config::spec::Choice;

pub use suggest::did_you_mean;

use super::diagnostic::Diagnostic;
use super::raw::{RawApp, RawBalancer, RawConfig, RawDatabase, RawLogs, RawRollout};
use super::spec::{AppSpec, BalancerSpec, ClusterSpec, DnsLabel, ImageRef, RolloutSpec};
use suggest::suggest_label;

/// Converts the raw file into a spec, or returns every problem found.
/// Warnings (e.g. low headroom) come back with the spec.
/// Files the file names (`tls_cert`, `tls_key`) are relative to `base`, its directory.
pub fn from_raw(
    raw: &RawConfig,
    base: &Path,
) -> Result<(ClusterSpec, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Checker {
        diags: Vec::new(),
        base: base.to_path_buf(),
    };
    // A missing section is an empty one: every key at its default.
    let (no_app, no_database, no_balancer, no_rollout, no_logs) = Default::default();
    let a: &RawApp = section(&raw.app, &no_app);
    let d: &RawDatabase = section(&raw.database, &no_database);
    let b: &RawBalancer = section(&raw.balancer, &no_balancer);
    let r: &RawRollout = section(&raw.rollout, &no_rollout);
    let l: &RawLogs = section(&raw.logs, &no_logs);

    let name = cluster::name(&mut c, raw);
    let target = target::convert(&mut c, raw, a, b);
    let app = app::convert(&mut c, a);
    let database = database::convert(&mut c, d);
    let redis = redis::convert(&mut c, raw.redis.as_ref().map(|s| s.get_ref()));
    let balancer = balancer::convert(&mut c, b);
    let rollout = rollout::convert(&mut c, r, target.kind());
    let logs = logs::convert(&mut c, l);
    cross_checks(&mut c, (&app, a), (&balancer, b), &rollout);

    if c.diags.iter().any(|d| d.is_error()) || !raw.broken.is_empty() {
        // The budget of a half-read file would mislead: report what is known.
        return Err(c.diags);
    }
    let spec = ClusterSpec {
        name,
        target,
        app,
        database,
        redis,
        balancer,
        rollout,
        logs,
    };
    if let Some(tls) = spec.balancer().tls() {
        balancer::check_names(&mut c, b, tls, spec.balancer_host());
    }
    let mut warnings = c.diags;
    warnings.extend(check_budget(&spec, BudgetSpans::of(raw, a, d)).map_err(|e| vec![e])?);
    Ok((spec, warnings))
}

fn section<'a, T>(s: &'a Option<Spanned<T>>, empty: &'a T) -> &'a T {
    s.as_ref().map_or(empty, |s| s.get_ref())
}

/// Checks between sections: host ports against the balancer's port, job workers
/// against the pool.
fn cross_checks(
    c: &mut Checker,
    (app, a): (&AppSpec, &RawApp),
    (balancer, b): (&BalancerSpec, &RawBalancer),
    rollout: &RolloutSpec,
) {
    if let (Some(base), Some(raw_base)) = (app.host_port_base, &a.host_port_base) {
        let last = base as i64 + app.nodes as i64 + rollout.max_surge as i64 - 1;
        let lb_ports = [(Some(balancer.port), &b.port, "port")]
            .into_iter()
            .chain([(
                balancer.tls.as_ref().map(|t| t.https_port()),
                &b.https_port,
                "HTTPS port",
            )]);
        if last > 65535 {
            c.diags.push(
                Diagnostic::error(
                    format!("host ports {base}..{last} run past 65535"),
                    span(raw_base),
                )
                .with_hint("lower host_port_base"),
            );
        } else {
            for (lb_port, raw, what) in lb_ports {
                let Some(lb_port) = lb_port.map(i64::from) else {
                    continue;
                };
                if (base as i64..=last).contains(&lb_port) {
                    c.diags.push(
                        Diagnostic::error(
                            format!("the balancer's {what} {lb_port} collides with the node ports {base}..{last} (host_port_base + nodes + max_surge)"),
                            raw.as_ref().and_then(span).or(span(raw_base)),
                        )
                        .with_hint(format!("move host_port_base to {} or the balancer's {what} elsewhere", lb_port + 1)),
                    );
                }
            }
        }
    }
    let (job_workers, pool_size) = (app.job_workers as i64, app.pool_size as i64);
    if job_workers >= pool_size && job_workers > 0 {
        c.diags.push(
            Diagnostic::error(
                format!("job_workers ({job_workers}) must be less than pool_size ({pool_size}): job workers draw from the node's pool and requests need a connection too"),
                a.job_workers.as_ref().and_then(span).or(a.pool_size.as_ref().and_then(span)),
            )
            .with_hint(format!("lower job_workers to {} or raise pool_size to {}", (pool_size - 1).max(0), job_workers + 1)),
        );
    }
}

/// Where a budget diagnostic points: the key a user would change first.
struct BudgetSpans {
    /// The server side: `pooler_pool_size` (pooled), else `max_connections`, else `pool_size`.
    server: Option<Range<usize>>,
    /// The client side (pooled): `pool_size`, else `pooler_max_client_conn`, else `pooler`.
    clients: Option<Range<usize>>,
}

impl BudgetSpans {
    fn of(raw: &RawConfig, a: &RawApp, d: &RawDatabase) -> BudgetSpans {
        let section = raw.database.as_ref().map(|s| s.span());
        let max_connections = d.max_connections.as_ref().and_then(span);
        let pool_size = a.pool_size.as_ref().and_then(span);
        let pooler = d.pooler.as_ref().and_then(span);
        let server = if d.pooler.is_some() {
            d.pooler_pool_size
                .as_ref()
                .and_then(span)
                .or(max_connections.clone())
                .or(pooler.clone())
        } else {
            max_connections.clone().or(pool_size.clone())
        };
        BudgetSpans {
            server: server.or(section.clone()),
            clients: pool_size
                .or(d.pooler_max_client_conn.as_ref().and_then(span))
                .or(pooler)
                .or(section),
        }
    }
}

/// The connection budget, both sides: an error when a peak does not fit, a
/// warning when less than 10% of headroom is left.
fn check_budget(spec: &ClusterSpec, at: BudgetSpans) -> Result<Vec<Diagnostic>, Diagnostic> {
    let budget = spec.budget();
    if !budget.server_fits() {
        let mut hints = Vec::new();
        if budget.pooled() {
            match budget.largest_server_pool_that_fits() {
                Some(p) => hints.push(format!("lower pooler_pool_size to {p}")),
                None => hints.push("fewer nodes or a smaller max_surge".to_string()),
            }
        } else {
            match budget.largest_pool_that_fits() {
                Some(p) => hints.push(format!("lower pool_size to {p}")),
                None => hints.push("fewer nodes or a smaller max_surge".to_string()),
            }
        }
        hints.push(format!(
            "raise max_connections to {}",
            budget.max_connections_needed()
        ));
        let who = if budget.pooled() {
            "the pooler and the nodes open"
        } else {
            "the cluster opens"
        };
        let mut hint = format!("{}\n{}", hints.join(", or "), budget.formula());
        if let Some(pooled) = pooler_would_fit(spec) {
            hint.push_str(&format!(
                "\nor put PgBouncer in front (`pooler = \"pgbouncer\"` in [database]): PostgreSQL would see at most {} of {}",
                pooled.peak, pooled.limit
            ));
        }
        let d = Diagnostic::error(
            format!(
                "the connection budget does not fit: at peak {who} {} connections, but PostgreSQL allows {} ({} max_connections - {} superuser reserved); over by {}",
                budget.peak, budget.limit, budget.max_connections, budget.superuser_reserved, budget.over_by()
            ),
            at.server,
        )
        .with_hint(hint);
        return Err(d);
    }
    if let Some(c) = budget.clients.as_ref().filter(|c| !c.fit().fits()) {
        let mut hints = Vec::new();
        if let Some(p) = budget.largest_pool_that_fits() {
            hints.push(format!("lower pool_size to {p}"));
        }
        hints.push(format!("raise pooler_max_client_conn to {}", c.peak));
        let d = Diagnostic::error(
            format!(
                "the pooler's client side does not fit: at peak the nodes open {} connections to PgBouncer, but it accepts {} (pooler_max_client_conn); over by {}",
                c.peak,
                c.limit,
                c.fit().over_by()
            ),
            at.clients,
        )
        .with_hint(format!(
            "{}\n{}",
            hints.join(", or "),
            budget.client_formula().unwrap_or_default()
        ));
        return Err(d);
    }
    let mut warnings = Vec::new();
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
                at.server,
            )
            .with_hint(format!(
                "a manual psql session or a second migration could be refused; consider max_connections = {}",
                budget.max_connections_for_headroom(10.0)
            )),
        );
    }
    if let Some(c) = budget
        .clients
        .as_ref()
        .filter(|c| c.fit().headroom_percent() < 10.0)
    {
        warnings.push(
            Diagnostic::warning(
                format!(
                    "only {} client connections ({:.1}%) of the pooler's headroom are left at peak ({} of {})",
                    c.fit().headroom(),
                    c.fit().headroom_percent(),
                    c.peak,
                    c.limit
                ),
                at.clients,
            )
            .with_hint(format!(
                "a rollout with a larger surge or a psql session through the pooler could be refused; consider pooler_max_client_conn = {}",
                (c.peak as f64 / 0.9).ceil() as u32
            )),
        );
    }
    Ok(warnings)
}

/// Without a pooler: the budget the same cluster would have behind PgBouncer
/// with its defaults, when that one fits.
fn pooler_would_fit(spec: &ClusterSpec) -> Option<crate::budget::Budget> {
    if spec.database.pooler.is_some() {
        return None;
    }
    let mut pooled = spec.clone();
    pooled.database.pooler = Some(database::default_pooler());
    let budget = pooled.budget();
    budget.fits().then_some(budget)
}

/// Collects every problem while converting, so the user sees them all at once.
struct Checker {
    diags: Vec<Diagnostic>,
    /// The directory of the cluster file: where the files it names are found.
    base: PathBuf,
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

impl Checker {
    /// One of the names of `T`'s table; an unknown one is reported with the
    /// closest name and the list, and replaced by `default`.
    fn choice<T: Choice>(&mut self, value: &Option<Spanned<String>>, key: &str, default: T) -> T {
        let Some(v) = value else {
            return default;
        };
        if let Some((_, t)) = T::ALL.iter().find(|(n, _)| n == v.get_ref()) {
            return *t;
        }
        let names: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
        let d = Diagnostic::error(
            format!("unknown {key} `{}`", v.get_ref().escape_debug()),
            span(v),
        );
        let d = match suggest::did_you_mean(v.get_ref(), &names) {
            Some(s) => d.with_hint(format!("did you mean `{s}`? (one of {})", names.join(", "))),
            None => d.with_hint(format!("use one of {}", names.join(", "))),
        };
        self.diags.push(d);
        default
    }

    /// An integer key within `range`, or `default` (after reporting why).
    fn int(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        default: i64,
        range: RangeInclusive<i64>,
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

    /// A key in whole seconds, checked like [`Checker::int`]; `range` must not
    /// go below 0.
    fn seconds(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        default: u32,
        range: RangeInclusive<u32>,
        hint: &str,
    ) -> Duration {
        let range = i64::from(*range.start())..=i64::from(*range.end());
        let n = self.int(value, key, default.into(), range, hint);
        Duration::from_secs(n.unsigned_abs())
    }

    fn label(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: &'static str,
    ) -> DnsLabel {
        match value {
            None => DnsLabel::known(default),
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
                    DnsLabel::known(default)
                }
            },
        }
    }

    fn image(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: &'static str,
    ) -> ImageRef {
        match value {
            None => ImageRef::known(default),
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
                    ImageRef::known(default)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{parse, Loaded, Report};

    fn check(src: &str) -> Result<Loaded, Report> {
        parse(Path::new("cluster.toml"), src.as_bytes()).map_err(|e| e.report().unwrap().clone())
    }

    #[test]
    fn the_access_log_is_sampled_unless_told() {
        use crate::config::AccessLog;
        let l = check("[cluster]\nname = \"x\"\n").unwrap();
        assert_eq!(l.spec.balancer.access_log, AccessLog::Sampled);
        for (v, want) in [
            ("buffered", AccessLog::Buffered),
            ("off", AccessLog::Off),
            ("unbuffered", AccessLog::Unbuffered),
        ] {
            let l = check(&format!(
                "[cluster]\nname = \"x\"\n[balancer]\naccess_log = \"{v}\"\n"
            ))
            .unwrap();
            assert_eq!(l.spec.balancer.access_log, want);
        }
        let r =
            check("[cluster]\nname = \"x\"\n[balancer]\naccess_log = \"bufered\"\n").unwrap_err();
        assert_eq!(r.diagnostics[0].message, "unknown access_log `bufered`");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("did you mean `buffered`? (one of sampled, buffered, unbuffered, off)")
        );
    }

    #[test]
    fn logs_rotate_by_default_and_bounds_are_checked() {
        let l = check("[cluster]\nname = \"x\"\n").unwrap();
        assert_eq!((l.spec.logs.max_size_mb, l.spec.logs.max_files), (10, 3));
        let l =
            check("[cluster]\nname = \"x\"\n[logs]\nmax_size_mb = 50\nmax_files = 5\n").unwrap();
        assert_eq!((l.spec.logs.max_size_mb, l.spec.logs.max_files), (50, 5));
        let r = check("[cluster]\nname = \"x\"\n[logs]\nmax_size_mb = 0\n").unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`max_size_mb` = 0 is too small: it must be between 1 and 1024"
        );
        let r = check("[cluster]\nname = \"x\"\n[logs]\nmax_file = 3\n").unwrap_err();
        assert!(
            r.diagnostics[0]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("max_files")),
            "{:?}",
            r.diagnostics[0]
        );
    }

    #[test]
    fn timeouts_are_durations_in_seconds() {
        let l = check("[cluster]\nname = \"x\"\n[rollout]\ndrain_seconds = 0\n[balancer]\nread_timeout = 90\n")
            .unwrap();
        let (r, b) = (&l.spec.rollout, &l.spec.balancer);
        assert_eq!(r.drain, Duration::ZERO);
        assert_eq!(r.stop_grace, Duration::from_secs(20));
        assert_eq!(r.health_timeout, Duration::from_secs(60));
        assert_eq!(r.health_interval, Duration::from_secs(5));
        assert_eq!(b.fail_timeout, Duration::from_secs(10));
        assert_eq!(b.connect_timeout, Duration::from_secs(2));
        assert_eq!(b.read_timeout, Duration::from_secs(90));
    }

    #[test]
    fn timeouts_serialize_as_whole_seconds_under_their_toml_keys() {
        let l = check("[cluster]\nname = \"x\"\n").unwrap();
        let v = serde_json::to_value(&l.spec).unwrap();
        assert_eq!(v["rollout"]["drain_seconds"], 2);
        assert_eq!(v["rollout"]["stop_grace_seconds"], 20);
        assert_eq!(v["rollout"]["health_timeout"], 60);
        assert_eq!(v["rollout"]["health_interval"], 5);
        assert_eq!(v["balancer"]["fail_timeout"], 10);
        assert_eq!(v["balancer"]["connect_timeout"], 2);
        assert_eq!(v["balancer"]["read_timeout"], 30);
        assert!(v["rollout"].get("drain").is_none());
    }

    #[test]
    fn out_of_range_seconds_keep_their_message() {
        let r = check("[cluster]\nname = \"x\"\n[rollout]\nstop_grace_seconds = 0\n").unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`stop_grace_seconds` = 0 is too small: it must be between 1 and 600"
        );
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("seconds between SIGTERM and SIGKILL")
        );
    }

    #[test]
    fn zero_job_workers_is_refused_as_the_node_would_refuse_it() {
        let r = check("[cluster]\nname = \"x\"\n[app]\njob_workers = 0\n").unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`job_workers` = 0 is too small: it must be between 1 and 256"
        );
    }

    #[test]
    fn over_budget_replaces_warnings_with_one_error() {
        let r = check("[cluster]\nname = \"x\"\n[app]\nnodes = 5\npool_size = 20\n").unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert!(
            r.diagnostics[0].message.contains("over by 32"),
            "{}",
            r.diagnostics[0].message
        );
        assert!(r.diagnostics[0]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("lower pool_size to 14, or raise max_connections to 132\n"));
    }

    /// The example cluster.toml's budget keys at 20 nodes × pool 10 against 100.
    const TWENTY_NODES: &str = "[cluster]\nname = \"x\"\n[app]\nnodes = 20\npool_size = 10\n[database]\nmax_connections = 100\n";

    fn location(r: &Report) -> String {
        let text = r.to_string();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("--> "))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn twenty_nodes_fit_with_pgbouncer_and_not_without() {
        let r = check(TWENTY_NODES).unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert_eq!(
            r.diagnostics[0].message,
            "the connection budget does not fit: at peak the cluster opens 234 connections, but PostgreSQL allows 97 (100 max_connections - 3 superuser reserved); over by 137"
        );
        assert_eq!(location(&r), "cluster.toml:7:19");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("lower pool_size to 3, or raise max_connections to 237\n\
                  peak = (nodes 20 + max_surge 1) × (pool_size 10 + 1 listener) + reserve 3 = 234\n\
                  or put PgBouncer in front (`pooler = \"pgbouncer\"` in [database]): PostgreSQL would see at most 44 of 97")
        );

        let l = check(&format!("{TWENTY_NODES}pooler = \"pgbouncer\"\n")).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let p = l.spec.database().pooler().unwrap();
        assert_eq!((p.pool_size(), p.max_client_conn()), (20, 1000));
        assert_eq!(p.image().as_str(), "edoburu/pgbouncer:v1.24.1-p1");
        let b = l.spec.budget();
        assert_eq!((b.peak, b.limit), (44, 97));
        assert_eq!(
            b.clients.as_ref().map(|c| (c.peak, c.limit)),
            Some((213, 1000))
        );
    }

    #[test]
    fn the_pooled_server_side_is_refused_at_pooler_pool_size() {
        let r = check(&format!(
            "{TWENTY_NODES}pooler = \"pgbouncer\"\npooler_pool_size = 80\n"
        ))
        .unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert_eq!(
            r.diagnostics[0].message,
            "the connection budget does not fit: at peak the pooler and the nodes open 104 connections, but PostgreSQL allows 97 (100 max_connections - 3 superuser reserved); over by 7"
        );
        assert_eq!(location(&r), "cluster.toml:9:20");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("lower pooler_pool_size to 73, or raise max_connections to 107\n\
                  peak = pooler_pool_size 80 + (nodes 20 + max_surge 1) × 1 listener + reserve 3 = 104")
        );
    }

    #[test]
    fn the_pooled_client_side_is_refused_at_pool_size() {
        let r = check(&format!(
            "{TWENTY_NODES}pooler = \"pgbouncer\"\npooler_max_client_conn = 200\n"
        ))
        .unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert_eq!(
            r.diagnostics[0].message,
            "the pooler's client side does not fit: at peak the nodes open 213 connections to PgBouncer, but it accepts 200 (pooler_max_client_conn); over by 13"
        );
        assert_eq!(location(&r), "cluster.toml:5:13");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some(
                "lower pool_size to 9, or raise pooler_max_client_conn to 213\n\
                  clients at peak = (nodes 20 + max_surge 1) × pool_size 10 + reserve 3 = 213"
            )
        );
    }

    #[test]
    fn little_client_headroom_warns() {
        // 213 of 220 clients at peak: 3.2% left.
        let l = check(&format!(
            "{TWENTY_NODES}pooler = \"pgbouncer\"\npooler_max_client_conn = 220\n"
        ))
        .unwrap();
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert_eq!(
            l.warnings[0].message,
            "only 7 client connections (3.2%) of the pooler's headroom are left at peak (213 of 220)"
        );
        assert!(l.warnings[0]
            .hint
            .as_deref()
            .unwrap()
            .ends_with("consider pooler_max_client_conn = 237"));
    }

    #[test]
    fn pooler_keys_are_checked() {
        let r = check("[cluster]\nname = \"x\"\n[database]\npooler = \"pgbouncr\"\n").unwrap_err();
        assert_eq!(r.diagnostics[0].message, "unknown pooler `pgbouncr`");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("did you mean `pgbouncer`? (one of none, pgbouncer)")
        );
        let r = check("[cluster]\nname = \"x\"\n[database]\npooler_pool_size = 10\n").unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`pooler_pool_size` is set but there is no pooler"
        );
        assert_eq!(location(&r), "cluster.toml:4:20");
        let r = check(
            "[cluster]\nname = \"x\"\n[database]\npooler = \"pgbouncer\"\npooler_pool_size = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`pooler_pool_size` = 0 is too small: it must be between 1 and 10000"
        );
        let none = check("[cluster]\nname = \"x\"\n[database]\npooler = \"none\"\n").unwrap();
        assert!(none.spec.database().pooler().is_none());
        assert!(!none.spec.budget().pooled());
    }
}
