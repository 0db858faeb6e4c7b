//! HTTPS at the balancer on the swarm lab: the same keys as on one engine, the certificate and
//! key as versioned Swarm secrets, HTTP and HTTPS published in host mode on the balancer's host
//! (host1:4008 and host1:4009, reached here as 127.0.0.1:14008 and :14009). A rotated
//! certificate is a new secret, so the balancer's one task is replaced (stop-first: it holds
//! the host ports); the test measures what clients see meanwhile.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{nodes_seen, serial, Cluster, Lab, Load};

/// The certificate the balancer presents over HTTPS (DER).
fn served_certificate(c: &Cluster) -> Vec<u8> {
    c.rt.block_on(async {
        let client = c.client_builder().tls_info(true).build().unwrap();
        let r = client.get(c.url("/lb/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .expect("the TLS connection shows the server's certificate")
            .to_vec()
    })
}

/// The swarm secrets of the cluster, by name.
fn secrets(c: &Cluster) -> Vec<String> {
    let out = Command::new("docker")
        .arg("-H")
        .arg(Lab::get().var("DOCKER_HOST"))
        .args([
            "secret",
            "ls",
            "--filter",
            &format!("label=io.deployer.cluster={}", c.name),
            "--format",
            "{{.Name}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_swarm_cluster_serves_https_and_a_rotated_certificate_rolls_its_balancer() {
    let _serial = serial();
    let lab = Lab::get();
    let host = lab.var("SWARM_LAB_BALANCER_HOST");
    let mut c = Cluster::on_swarm("swhttps", 4008);
    c.use_https(
        4009,
        lab.reach(&host, 4009),
        &["localhost", "127.0.0.1", &host],
    );
    let start = Instant::now();
    c.apply().unwrap();
    println!(
        "apply with HTTPS on the swarm: {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(c.plan().is_empty(), "{}", c.plan());

    // Served over HTTPS by every task; HSTS sent.
    let (status, hsts) = c.rt.block_on(async {
        let r = c.client().get(c.url("/api/health")).send().await.unwrap();
        let hsts = r
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), hsts)
    });
    assert_eq!(status, 200);
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    let seen: std::collections::BTreeSet<String> = nodes_seen(&c, 12).into_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Plain HTTP on host1:4008 redirects to HTTPS on the published HTTPS port.
    let (status, location) = c.rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client.get(c.http_url("/api/health")).send().await.unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), location)
    });
    assert_eq!(status, 308);
    let location = location.unwrap();
    assert!(
        location.starts_with("https://") && location.ends_with(":4009/api/health"),
        "{location}"
    );

    // The key is a versioned Swarm secret (never in generated/).
    let before = secrets(&c);
    assert!(
        before
            .iter()
            .any(|s| s.starts_with(&format!("{}-tls_key-", c.name))),
        "{before:?}"
    );
    let key = std::fs::read_to_string(c.dir.path().join(e2e::https::KEY_FILE)).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    for f in ["nginx.conf", "docker-compose.yml"] {
        let text = std::fs::read_to_string(c.dir.path().join("generated").join(f)).unwrap();
        assert!(!text.contains(key_line), "the key is in generated/{f}");
    }

    // A rotated certificate: new secrets, the balancer's task replaced; what clients see.
    let rotated = c
        .https
        .as_ref()
        .unwrap()
        .ca
        .issue(&["localhost", "127.0.0.1", &host]);
    rotated.write(c.dir.path());
    let fresh = Load::start(&c, 4, "/api/health", None);
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    c.apply().unwrap();
    let took = start.elapsed();
    // Until the new task answers again.
    let back = Instant::now();
    let answered = e2e::wait_for(
        "the balancer to answer again",
        Duration::from_secs(60),
        || {
            c.rt.block_on(async { c.client().get(c.url("/lb/health")).send().await.ok() })
                .filter(|r| r.status() == 200)
        },
    );
    drop(answered);
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed, errors) = fresh.finish();
    println!(
        "certificate rotation on the swarm: apply {:.1}s (+{:.1}s until answering); \
         {ok} requests ok, {failed} failed (new connections, 4 at a time): {errors:?}",
        took.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    assert_eq!(
        served_certificate(&c),
        rotated.der,
        "the new certificate is served"
    );
    let after = secrets(&c);
    assert!(
        after
            .iter()
            .any(|s| !before.contains(s) && s.contains("-tls_key-")),
        "a new versioned key secret: {before:?} → {after:?}"
    );
    assert!(c.plan().is_empty(), "{}", c.plan());
    assert!(ok > 0);
}
