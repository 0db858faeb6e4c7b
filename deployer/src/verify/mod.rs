//! `deployer verify`: does the running cluster do what cluster.toml says?
//!
//! This module is the entry point and the order of the checks: [`verify`] runs them
//! against a loaded cluster file and returns a [`Report`]. The checks live in
//! [`checks`] and [`chaos`], the traffic they send in [`traffic`], and the pure
//! judgements of what they measured in [`verdict`].
//!
//! Each check talks to the cluster the way its users or the deployer do: through the
//! balancer's published port (reqwest), inside the cluster network (an exec of curl in
//! the balancer container), or through psql in the PostgreSQL container. Nothing here
//! uses the docker CLI. The chaos check stops one node through the engine and brings it
//! back with the deployer's own convergence.
//!
//! verify leaves the cluster as it found it: its test user (`verify-<tag>@verify.invalid`)
//! and every job it caused are deleted at the end, and chaos only runs on a cluster whose
//! plan is empty, so converging afterwards restores exactly what was there.

mod chaos;
mod checks;
mod traffic;
mod verdict;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Choice;
use crate::config::{Loaded, Strategy};
use crate::deploy::Deployment;
use crate::deploy::TargetProbes;
use crate::names::Names;
use crate::target::Probes;

pub use verdict::{fairness, judge_distribution, DistributionVerdict, MIN_FAIRNESS};

/// What verify does and how hard it pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Also stop one node, count failed requests, and bring it back with convergence.
    pub chaos: bool,
    /// Requests of the distribution check and of the load run.
    pub requests: u32,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// GET /api/auth/me calls made with one login's token.
    pub auth_requests: u32,
    /// Background jobs to enqueue.
    pub jobs: u32,
    /// How long the jobs may take to complete.
    pub jobs_deadline: Duration,
    /// How long the stopped node stays down while traffic runs (chaos).
    pub chaos_duration: Duration,
    /// The balancer as this machine reaches it, when not at the address the file gives
    /// (a swarm's balancer host behind another name, a tunnel, a forwarded port).
    pub url: Option<String>,
}

impl Default for Options {
    /// The defaults of `deployer verify` (a test in the CLI holds the two together).
    fn default() -> Options {
        Options {
            chaos: false,
            requests: 1000,
            concurrency: 10,
            auth_requests: 100,
            jobs: 50,
            jobs_deadline: Duration::from_secs(30),
            chaos_duration: Duration::from_secs(3),
            url: None,
        }
    }
}

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

/// Runs every check against the cluster `loaded` describes (read from `file`, whose
/// directory holds its secrets and lock); `on_check` sees each one as it finishes.
pub async fn verify(
    loaded: &Loaded,
    file: &Path,
    options: &Options,
    on_check: &mut dyn FnMut(&Check),
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let deployment = Deployment::open(file, loaded.clone()).await?;
    let observed = deployment.observe().await?;
    if observed.units.is_empty() {
        bail!(
            "cluster `{}` is not deployed; run `deployer apply` first",
            deployment.names().cluster()
        );
    }
    if options.chaos && loaded.spec.target().swarm().is_some() {
        bail!(
            "--chaos stops one node through the engine, and a swarm manager cannot stop one task \
             on another host; run verify without --chaos (losing a whole host is tested by the \
             swarm end-to-end tests)"
        );
    }
    let v = Verifier::new(file, loaded, &deployment, options).await?;
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
    if loaded.spec.database().pooler().is_some() {
        record(v.pooler(&user).await);
    }
    if options.chaos {
        record(v.chaos().await);
    }
    record(v.load().await);
    record(v.cleanup().await);

    Ok(Report {
        cluster: v.names.cluster().to_string(),
        strategy: loaded.spec.balancer().strategy().as_str(),
        nodes: loaded.spec.app().nodes(),
        balancer: v.base_url.clone(),
        checks,
        elapsed_seconds: verdict::round(start.elapsed().as_secs_f64(), 1),
    })
}

/// What every check shares: the cluster, how to reach it, and the label of what verify
/// creates.
struct Verifier<'a> {
    file: &'a Path,
    loaded: &'a Loaded,
    names: Names,
    /// The target's way to look inside the cluster (SQL, scripts on its network, logs).
    probes: TargetProbes,
    options: &'a Options,
    /// `http://bind:port`, the balancer as clients reach it.
    base_url: String,
    /// Labels everything verify creates: `verify-<tag>@verify.invalid`, jobs' `args.verify`.
    tag: String,
    clients: traffic::Clients,
}

impl<'a> Verifier<'a> {
    async fn new(
        file: &'a Path,
        loaded: &'a Loaded,
        deployment: &Deployment,
        options: &'a Options,
    ) -> anyhow::Result<Verifier<'a>> {
        let spec = &loaded.spec;
        let names = deployment.names().clone();
        let probes = deployment
            .probes()
            .await
            .context("reading the database password (was the cluster applied from this file?)")?;
        let (base_url, https) = traffic::balancer(spec);
        let clients = traffic::Clients::new(options.concurrency as usize, https.as_ref())?;
        Ok(Verifier {
            file,
            loaded,
            probes,
            names,
            options,
            base_url: match &options.url {
                Some(url) => url.trim_end_matches('/').to_string(),
                None if spec.target().swarm().is_some() => {
                    spec.balancer_url().trim_end_matches('/').to_string()
                }
                None => base_url,
            },
            tag: random_tag(),
            clients,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn strategy(&self) -> Strategy {
        self.loaded.spec.balancer().strategy()
    }

    fn node_names(&self) -> Vec<String> {
        crate::model::node_names(&self.loaded.spec)
    }

    /// Where each node of the file answers on the cluster's network (`host:port`): as the
    /// target reports it, else its name (a container name resolves on one engine).
    async fn node_endpoints(&self) -> std::collections::HashMap<String, String> {
        let mut known = self.probes.node_endpoints().await.unwrap_or_default();
        let port = self.loaded.spec.app().port();
        self.node_names()
            .into_iter()
            .map(|node| {
                let endpoint = known
                    .remove(&node)
                    .unwrap_or_else(|| format!("{node}:{port}"));
                (node, endpoint)
            })
            .collect()
    }

    fn email(&self) -> String {
        format!("verify-{}@verify.invalid", self.tag)
    }

    /// Runs `script` with `sh -c` in the balancer container, with `env`.
    async fn in_balancer(&self, script: &str, env: &[String]) -> anyhow::Result<String> {
        let (code, out) = self.probes.in_cluster(script, env).await?;
        if code != 0 {
            bail!("exited with {code}: {}", out.trim());
        }
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tags_are_twelve_lowercase_letters_and_digits() {
        let (a, b) = (random_tag(), random_tag());
        assert_ne!(a, b);
        for t in [a, b] {
            assert_eq!(t.len(), 12);
            assert!(t
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }
}
