//! The HTTP traffic verify sends through the balancer: the clients, one request
//! ([`send`]), a bounded batch ([`fire`]), and background [`Traffic`] that logs which
//! node answered when.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::Value;

/// Per-request timeout of every HTTP call verify makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The two ways verify reaches the balancer.
pub(super) struct Clients {
    /// One new connection per request, so every request is balanced afresh.
    pub fresh: reqwest::Client,
    /// Keep-alive connections, as a load tool uses them.
    pub pooled: reqwest::Client,
}

impl Clients {
    /// `concurrency` is how many keep-alive connections the pooled client keeps; `https` the
    /// certificate the balancer must present, when it serves HTTPS.
    pub fn new(concurrency: usize, https: Option<&Https>) -> anyhow::Result<Clients> {
        let build = |idle: usize| -> anyhow::Result<reqwest::Client> {
            let mut b = reqwest::Client::builder()
                .pool_max_idle_per_host(idle)
                .timeout(REQUEST_TIMEOUT);
            if let Some(h) = https {
                b = b.use_preconfigured_tls(crate::tls::pinned_client(h.leaf.clone()));
            }
            b.build().context("building the HTTP client")
        };
        Ok(Clients {
            fresh: build(0)?,
            pooled: build(concurrency)?,
        })
    }
}

/// How verify speaks HTTPS to the balancer: it accepts exactly the certificate of `tls_cert`
/// (its first one), whatever name or CA it has — a public CA's, a private one's, a
/// self-signed one. What verify checks is that the balancer serves the file's certificate;
/// `validate` judges the certificate itself.
pub(super) struct Https {
    pub leaf: Vec<u8>,
}

/// An unspecified bind address means loopback works.
fn reachable(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The balancer as clients reach it: `http://bind:port`, or with a certificate
/// `https://bind:https_port` (see [`Https`]).
pub(super) fn balancer(spec: &crate::config::ClusterSpec) -> (String, Option<Https>) {
    let b = spec.balancer();
    match b.tls() {
        None => (balancer_url(b.bind(), b.port()), None),
        Some(tls) => {
            let addr = SocketAddr::new(reachable(b.bind()), tls.https_port());
            let leaf = tls
                .certificate()
                .chain_der()
                .into_iter()
                .next()
                .unwrap_or_default();
            (format!("https://{addr}"), Some(Https { leaf }))
        }
    }
}

/// The balancer's plain HTTP address.
pub(super) fn balancer_url(bind: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(reachable(bind), port))
}

/// One HTTP request's outcome.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub latency: Duration,
    pub status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
}

impl Sample {
    /// The node a 200 from `/api/health` names, or why there is none.
    pub fn node(&self) -> Result<String, String> {
        if self.status != Some(200) {
            return Err(self.error_text());
        }
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["node"].as_str().map(str::to_string))
            .ok_or_else(|| "200 without a node name".to_string())
    }

    pub fn error_text(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("status {s}"),
            (None, None) => "no answer".into(),
        }
    }
}

pub(super) async fn send(req: reqwest::RequestBuilder) -> Sample {
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
pub(super) async fn fire(
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
pub(super) struct Hit {
    pub at: Instant,
    pub node: Result<String, String>,
}

/// Background traffic through the balancer while the chaos check stops and restarts a
/// node: `workers` loops, each with a short pause between requests (a bounded load).
pub(super) struct Traffic {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(client: reqwest::Client, url: String, workers: usize) -> Traffic {
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
    pub fn first_from(&self, node: &str, since: Instant) -> Option<Instant> {
        self.hits
            .lock()
            .expect("traffic log")
            .iter()
            .filter(|h| h.at >= since && h.node.as_deref() == Ok(node))
            .map(|h| h.at)
            .min()
    }

    /// Successful answers per node between two moments.
    pub fn nodes_between(&self, from: Instant, to: Instant) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for h in self.hits.lock().expect("traffic log").iter() {
            if let (true, Ok(n)) = (h.at >= from && h.at < to, &h.node) {
                *out.entry(n.clone()).or_default() += 1;
            }
        }
        out
    }

    pub async fn finish(self) -> Vec<Hit> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.hits.lock().expect("traffic log"))
    }
}

/// A reqwest error with its causes ("error sending request: connection refused").
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

    fn sample(status: Option<u16>, body: &str, error: Option<&str>) -> Sample {
        Sample {
            latency: Duration::ZERO,
            status,
            body: body.into(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_sample_names_its_node_or_why_not() {
        let cases = [
            (sample(Some(200), r#"{"node":"a-1"}"#, None), Ok("a-1")),
            (
                sample(Some(200), "{}", None),
                Err("200 without a node name"),
            ),
            (sample(Some(502), "", None), Err("status 502")),
            (sample(None, "", None), Err("no answer")),
            (sample(None, "", Some("refused")), Err("refused")),
        ];
        for (s, want) in cases {
            assert_eq!(
                s.node(),
                want.map(str::to_string).map_err(str::to_string),
                "{s:?}"
            );
        }
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
