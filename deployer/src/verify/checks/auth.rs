//! The auth check: verify's test user signs up and logs in once, and that one token
//! works on every request through the balancer and on every node directly.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::super::traffic::fire;
use super::super::verdict::{self, one_line, upstream_of, AuthFigures};
use super::super::{random_tag, Check, Verifier};
use crate::target::Probes;

/// The test user verify signs up, and its token.
pub(in crate::verify) struct TestUser {
    pub email: String,
    pub token: String,
}

impl Verifier<'_> {
    /// Signs up the labelled test user and logs in.
    pub(in crate::verify) async fn sign_up(&self) -> anyhow::Result<TestUser> {
        let email = self.email();
        let password = random_tag() + &random_tag();
        let r = self
            .clients
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
            .clients
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
        self.probes.node_addresses().await.unwrap_or_default()
    }

    /// Check 5: stateless auth: the token from one login works on every request through the
    /// balancer (served by at least two nodes) and on every node directly.
    pub(in crate::verify) async fn auth(&self, user: &anyhow::Result<TestUser>) -> Check {
        let user = match user {
            Ok(u) => u,
            Err(e) => return Check::failed("auth", format!("sign-up failed: {e:#}")),
        };
        let n = self.options.auth_requests as usize;
        let id = |i: usize| format!("verify-{}-me-{i}", self.tag);
        let url = self.url("/api/auth/me");
        let samples = fire(n, self.options.concurrency as usize, |i| {
            self.clients
                .fresh
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
            let logs = self
                .probes
                .logs(&self.names.balancer(), n + 2000)
                .await
                .unwrap_or_default();
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

        // The same token on every node, from inside the cluster network.
        let endpoints = self.node_endpoints().await;
        let direct = futures_util::future::join_all(self.node_names().into_iter().map(|node| {
            let env = [format!("TOKEN={}", user.token)];
            let endpoint = endpoints[&node].clone();
            async move {
                let script = format!(
                    "curl -s -m 3 -o /dev/null -w '%{{http_code}}' -H \"Authorization: Bearer $TOKEN\" http://{endpoint}/api/auth/me; true"
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

        verdict::auth_check(&AuthFigures {
            requests: n,
            errors,
            served,
            direct,
            nodes: self.loaded.spec.app().nodes() as usize,
            strategy: self.strategy(),
        })
    }
}
