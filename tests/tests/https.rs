//! HTTPS at the balancer on the real engine: a certificate made at test time by a CA of the
//! test's own, a real TLS client that trusts that CA. The seed's checks pass over HTTPS
//! (health, spread over the nodes, ~1000 requests with none failed, stateless auth, a node
//! stopped); plain HTTP redirects; HSTS is sent; HTTP/2 is spoken; the key is a 0400 file in
//! the balancer only, never in `generated/`; a rotated certificate is served after a reload
//! of the same container, under load, with no failed request.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use deployer::plan::Change;
use e2e::https::served_certificate;
use e2e::{
    docker, free_port, me, nodes_seen, serial, token, wait_for, wait_until_dropped, Cluster, Load,
};
use serde_json::Value;

/// GET `path` `n` times, `concurrency` at a time, each on a new connection: (ok, failures).
fn fire(c: &Cluster, path: &str, n: usize, concurrency: usize) -> (usize, Vec<String>) {
    c.rt.block_on(async {
        let client = c.client();
        let url = c.url(path);
        let mut ok = 0;
        let mut failed = Vec::new();
        for _ in 0..n / concurrency {
            let batch = (0..concurrency).map(|_| client.get(&url).send());
            for r in futures_util::future::join_all(batch).await {
                match r {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
        }
        (ok, failed)
    })
}

/// `curl` as a person would check HTTP/2: the protocol version it negotiated.
fn curl_http_version(c: &Cluster) -> String {
    let ca = c.dir.path().join("test-ca.pem");
    std::fs::write(&ca, c.https.as_ref().unwrap().ca.pem()).unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--cacert",
        ])
        .arg(&ca)
        .arg(c.url("/api/health"))
        .output()
        .expect("curl is installed (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, recursively, as text.
fn all_text(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_text(&path));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

#[test]
fn the_seed_checks_pass_over_https_and_a_rotated_certificate_is_reloaded() {
    let _serial = serial();
    let mut c = Cluster::new("https-life");
    let port = free_port();
    c.use_https(
        port,
        format!("127.0.0.1:{port}"),
        &["localhost", "127.0.0.1"],
    );
    c.apply().unwrap();
    assert!(c.plan().is_empty(), "{}", c.plan());

    // 1. Health over HTTPS, with the test CA as the only trust in it.
    let r = c.rt.block_on(async {
        let r = c.client().get(c.url("/api/health")).send().await.unwrap();
        let hsts = r
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), hsts, r.json::<Value>().await.unwrap())
    });
    assert_eq!(r.0, 200);
    assert_eq!(r.1.as_deref(), Some("max-age=31536000"), "HSTS on HTTPS");
    assert_eq!(r.2["status"], "ok");
    assert_eq!(curl_http_version(&c), "2", "HTTP/2 over TLS (ALPN)");

    // Plain HTTP: a permanent redirect to the same path on HTTPS, no HSTS (it means nothing there).
    let (status, location, hsts) = c.rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .post(c.http_url("/api/auth/login?x=1"))
            .send()
            .await
            .unwrap();
        let header = |h: &str| r.headers().get(h).map(|v| v.to_str().unwrap().to_string());
        (
            r.status(),
            header("location"),
            header("strict-transport-security"),
        )
    });
    assert_eq!(status, 308);
    assert_eq!(
        location.as_deref(),
        Some(format!("https://127.0.0.1:{port}/api/auth/login?x=1").as_str())
    );
    assert_eq!(hsts, None);
    // A client that follows it lands on HTTPS.
    let followed = c.rt.block_on(async {
        let r = c
            .client()
            .get(c.http_url("/api/health"))
            .send()
            .await
            .unwrap();
        (r.status(), r.url().to_string())
    });
    assert_eq!(followed.0, 200);
    assert!(followed.1.starts_with("https://"), "{}", followed.1);

    // 2. Spread over the three nodes.
    let seen: BTreeSet<String> = nodes_seen(&c, 12).into_iter().collect();
    let want: BTreeSet<String> = (1..=3).map(|i| format!("{}-app-{i}", c.name)).collect();
    assert_eq!(seen, want);

    // 3. 1000 requests, 10 at a time, each a new TLS connection: none fails.
    let start = Instant::now();
    let (ok, failed) = fire(&c, "/api/health", 1000, 10);
    println!(
        "1000 HTTPS requests on new connections: {ok} ok, {} failed in {:.1}s",
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!((ok, failed.len()), (1000, 0), "{failed:?}");

    // 4. Stateless auth: one login (a sign-up, then a token), /me accepted over and over,
    // whichever node answers.
    let token = token(&c, "https-ada");
    for v in me(&c, &token, 30) {
        let email = v["data"]["email"].as_str().unwrap();
        assert!(email.starts_with("https-ada-"), "{v}");
    }

    // The key: a 0400 file of nginx's user in the balancer, in no generated file, no
    // environment, no log line.
    let lb = format!("{}-lb", c.name);
    let key_line = {
        let key = std::fs::read_to_string(c.dir.path().join(e2e::https::KEY_FILE)).unwrap();
        key.lines().nth(1).unwrap().to_string()
    };
    assert_eq!(
        docker(&["exec", &lb, "stat", "-c", "%a %u", "/run/secrets/tls_key"]).trim(),
        "400 101"
    );
    for (file, text) in all_text(&c.dir.path().join("generated")) {
        assert!(!text.contains(&key_line), "the TLS key is in {file}");
    }
    let compose =
        std::fs::read_to_string(c.dir.path().join("generated/docker-compose.yml")).unwrap();
    assert!(
        compose.contains("tls_key:"),
        "the compose file mounts the key as a secret"
    );
    assert!(!docker(&["inspect", &lb]).contains(&key_line));
    assert!(!docker(&["logs", &lb]).contains(&key_line));

    // 5. A node stopped by hand: once nginx dropped it, every request is served by the others.
    let node2 = format!("{}-app-2", c.name);
    docker(&["stop", "-t", "5", &node2]);
    wait_until_dropped(&c, &node2);
    let (ok, failed) = fire(&c, "/api/health", 200, 10);
    assert_eq!((ok, failed.len()), (200, 0), "{failed:?}");
    c.apply().unwrap();
    wait_for("node 2 to serve again", Duration::from_secs(20), || {
        nodes_seen(&c, 6).contains(&node2).then_some(())
    });

    // `deployer verify` speaks HTTPS to it, accepting exactly the certificate of tls_cert.
    let options = deployer::verify::Options {
        requests: 300,
        ..Default::default()
    };
    let report = e2e::verify(&c, &options).unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(
        report.balancer.starts_with("https://"),
        "{}",
        report.balancer
    );

    // A rotated certificate (a new key too), twice under the same clients: each time the plan
    // is one reload, the same container serves the new certificate (nginx keeps a certificate
    // loaded across reloads while its file's inode and mtime stay the same: the placed files
    // must not look unchanged), and clients on new and kept connections lose nothing.
    let ids = c.container_ids();
    let fresh = Load::start(&c, 4, "/api/health", None);
    let keep = Load::keep_alive(&c, 4);
    for round in 1..=2 {
        let before = served_certificate(&c);
        let rotated = c
            .https
            .as_ref()
            .unwrap()
            .ca
            .issue(&["localhost", "127.0.0.1"]);
        assert_ne!(before, rotated.der);
        rotated.write(c.dir.path());
        let plan = c.plan();
        assert_eq!(plan.changes.len(), 1, "{plan}");
        assert!(
            matches!(&plan.changes[0], Change::Reload { name, reason } if *name == lb && reason.contains("certificate")),
            "{plan}"
        );
        c.apply().unwrap();
        let served = served_certificate(&c);
        assert!(
            served == rotated.der,
            "rotation {round}: the new certificate is not served (the previous one is: {})",
            served == before
        );
        assert!(c.plan().is_empty(), "{}", c.plan());
    }
    std::thread::sleep(Duration::from_millis(1000));
    fresh.assert_none_failed(50, "the certificate rotations (new connections)");
    keep.assert_none_failed(50, "the certificate rotations (keep-alive)");
    assert_eq!(c.container_ids(), ids, "no container was replaced");
}
