//! Clients that keep their connection, as browsers, load balancers in front of us and
//! `wrk` do: each worker holds one HTTP/1.1 connection through the balancer and sends its
//! requests on it one after another. It reconnects only when the server said
//! `Connection: close` with an answer; nothing is ever retried. A request lost because the
//! connection was closed under it is a failure, and so is a connection closed while idle
//! without that word: the next request a client writes on it would be lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// What one worker sends, again and again.
#[derive(Debug, Clone)]
pub enum Call {
    Get {
        path: String,
    },
    /// A POST with a JSON body and a bearer token: never retried by anyone.
    Post {
        path: String,
        body: String,
        token: String,
    },
}

impl Call {
    fn request(&self, port: u16) -> hyper::Request<Full<Bytes>> {
        let b = hyper::Request::builder().header(HOST, format!("127.0.0.1:{port}"));
        match self {
            Call::Get { path } => b.method("GET").uri(path).body(Full::default()),
            Call::Post { path, body, token } => b
                .method("POST")
                .uri(path)
                .header(CONTENT_TYPE, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::new(Bytes::from(body.clone()))),
        }
        .expect("a valid request")
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// Connections opened (the first, and one after each `Connection: close`).
    connections: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 10 {
            e.push(what);
        }
    }
}

/// What a group of workers saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub connections: usize,
    /// The first few failures, each with what was seen.
    pub errors: Vec<String>,
}

/// Workers sending their calls through the balancer on kept connections, in the
/// background, until [`KeepAlive::finish`] (at most `limit`).
pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    groups: Vec<(Call, Arc<Counts>)>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl KeepAlive {
    /// `workers` connections for each call.
    pub fn start(port: u16, calls: &[(Call, usize)], limit: Duration) -> KeepAlive {
        let stop = Arc::new(AtomicBool::new(false));
        let groups: Vec<(Call, Arc<Counts>)> = calls
            .iter()
            .map(|(c, _)| (c.clone(), Arc::new(Counts::default())))
            .collect();
        let jobs: Vec<(Call, Arc<Counts>, usize)> = groups
            .iter()
            .zip(calls)
            .map(|((c, n), (_, workers))| (c.clone(), n.clone(), *workers))
            .collect();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            crate::runtime().block_on(async move {
                let deadline = Instant::now() + limit;
                let mut all = Vec::new();
                for (call, counts, workers) in jobs {
                    for _ in 0..workers {
                        all.push(tokio::spawn(worker(
                            port,
                            call.clone(),
                            counts.clone(),
                            s.clone(),
                            deadline,
                        )));
                    }
                }
                for w in all {
                    let _ = w.await;
                }
            });
        });
        KeepAlive {
            stop,
            groups,
            handle: Some(handle),
        }
    }

    /// What each call's workers saw so far, in the order given.
    pub fn tally(&self) -> Vec<Tally> {
        self.groups
            .iter()
            .map(|(_, c)| Tally {
                ok: c.ok.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                connections: c.connections.load(Ordering::Relaxed),
                errors: c.errors.lock().unwrap().clone(),
            })
            .collect()
    }

    /// Stops the workers (each finishes the request it is in) and returns the tallies.
    pub fn finish(mut self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.tally()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

async fn connect(port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(
    port: u16,
    call: Call,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut sender = match conn.take() {
            Some(s) => s,
            None => match connect(port).await {
                Ok(s) => {
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                    s
                }
                Err(e) => {
                    counts.fail(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if sender.ready().await.is_err() || sender.is_closed() {
            counts.fail(
                "the server closed an idle keep-alive connection without `Connection: close`"
                    .into(),
            );
            continue;
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let r = sender
                .send_request(call.request(port))
                .await
                .map_err(|e| format!("request lost with its connection: {e}"))?;
            let status = r.status();
            let close = r
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let body = r
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("answer cut off: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, close, body))
        })
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".into()));
        match answer {
            Ok((status, close, body)) => {
                if status.is_success() {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.fail(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
                if !close {
                    conn = Some(sender);
                }
            }
            Err(e) => counts.fail(e),
        }
    }
}
