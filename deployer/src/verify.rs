//! `deployer verify`: does the running cluster do what cluster.toml says?
//!
//! Each check talks to the cluster the way its users or the deployer do: through the
//! balancer's published port (reqwest), inside the cluster network (an exec of curl in
//! the balancer container), or through psql in the PostgreSQL container. Nothing here
//! uses the docker CLI. The chaos check stops one node through the engine and brings it
//! back with the deployer's own convergence (`plan` + [`Applier`]).
//!
//! verify leaves the cluster as it found it: its test user (`verify-<tag>@verify.invalid`)
//! and every job it caused are deleted at the end, and chaos only runs on a cluster whose
//! plan is empty, so converging afterwards restores exactly what was there.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::apply::{Applier, Progress};
use crate::budget::Budget;
use crate::cli::{load_or_report, Outcome, VerifyArgs};
use crate::config::{Loaded, Strategy};
use crate::engine::{Engine, Psql};
use crate::names::Names;
use crate::observe;
use crate::plan;
use crate::secrets;

/// Jain's fairness index at or above which a spreading strategy passes (1 is a perfectly
/// even spread, 1/n all on one node).
pub const MIN_FAIRNESS: f64 = 0.9;

/// Per-request timeout of every HTTP call verify makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's verdict and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// The figure as one line of text.
    pub summary: String,
    /// The same figures for machines.
    pub figures: Value,
}

impl Check {
    fn new(name: &'static str, passed: bool, summary: impl Into<String>, figures: Value) -> Check {
        Check {
            name,
            passed,
            summary: summary.into(),
            figures,
        }
    }

    fn failed(name: &'static str, why: impl std::fmt::Display) -> Check {
        Check::new(
            name,
            false,
            why.to_string(),
            json!({ "error": why.to_string() }),
        )
    }

    /// `PASS  distribution  1000 requests: …`
    pub fn line(&self) -> String {
        format!(
            "{:<4}  {:<12}  {}",
            if self.passed { "PASS" } else { "FAIL" },
            self.name,
            self.summary
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub strategy: &'static str,
    pub nodes: u32,
    pub balancer: String,
    pub checks: Vec<Check>,
    pub elapsed_seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Runs every check against the cluster `file` describes; `on_check` sees each one as
/// it finishes. None when the file does not validate (the problems were reported).
pub async fn verify(
    file: &Path,
    args: &VerifyArgs,
    on_check: &mut dyn FnMut(&Check),
) -> anyhow::Result<Option<Report>> {
    let Some(loaded) = load_or_report(file, args.json)? else {
        return Ok(None);
    };
    let start = Instant::now();
    let engine = Engine::connect().await?;
    let names = Names::of(&loaded.spec);
    let observed = observe::observe(&engine, &names)
        .await
        .context("observing the cluster")?;
    if observed.containers.is_empty() {
        bail!(
            "cluster `{}` is not deployed; run `deployer apply` first",
            names.cluster
        );
    }
    let v = Verifier::new(file, &loaded, engine, names, args)?;
    let mut checks = Vec::new();
    let mut record = |c: Check| {
        on_check(&c);
        checks.push(c);
    };

    record(v.balancer().await);
    record(v.nodes().await);
    record(v.distribution().await);
    record(v.database().await);
    let user = v.sign_up().await;
    record(v.auth(&user).await);
    record(v.jobs(&user).await);
    if args.chaos {
        record(v.chaos().await);
    }
    record(v.load().await);
    record(v.cleanup().await);

    Ok(Some(Report {
        cluster: v.names.cluster.clone(),
        strategy: loaded.spec.balancer.strategy.as_str(),
        nodes: loaded.spec.app.nodes,
        balancer: v.base_url.clone(),
        checks,
        elapsed_seconds: round(start.elapsed().as_secs_f64(), 1),
    }))
}

/// `deployer verify`: prints each check as it finishes (or one JSON object with
/// `--json`); exit 1 when any check fails.
pub async fn verify_cmd(file: &Path, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let json_out = args.json;
    let mut print = |c: &Check| {
        if !json_out {
            println!("{}", c.line());
        }
    };
    let Some(report) = verify(file, args, &mut print).await? else {
        return Ok(Outcome::Failed);
    };
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": report.passed(),
                "cluster": report.cluster,
                "strategy": report.strategy,
                "nodes": report.nodes,
                "balancer": report.balancer,
                "elapsed_seconds": report.elapsed_seconds,
                "checks": report.checks,
            }))?
        );
    } else {
        let passed = report.checks.iter().filter(|c| c.passed).count();
        println!(
            "\ncluster `{}`: {passed} of {} checks passed in {:.1}s",
            report.cluster,
            report.checks.len(),
            report.elapsed_seconds
        );
    }
    Ok(if report.passed() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The test user verify signs up, and its token.
struct TestUser {
    email: String,
    token: String,
}

struct Verifier<'a> {
    file: &'a Path,
    loaded: &'a Loaded,
    engine: Engine,
    names: Names,
    args: &'a VerifyArgs,
    /// `http://bind:port`, the balancer as clients reach it.
    base_url: String,
    /// Labels everything verify creates: `verify-<tag>@verify.invalid`, jobs' `args.verify`.
    tag: String,
    /// One new connection per request, so every request is balanced afresh.
    fresh: reqwest::Client,
    /// Keep-alive connections, as a load tool uses them.
    pooled: reqwest::Client,
    db: Psql,
}

impl<'a> Verifier<'a> {
    fn new(
        file: &'a Path,
        loaded: &'a Loaded,
        engine: Engine,
        names: Names,
        args: &'a VerifyArgs,
    ) -> anyhow::Result<Verifier<'a>> {
        let spec = &loaded.spec;
        let password = std::fs::read_to_string(secrets::dir_for(file).join("db_password"))
            .context("reading the database password (was the cluster applied from this file?)")?;
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        let pooled = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency as usize)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Verifier {
            file,
            loaded,
            db: Psql::new(&engine, spec, &password),
            engine,
            names,
            args,
            base_url: balancer_url(spec.balancer.bind, spec.balancer.port),
            tag: random_tag(),
            fresh,
            pooled,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn strategy(&self) -> Strategy {
        self.loaded.spec.balancer.strategy
    }

    fn node_names(&self) -> Vec<String> {
        (1..=self.loaded.spec.app.nodes)
            .map(|i| self.names.node(i))
            .collect()
    }

    fn email(&self) -> String {
        format!("verify-{}@verify.invalid", self.tag)
    }

    /// Check 1: the balancer answers `GET /api/health`.
    async fn balancer(&self) -> Check {
        let t = Instant::now();
        let answer = async {
            let r = self.fresh.get(self.url("/api/health")).send().await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let ms = round(t.elapsed().as_secs_f64() * 1000.0, 1);
        match answer {
            Ok((200, body)) => {
                let node = body["node"].as_str().unwrap_or("?").to_string();
                Check::new(
                    "balancer",
                    true,
                    format!(
                        "GET {}/api/health: 200 from {node} in {ms} ms",
                        self.base_url
                    ),
                    json!({"url": self.url("/api/health"), "status": 200, "node": node, "ms": ms}),
                )
            }
            Ok((status, _)) => Check::new(
                "balancer",
                false,
                format!("GET {}/api/health: {status}", self.base_url),
                json!({"url": self.url("/api/health"), "status": status, "ms": ms}),
            ),
            Err(e) => Check::failed(
                "balancer",
                format!("GET {}/api/health: {}", self.base_url, error_chain(&e)),
            ),
        }
    }

    /// Runs `script` with `sh -c` in the balancer container, with `env`.
    async fn in_balancer(&self, script: &str, env: &[String]) -> anyhow::Result<String> {
        let (code, out) = self
            .engine
            .exec(&self.names.balancer(), &["sh", "-c", script], None, env)
            .await?;
        if code != 0 {
            bail!("exited with {code}: {}", out.trim());
        }
        Ok(out)
    }

    /// Check 2: every node answers its own health and readiness checks, reached from the
    /// balancer container over the cluster network (as nginx reaches them).
    async fn nodes(&self) -> Check {
        let port = self.loaded.spec.app.port;
        let probes = self.node_names().into_iter().map(|node| async move {
            let script = format!(
                "for p in /api/health /api/ready; do \
                 curl -s -m 3 -w '\\n%{{http_code}} %{{time_total}}\\n' http://{node}:{port}$p; done; true"
            );
            let probe = self
                .in_balancer(&script, &[])
                .await
                .map(|out| parse_probes(&out));
            (node, probe)
        });
        let results = futures_util::future::join_all(probes).await;
        let mut figures = Vec::new();
        let mut parts = Vec::new();
        let mut healthy = 0;
        for (node, probe) in &results {
            match probe {
                Ok(p) if p.len() == 2 => {
                    let (health, ready) = (&p[0], &p[1]);
                    let named = serde_json::from_str::<Value>(&health.body)
                        .ok()
                        .and_then(|v| v["node"].as_str().map(str::to_string));
                    let ok = health.status == 200
                        && ready.status == 200
                        && named.as_deref() == Some(node.as_str());
                    healthy += ok as usize;
                    parts.push(if ok {
                        format!("{node} {:.1} ms", health.ms)
                    } else if named.as_deref().is_some_and(|n| n != node) {
                        format!("{node} answers as {}", named.as_deref().unwrap_or("?"))
                    } else if health.status == 0 && ready.status == 0 {
                        format!("{node} no answer")
                    } else {
                        format!(
                            "{node} health {} ready {}",
                            code_text(health.status),
                            code_text(ready.status)
                        )
                    });
                    figures.push(json!({
                        "node": node, "ok": ok,
                        "health": health.status, "health_ms": health.ms,
                        "ready": ready.status, "ready_ms": ready.ms,
                        "ready_body": serde_json::from_str::<Value>(&ready.body).unwrap_or(Value::Null),
                    }));
                }
                Ok(p) => {
                    parts.push(format!("{node}: unexpected probe output"));
                    figures.push(
                        json!({"node": node, "ok": false, "error": format!("{} answers", p.len())}),
                    );
                }
                Err(e) => {
                    parts.push(format!("{node}: {}", one_line(&format!("{e:#}"))));
                    figures.push(json!({"node": node, "ok": false, "error": format!("{e:#}")}));
                }
            }
        }
        let total = results.len();
        Check::new(
            "nodes",
            total > 0 && healthy == total,
            format!(
                "{healthy}/{total} healthy and ready inside {}: {}",
                self.names.network(),
                parts.join(", ")
            ),
            json!({"healthy": healthy, "nodes": figures, "network": self.names.network()}),
        )
    }

    /// Check 3: N requests through the balancer, one new connection each: counts per node
    /// and a fairness figure judged by the strategy.
    async fn distribution(&self) -> Check {
        let n = self.args.requests as usize;
        let url = self.url("/api/health");
        let samples = fire(n, self.args.concurrency as usize, |_| self.fresh.get(&url)).await;
        let mut counts: BTreeMap<String, usize> =
            self.node_names().into_iter().map(|n| (n, 0)).collect();
        let mut errors = Vec::new();
        for s in &samples {
            match s.node() {
                Ok(node) => *counts.entry(node).or_default() += 1,
                Err(e) => errors.push(e),
            }
        }
        let judged = judge_distribution(self.strategy(), &counts, errors.len());
        let per_node = counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let spread = match (self.strategy(), counts.iter().find(|(_, &c)| c == n)) {
            (Strategy::IpHash, Some((node, _))) => format!("ip_hash: one client sticks to {node}"),
            (strategy, _) => format!("fairness {:.3}, {}", judged.fairness, strategy.as_str()),
        };
        let mut summary = format!("{n} requests: {per_node} ({spread})");
        if !errors.is_empty() {
            summary.push_str(&format!("; {} failed: {}", errors.len(), errors[0]));
        }
        if let Some(why) = &judged.why {
            summary.push_str(&format!("; {why}"));
        }
        Check::new(
            "distribution",
            judged.passed,
            summary,
            json!({
                "requests": n,
                "per_node": counts,
                "fairness": round(judged.fairness, 3),
                "fairness_index": "jain",
                "min_fairness": MIN_FAIRNESS,
                "strategy": self.strategy().as_str(),
                "errors": errors.len(),
                "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            }),
        )
    }

    /// Check 4: the database answers, and the connections in use stay within the budget.
    async fn database(&self) -> Check {
        let budget = Budget::of(&self.loaded.spec);
        let sql = "SELECT coalesce(nullif(application_name, ''), '(none)'), count(*) FROM pg_stat_activity \
                   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1";
        let t = Instant::now();
        let rows = match self.db.query(sql).await {
            Ok(r) => r,
            Err(e) => return Check::failed("database", format!("{e:#}")),
        };
        let ms = round(t.elapsed().as_secs_f64() * 1000.0, 0);
        let usage: BTreeMap<String, u32> = rows
            .iter()
            .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.parse().ok()?)))
            .collect();
        let nodes = self.node_names();
        let per_node: BTreeMap<&str, u32> = nodes
            .iter()
            .map(|n| (n.as_str(), usage.get(n).copied().unwrap_or(0)))
            .collect();
        let cluster: u32 = per_node.values().sum();
        let total: u32 = usage.values().sum();
        let mut over = Vec::new();
        for (node, &n) in &per_node {
            if n > budget.per_node {
                over.push(format!("{node} holds {n} > {} per node", budget.per_node));
            }
        }
        if total > budget.limit {
            over.push(format!("{total} in use > limit {}", budget.limit));
        }
        let summary = format!(
            "answers in {ms} ms; {total} connection{} in use ({}), ≤ {} per node, budget peak {} of limit {}{}",
            if total == 1 { "" } else { "s" },
            per_node
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            budget.per_node,
            budget.peak,
            budget.limit,
            if over.is_empty() {
                String::new()
            } else {
                format!("; {}", over.join("; "))
            }
        );
        Check::new(
            "database",
            over.is_empty(),
            summary,
            json!({
                "ms": ms,
                "connections_in_use": total,
                "cluster_connections": cluster,
                "per_node": per_node,
                "by_application": usage,
                "budget": budget,
            }),
        )
    }

    /// Signs up the labelled test user and logs in.
    async fn sign_up(&self) -> anyhow::Result<TestUser> {
        let email = self.email();
        let password = random_tag() + &random_tag();
        let r = self
            .fresh
            .post(self.url("/api/users"))
            .json(&json!({
                "email": email, "full_name": "deployer verify",
                "password": password, "password_confirmation": password,
            }))
            .send()
            .await
            .context("POST /api/users")?;
        if r.status() != 201 {
            let status = r.status();
            bail!(
                "POST /api/users: {status} {}",
                one_line(&r.text().await.unwrap_or_default())
            );
        }
        let r = self
            .fresh
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .context("POST /api/auth/login")?;
        if r.status() != 200 {
            let status = r.status();
            bail!(
                "POST /api/auth/login: {status} {}",
                one_line(&r.text().await.unwrap_or_default())
            );
        }
        let body: Value = r.json().await.context("reading the login answer")?;
        let token = body["data"]["access_token"]
            .as_str()
            .context("the login answer has no data.access_token")?
            .to_string();
        Ok(TestUser { email, token })
    }

    /// The node each upstream address (`ip:port`) belongs to, for reading nginx's log.
    async fn upstream_nodes(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        let observed = match observe::observe(&self.engine, &self.names).await {
            Ok(o) => o,
            Err(_) => return map,
        };
        for c in observed
            .containers
            .iter()
            .filter(|c| c.role == crate::desired::Role::App)
        {
            let Ok(Some(inspect)) = self.engine.inspect(&c.name).await else {
                continue;
            };
            let ip = inspect
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.get(&self.names.network()).cloned())
                .and_then(|e| e.ip_address);
            if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
                map.insert(
                    format!("{ip}:{}", self.loaded.spec.app.port),
                    c.name.clone(),
                );
            }
        }
        map
    }

    /// Check 5: stateless auth: the token from one login works on every request through the
    /// balancer (served by at least two nodes) and on every node directly.
    async fn auth(&self, user: &anyhow::Result<TestUser>) -> Check {
        let user = match user {
            Ok(u) => u,
            Err(e) => return Check::failed("auth", format!("sign-up failed: {e:#}")),
        };
        let n = self.args.auth_requests as usize;
        let id = |i: usize| format!("verify-{}-me-{i}", self.tag);
        let url = self.url("/api/auth/me");
        let samples = fire(n, self.args.concurrency as usize, |i| {
            self.fresh
                .get(&url)
                .bearer_auth(&user.token)
                .header("x-request-id", id(i))
        })
        .await;
        let mut errors = Vec::new();
        for s in &samples {
            match s.status {
                Some(200) => {
                    let email = serde_json::from_str::<Value>(&s.body)
                        .ok()
                        .and_then(|v| v["data"]["email"].as_str().map(str::to_string));
                    if email.as_deref() != Some(user.email.as_str()) {
                        errors.push("200 with another user".to_string());
                    }
                }
                _ => errors.push(s.error_text()),
            }
        }

        // Which node served each request: nginx's access log, by request id.
        let upstreams = self.upstream_nodes().await;
        let prefix = format!("id=verify-{}-me-", self.tag);
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let logs = self.engine.logs(&self.names.balancer(), n + 2000).await;
            served.clear();
            for line in logs.lines().filter(|l| l.contains(&prefix)) {
                if let Some(addr) = upstream_of(line) {
                    let node = upstreams.get(addr).cloned().unwrap_or(addr.to_string());
                    *served.entry(node).or_default() += 1;
                }
            }
            if served.values().sum::<usize>() >= n || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let attributed: usize = served.values().sum();

        // The same token on every node, from inside the cluster network.
        let port = self.loaded.spec.app.port;
        let direct = futures_util::future::join_all(self.node_names().into_iter().map(|node| {
            let env = [format!("TOKEN={}", user.token)];
            async move {
                let script = format!(
                    "curl -s -m 3 -o /dev/null -w '%{{http_code}}' -H \"Authorization: Bearer $TOKEN\" http://{node}:{port}/api/auth/me; true"
                );
                let code = self
                    .in_balancer(&script, &env)
                    .await
                    .ok()
                    .and_then(|o| o.trim().parse::<u16>().ok())
                    .unwrap_or(0);
                (node, code)
            }
        }))
        .await;
        let refused: Vec<String> = direct
            .iter()
            .filter(|(_, c)| *c != 200)
            .map(|(n, c)| match c {
                0 => format!("{n}: no answer"),
                c => format!("{n} answered {c}"),
            })
            .collect();

        let nodes = self.loaded.spec.app.nodes as usize;
        let spread_needed = nodes >= 2 && self.strategy() != Strategy::IpHash;
        let spread_ok = !spread_needed || served.len() >= 2;
        let passed = errors.is_empty() && refused.is_empty() && spread_ok;
        let mut summary = format!(
            "one login, {n} × GET /api/auth/me: {} ok, served by {} node{} ({}); token accepted directly by {}/{} nodes",
            n - errors.len(),
            served.len(),
            if served.len() == 1 { "" } else { "s" },
            served
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            direct.len() - refused.len(),
            direct.len(),
        );
        if !errors.is_empty() {
            summary.push_str(&format!("; {} failed: {}", errors.len(), errors[0]));
        }
        if !refused.is_empty() {
            summary.push_str(&format!("; {}", refused.join(", ")));
        }
        if !spread_ok {
            summary.push_str("; expected at least two nodes to serve them");
        }
        if attributed < n {
            summary.push_str(&format!(
                " ({attributed} of {n} found in the balancer's log)"
            ));
        }
        Check::new(
            "auth",
            passed,
            summary,
            json!({
                "requests": n,
                "ok": n - errors.len(),
                "errors": errors.len(),
                "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
                "served_by": served,
                "attributed": attributed,
                "direct": direct.iter().map(|(n, c)| json!({"node": n, "status": c})).collect::<Vec<_>>(),
            }),
        )
    }

    /// Check 6: M jobs enqueued through the balancer all complete exactly once, within the
    /// deadline, run by at least two nodes.
    async fn jobs(&self, user: &anyhow::Result<TestUser>) -> Check {
        let Ok(user) = user else {
            return Check::failed("jobs", "no token: the sign-up failed (see auth)");
        };
        let m = self.args.jobs as usize;
        let deadline = Duration::from_secs(self.args.jobs_deadline as u64);
        let t = Instant::now();
        let url = self.url("/api/jobs");
        let samples = fire(m, self.args.concurrency as usize, |i| {
            self.pooled
                .post(&url)
                .bearer_auth(&user.token)
                .json(&json!({"kind": "noop", "args": {"verify": self.tag, "i": i}}))
        })
        .await;
        let refused: Vec<String> = samples
            .iter()
            .filter(|s| s.status != Some(202))
            .map(|s| s.error_text())
            .collect();
        let enqueued = m - refused.len();
        let enqueue_s = t.elapsed().as_secs_f64();

        let sql = format!(
            "SELECT state, attempts, coalesce(node, ''), count(*) FROM jobs \
             WHERE args->>'verify' = '{}' GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
            self.tag
        );
        let mut rows: Vec<JobRow>;
        loop {
            rows = match self.db.query(&sql).await {
                Ok(r) => r.iter().filter_map(|r| JobRow::parse(r)).collect(),
                Err(e) => return Check::failed("jobs", format!("{e:#}")),
            };
            let done = rows
                .iter()
                .filter(|r| r.state == "completed" || r.state == "discarded")
                .map(|r| r.count)
                .sum::<usize>();
            if done >= enqueued || t.elapsed() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = t.elapsed().as_secs_f64();
        let judged = judge_jobs(&rows, m, enqueued, self.loaded.spec.app.nodes);
        let mut summary = format!(
            "{m} jobs: {} completed exactly once in {elapsed:.1}s, run by {} node{} ({})",
            judged.once,
            judged.by_node.len(),
            if judged.by_node.len() == 1 { "" } else { "s" },
            judged
                .by_node
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if !refused.is_empty() {
            summary.push_str(&format!("; {} not enqueued: {}", refused.len(), refused[0]));
        }
        for why in &judged.problems {
            summary.push_str(&format!("; {why}"));
        }
        Check::new(
            "jobs",
            refused.is_empty() && judged.problems.is_empty(),
            summary,
            json!({
                "jobs": m,
                "enqueued": enqueued,
                "completed_once": judged.once,
                "by_node": judged.by_node,
                "by_state": judged.by_state,
                "max_attempts_seen": judged.max_attempts,
                "enqueue_seconds": round(enqueue_s, 2),
                "seconds": round(elapsed, 2),
                "deadline_seconds": self.args.jobs_deadline,
            }),
        )
    }

    /// Check 7: stops the last node, counts failed requests through the balancer while it is
    /// down, brings it back with the deployer's convergence, waits until it serves again.
    async fn chaos(&self) -> Check {
        match self.chaos_run().await {
            Ok(c) => c,
            Err(e) => Check::failed("chaos", format!("{e:#}")),
        }
    }

    async fn chaos_run(&self) -> anyhow::Result<Check> {
        let spec = &self.loaded.spec;
        if spec.app.nodes < 2 {
            return Ok(Check::failed(
                "chaos",
                "a cluster of one node cannot lose one: needs at least 2 nodes",
            ));
        }
        let _lock = crate::ops::lock(self.file, spec.name.as_str())?;
        let Some(session) = crate::ops::prepare(self.file, true).await? else {
            bail!("cluster.toml does not validate");
        };
        let before = plan::plan(&session.desired, &session.observed);
        if !before.is_empty() {
            return Ok(Check::failed(
                "chaos",
                format!(
                    "skipped: the cluster differs from cluster.toml ({}); run `deployer apply` first",
                    before
                        .changes
                        .iter()
                        .map(|c| c.to_string().trim().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let victim = self.names.node(spec.app.nodes);
        let victim_id = session
            .observed
            .get(&victim)
            .map(|c| c.id.clone())
            .unwrap_or_default();
        let secrets = secrets::ensure(&secrets::dir_for(self.file), spec)?;

        // One new connection per request: what is measured is failover away from the
        // lost node. (A client that keeps connections alive can also see an idle one
        // closed by the nginx reload that convergence ends with.)
        let traffic = Traffic::start(
            self.fresh.clone(),
            self.url("/api/health"),
            self.args.concurrency as usize,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Stop: SIGTERM, the app drains, SIGKILL after the grace period.
        let t_stop = Instant::now();
        let grace = Duration::from_secs(spec.rollout.stop_grace_seconds as u64);
        let stopped = self.engine.stop(&victim, grace).await;
        let stop_s = t_stop.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(self.args.chaos_seconds as u64)).await;
        let t_converge = Instant::now();
        let served_while_down =
            traffic.nodes_between(t_stop + Duration::from_secs_f64(stop_s), t_converge);

        // Converge exactly as `deployer apply` does, from what is observed now.
        let converged = async {
            stopped?;
            let observed = observe::observe(&self.engine, &self.names).await?;
            let plan = plan::plan(&session.desired, &observed);
            let progress = Progress::new(true);
            Applier {
                engine: &self.engine,
                spec,
                images: &session.images,
                secrets: &secrets,
                templates: &session.templates,
                desired: &session.desired,
                progress: &progress,
            }
            .apply(&plan)
            .await?;
            Ok::<_, anyhow::Error>(plan)
        }
        .await;
        let converge_s = t_converge.elapsed().as_secs_f64();

        // Back: the node answers through the balancer again.
        let back_deadline = Instant::now() + Duration::from_secs(30);
        let back_at = loop {
            if let Some(at) = traffic.first_from(&victim, t_converge) {
                break Some(at);
            }
            if converged.is_err() || Instant::now() > back_deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // A moment of traffic on the healed cluster, then stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hits = traffic.finish().await;

        let after = observe::observe(&self.engine, &self.names).await?;
        let left = plan::plan(&session.desired, &after);
        let same_container = after.get(&victim).map(|c| c.id.as_str()) == Some(victim_id.as_str());
        let requests = hits.len();
        let failures: Vec<&String> = hits.iter().filter_map(|h| h.node.as_ref().err()).collect();
        // When they failed: while the node stopped or was down, or while converging.
        let phase = |h: &Hit| match () {
            _ if h.at < t_stop => "before_stop",
            _ if h.at < t_converge => "node_down",
            _ if back_at.is_none_or(|b| h.at < b) => "converging",
            _ => "after_recovery",
        };
        let mut failed_by_phase: BTreeMap<&str, usize> = BTreeMap::new();
        for h in hits.iter().filter(|h| h.node.is_err()) {
            *failed_by_phase.entry(phase(h)).or_default() += 1;
        }
        let recovery_s = back_at.map(|at| at.duration_since(t_converge).as_secs_f64());
        let down_s = back_at.map(|at| at.duration_since(t_stop).as_secs_f64());

        let mut problems = Vec::new();
        if let Err(e) = &converged {
            problems.push(format!(
                "convergence failed, {victim} may be left stopped (run `deployer apply`): {e:#}"
            ));
        }
        if converged.is_ok() && back_at.is_none() {
            problems.push(format!(
                "{victim} did not serve through the balancer within 30s"
            ));
        }
        if !failures.is_empty() {
            problems.push(format!(
                "{} failed request{} ({}): {}",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" },
                failed_by_phase
                    .iter()
                    .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
                    .collect::<Vec<_>>()
                    .join(", "),
                failures[0]
            ));
        }
        if served_while_down.contains_key(&victim) {
            problems.push(format!("{victim} answered while stopped"));
        }
        if !left.is_empty() {
            problems.push(format!("the cluster still differs: {}", left.summary()));
        }
        if !same_container {
            problems.push(format!("{victim} is a different container now"));
        }
        let plan_steps = converged
            .as_ref()
            .map(|p| {
                p.changes
                    .iter()
                    .map(|c| c.to_string().trim().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let summary = format!(
            "stopped {victim} ({stop_s:.1}s), {requests} requests through the balancer (new connection each): {} failed; \
             converged in {converge_s:.1}s ({}), serving again {} after convergence began ({} after the stop){}",
            failures.len(),
            plan_steps.join(", "),
            recovery_s.map_or("never".into(), |s| format!("{s:.1}s")),
            down_s.map_or("-".into(), |s| format!("{s:.1}s")),
            if problems.is_empty() {
                String::new()
            } else {
                format!("; {}", problems.join("; "))
            }
        );
        Ok(Check::new(
            "chaos",
            problems.is_empty(),
            summary,
            json!({
                "node": victim,
                "stop_seconds": round(stop_s, 2),
                "requests": requests,
                "failed": failures.len(),
                "failed_by_phase": failed_by_phase,
                "first_errors": failures.iter().take(5).collect::<Vec<_>>(),
                "served_while_down": served_while_down,
                "converge_plan": plan_steps,
                "converge_seconds": round(converge_s, 2),
                "recovery_seconds": recovery_s.map(|s| round(s, 2)),
                "down_seconds": down_s.map(|s| round(s, 2)),
                "same_container": same_container,
                "plan_empty_after": left.is_empty(),
            }),
        ))
    }

    /// Check 8: A bounded load run, like `ab -n N -c C`, on keep-alive connections.
    async fn load(&self) -> Check {
        let n = self.args.requests as usize;
        let c = self.args.concurrency as usize;
        let url = self.url("/api/health");
        let t = Instant::now();
        let samples = fire(n, c, |_| self.pooled.get(&url)).await;
        let secs = t.elapsed().as_secs_f64();
        let errors: Vec<String> = samples
            .iter()
            .filter(|s| s.status != Some(200))
            .map(|s| s.error_text())
            .collect();
        let mut ms: Vec<f64> = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let rps = n as f64 / secs.max(1e-9);
        let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
        let mut summary = format!(
            "{n} × GET /api/health, {c} at a time: {rps:.0} req/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {} errors",
            errors.len()
        );
        if let Some(e) = errors.first() {
            summary.push_str(&format!(" (first: {e})"));
        }
        Check::new(
            "load",
            errors.is_empty(),
            summary,
            json!({
                "requests": n,
                "concurrency": c,
                "seconds": round(secs, 3),
                "requests_per_second": round(rps, 1),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "max_ms": round(ms.last().copied().unwrap_or(0.0), 2),
                "errors": errors.len(),
                "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
            }),
        )
    }

    /// Deletes what verify created (also what an interrupted run left): its user (and, through the foreign key, its outbox
    /// email), every job it caused, and any failed-login counter of its address.
    async fn cleanup(&self) -> Check {
        let email = self.email();
        let sql = String::from(
            "WITH u AS (SELECT id FROM users WHERE email LIKE 'verify-%@verify.invalid'), \
             j AS (DELETE FROM jobs WHERE args ? 'verify' \
                   OR (kind = 'welcome_email' AND args->>'user_id' IN (SELECT id::text FROM u)) RETURNING 1), \
             o AS (DELETE FROM outbox_emails WHERE user_id IN (SELECT id FROM u) RETURNING 1), \
             f AS (DELETE FROM login_failures WHERE key LIKE 'verify-%@verify.invalid|%' RETURNING 1), \
             d AS (DELETE FROM users WHERE id IN (SELECT id FROM u) RETURNING 1) \
             SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM j), (SELECT count(*) FROM o), (SELECT count(*) FROM f)"
        );
        let rows = match self.db.query(&sql).await {
            Ok(r) => r,
            Err(e) => {
                return Check::failed(
                    "cleanup",
                    format!("could not delete test user {email} and its jobs: {e:#}"),
                )
            }
        };
        let nums: Vec<u64> = rows
            .first()
            .map(|r| r.iter().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let [users, jobs, outbox, failures] = nums[..] else {
            return Check::failed("cleanup", format!("unexpected answer {rows:?}"));
        };
        // Nothing labelled may be left.
        let left = self
            .db
            .query(
                "SELECT (SELECT count(*) FROM users WHERE email LIKE 'verify-%@verify.invalid') + \
                 (SELECT count(*) FROM jobs WHERE args ? 'verify')",
            )
            .await
            .ok()
            .and_then(|r| r.first()?.first()?.parse::<u64>().ok());
        Check::new(
            "cleanup",
            left == Some(0),
            format!(
                "removed test user {email} ({users}), {jobs} jobs, {outbox} outbox email{}, {failures} login counters{}",
                if outbox == 1 { "" } else { "s" },
                match left {
                    Some(0) => String::new(),
                    Some(n) => format!("; {n} rows are left"),
                    None => "; could not confirm nothing is left".into(),
                }
            ),
            json!({
                "email": email, "tag": self.tag,
                "users": users, "jobs": jobs, "outbox_emails": outbox, "login_failures": failures,
                "left": left,
            }),
        )
    }
}

/// One HTTP request's outcome.
#[derive(Debug, Clone)]
struct Sample {
    latency: Duration,
    status: Option<u16>,
    body: String,
    error: Option<String>,
}

impl Sample {
    /// The node a 200 from `/api/health` names, or why there is none.
    fn node(&self) -> Result<String, String> {
        if self.status != Some(200) {
            return Err(self.error_text());
        }
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["node"].as_str().map(str::to_string))
            .ok_or_else(|| "200 without a node name".to_string())
    }

    fn error_text(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("status {s}"),
            (None, None) => "no answer".into(),
        }
    }
}

async fn send(req: reqwest::RequestBuilder) -> Sample {
    let t = Instant::now();
    let result = async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let latency = t.elapsed();
    match result {
        Ok((status, body)) => Sample {
            latency,
            status: Some(status),
            body,
            error: None,
        },
        Err(e) => Sample {
            latency,
            status: None,
            body: String::new(),
            error: Some(error_chain(&e)),
        },
    }
}

/// `n` requests, `concurrency` in flight at once.
async fn fire(
    n: usize,
    concurrency: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<Sample> {
    futures_util::stream::iter(0..n)
        .map(|i| send(request(i)))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// A request that reached (or failed to reach) a node at a moment.
struct Hit {
    at: Instant,
    node: Result<String, String>,
}

/// Background traffic through the balancer while the chaos check stops and restarts a
/// node: `workers` loops, each with a short pause between requests (a bounded load).
struct Traffic {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(client: reqwest::Client, url: String, workers: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..workers.max(1))
            .map(|_| {
                let (client, url, stop, hits) =
                    (client.clone(), url.clone(), stop.clone(), hits.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let s = send(client.get(&url)).await;
                        let hit = Hit {
                            at: Instant::now(),
                            node: s.node(),
                        };
                        hits.lock().expect("traffic log").push(hit);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Traffic { stop, hits, tasks }
    }

    /// When `node` first answered at or after `since`.
    fn first_from(&self, node: &str, since: Instant) -> Option<Instant> {
        self.hits
            .lock()
            .expect("traffic log")
            .iter()
            .filter(|h| h.at >= since && h.node.as_deref() == Ok(node))
            .map(|h| h.at)
            .min()
    }

    /// Successful answers per node between two moments.
    fn nodes_between(&self, from: Instant, to: Instant) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for h in self.hits.lock().expect("traffic log").iter() {
            if let (true, Ok(n)) = (h.at >= from && h.at < to, &h.node) {
                *out.entry(n.clone()).or_default() += 1;
            }
        }
        out
    }

    async fn finish(self) -> Vec<Hit> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.hits.lock().expect("traffic log"))
    }
}

/// The balancer as clients reach it: an unspecified bind address means loopback works.
fn balancer_url(bind: IpAddr, port: u16) -> String {
    let ip = match bind {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, port))
}

/// 12 lowercase letters and digits.
fn random_tag() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Jain's fairness index: (Σx)² / (n·Σx²); 1 when even, 1/n when one takes all.
pub fn fairness(counts: &[usize]) -> f64 {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64).powi(2)).sum();
    if counts.is_empty() || squares == 0.0 {
        return 0.0;
    }
    sum * sum / (counts.len() as f64 * squares)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistributionVerdict {
    pub passed: bool,
    pub fairness: f64,
    /// Why it failed, when it did.
    pub why: Option<String>,
}

/// Judges per-node counts by the strategy: round_robin, least_conn and random spread
/// over every node fairly; ip_hash sends one client to one node.
pub fn judge_distribution(
    strategy: Strategy,
    counts: &BTreeMap<String, usize>,
    errors: usize,
) -> DistributionVerdict {
    let values: Vec<usize> = counts.values().copied().collect();
    let fairness = fairness(&values);
    let served: Vec<&String> = counts
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(k, _)| k)
        .collect();
    let idle: Vec<&String> = counts
        .iter()
        .filter(|(_, &c)| c == 0)
        .map(|(k, _)| k)
        .collect();
    let why = if errors > 0 {
        Some(format!("{errors} requests failed"))
    } else {
        match strategy {
            Strategy::IpHash if served.len() == 1 => None,
            Strategy::IpHash => Some(format!(
                "ip_hash should send one client to one node, but {} served",
                served.len()
            )),
            _ if !idle.is_empty() => Some(format!(
                "{} served nothing",
                idle.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ if fairness < MIN_FAIRNESS => Some(format!("fairness below {MIN_FAIRNESS}")),
            _ => None,
        }
    };
    DistributionVerdict {
        passed: why.is_none(),
        fairness,
        why,
    }
}

/// One row of the jobs query: state, attempts, node, count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobRow {
    state: String,
    attempts: u32,
    node: String,
    count: usize,
}

impl JobRow {
    fn parse(r: &[String]) -> Option<JobRow> {
        Some(JobRow {
            state: r.first()?.clone(),
            attempts: r.get(1)?.parse().ok()?,
            node: r.get(2)?.clone(),
            count: r.get(3)?.parse().ok()?,
        })
    }
}

#[derive(Debug, Default)]
struct JobsVerdict {
    once: usize,
    by_node: BTreeMap<String, usize>,
    by_state: BTreeMap<String, usize>,
    max_attempts: u32,
    problems: Vec<String>,
}

fn judge_jobs(rows: &[JobRow], wanted: usize, enqueued: usize, nodes: u32) -> JobsVerdict {
    let mut v = JobsVerdict::default();
    for r in rows {
        *v.by_state.entry(r.state.clone()).or_default() += r.count;
        v.max_attempts = v.max_attempts.max(r.attempts);
        if r.state == "completed" {
            *v.by_node.entry(r.node.clone()).or_default() += r.count;
            if r.attempts == 1 {
                v.once += r.count;
            }
        }
    }
    let found: usize = v.by_state.values().sum();
    if found != enqueued {
        v.problems
            .push(format!("{enqueued} enqueued but {found} in the queue"));
    }
    if v.once < wanted {
        let pending: Vec<String> = v
            .by_state
            .iter()
            .filter(|(s, _)| s.as_str() != "completed")
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        if !pending.is_empty() {
            v.problems
                .push(format!("not done by the deadline: {}", pending.join(", ")));
        }
    }
    if v.max_attempts > 1 {
        v.problems.push(format!(
            "some ran more than once (up to {} attempts)",
            v.max_attempts
        ));
    }
    let need = if nodes >= 2 { 2 } else { 1 };
    if v.by_node.len() < need {
        v.problems.push(format!(
            "run by {} node{}, expected at least {need}",
            v.by_node.len(),
            if v.by_node.len() == 1 { "" } else { "s" }
        ));
    }
    v
}

/// One answer of a probe run with `curl -w '\n%{http_code} %{time_total}\n'`.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    body: String,
    status: u16,
    ms: f64,
}

/// Splits the probe output into (body line, "code seconds" line) pairs.
fn parse_probes(out: &str) -> Vec<Probe> {
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            let mut meta = c[1].split_whitespace();
            let status = meta.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let secs: f64 = meta.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            Probe {
                body: c[0].to_string(),
                status,
                ms: round(secs * 1000.0, 1),
            }
        })
        .collect()
}

/// The upstream that finally answered, from an access log line in the format of the
/// generated nginx.conf (`upstream=$upstream_addr ust=…`); retries are comma-separated.
fn upstream_of(line: &str) -> Option<&str> {
    let rest = line.split_once("upstream=")?.1;
    let value = rest.split(" ust=").next()?;
    let last = value.rsplit([',', ' ']).find(|s| !s.is_empty())?;
    (last != "-").then_some(last.trim())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn code_text(code: u16) -> String {
    if code == 0 {
        "no answer".into()
    } else {
        code.to_string()
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn fairness_is_one_when_even_and_one_over_n_when_one_takes_all() {
        assert!((fairness(&[334, 333, 333]) - 1.0).abs() < 1e-4);
        assert!((fairness(&[1000, 0, 0]) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(fairness(&[]), 0.0);
        assert_eq!(fairness(&[0, 0]), 0.0);
    }

    #[test]
    fn distribution_is_judged_by_strategy() {
        let even = counts(&[("a", 334), ("b", 333), ("c", 333)]);
        let one = counts(&[("a", 1000), ("b", 0), ("c", 0)]);
        let skewed = counts(&[("a", 600), ("b", 300), ("c", 100)]);
        let cases = [
            (Strategy::RoundRobin, &even, 0, true),
            (Strategy::LeastConn, &even, 0, true),
            (Strategy::Random, &even, 0, true),
            (Strategy::RoundRobin, &one, 0, false),
            (Strategy::RoundRobin, &skewed, 0, false),
            (Strategy::RoundRobin, &even, 1, false),
            (Strategy::IpHash, &one, 0, true),
            (Strategy::IpHash, &even, 0, false),
            (Strategy::IpHash, &one, 2, false),
        ];
        for (strategy, counts, errors, passed) in cases {
            let v = judge_distribution(strategy, counts, errors);
            assert_eq!(v.passed, passed, "{strategy:?} {counts:?} {errors}: {v:?}");
            assert_eq!(v.why.is_none(), passed);
        }
    }

    fn row(state: &str, attempts: u32, node: &str, count: usize) -> JobRow {
        JobRow {
            state: state.into(),
            attempts,
            node: node.into(),
            count,
        }
    }

    #[test]
    fn jobs_must_complete_once_on_two_nodes() {
        let good = [row("completed", 1, "a", 30), row("completed", 1, "b", 20)];
        let v = judge_jobs(&good, 50, 50, 3);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.once, 50);

        let one_node = [row("completed", 1, "a", 50)];
        assert_eq!(judge_jobs(&one_node, 50, 50, 3).problems.len(), 1);
        assert!(judge_jobs(&one_node, 50, 50, 1).problems.is_empty());

        let twice = [row("completed", 1, "a", 49), row("completed", 2, "b", 1)];
        let v = judge_jobs(&twice, 50, 50, 3);
        assert_eq!(v.once, 49);
        assert!(v.problems.iter().any(|p| p.contains("more than once")));

        let late = [row("completed", 1, "a", 40), row("available", 0, "", 10)];
        let v = judge_jobs(&late, 50, 50, 3);
        assert!(v.problems.iter().any(|p| p.contains("10 available")));
    }

    #[test]
    fn probe_output_pairs_bodies_with_codes() {
        let out = "{\"node\":\"x\"}\n200 0.004\n\n000 0.001\n";
        let p = parse_probes(out);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].status, 200);
        assert_eq!(p[0].ms, 4.0);
        assert_eq!(p[0].body, "{\"node\":\"x\"}");
        assert_eq!(p[1].status, 0);
        assert_eq!(p[1].body, "");
    }

    #[test]
    fn upstream_is_read_from_the_access_log() {
        let line = "172.30.0.1 - [25/Nov/2026:08:23:11 +0000] \"GET /api/health HTTP/1.1\" 200 112 rt=0.003 upstream=172.30.0.3:4000 ust=200 urt=0.003 id=x";
        assert_eq!(upstream_of(line), Some("172.30.0.3:4000"));
        let retried =
            "… upstream=172.30.0.5:4000, 172.30.0.4:4000 ust=502, 200 urt=0.001, 0.002 id=y";
        assert_eq!(upstream_of(retried), Some("172.30.0.4:4000"));
        assert_eq!(upstream_of("… upstream=- ust=- id=z"), None);
        assert_eq!(upstream_of("no upstream here"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn defaults_are_the_command_lines() {
        let a = VerifyArgs::default();
        assert!(!a.chaos && !a.json);
        assert_eq!((a.requests, a.concurrency, a.jobs), (1000, 10, 50));
    }

    #[test]
    fn balancer_url_uses_loopback_for_an_unspecified_bind() {
        assert_eq!(
            balancer_url("0.0.0.0".parse().unwrap(), 80),
            "http://127.0.0.1:80"
        );
        assert_eq!(
            balancer_url("127.0.0.1".parse().unwrap(), 4000),
            "http://127.0.0.1:4000"
        );
        assert_eq!(balancer_url("::".parse().unwrap(), 8), "http://[::1]:8");
    }
}
