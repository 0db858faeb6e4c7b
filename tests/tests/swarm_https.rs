//! HTTPS at the balancer on the swarm lab: the same keys as on one engine, the certificate and
//! key as versioned Swarm secrets, HTTP and HTTPS published in host mode on the balancer's host
//! (host1:4008 and host1:4009, reached here as 127.0.0.1:14008 and :14009). A rotated
//! certificate is a new secret, so the balancer's one task is replaced (stop-first: it holds
//! the host ports); the test measures what clients see meanwhile.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::https::served_certificate;
use e2e::{nodes_seen, serial, Cluster, Lab, Load};

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

/// Fresh-connection probes every 50 ms in the background: when they failed.
struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Gap>,
}

#[derive(Default)]
struct Gap {
    probes: usize,
    failed: usize,
    first_failure: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Gap {
    fn outage(&self) -> Duration {
        match (self.first_failure, self.last_failure) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        }
    }
}

impl Probe {
    fn start(c: &Cluster) -> Probe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = c
            .client_builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let (url, s) = (c.url("/api/health"), stop.clone());
        let handle = std::thread::spawn(move || {
            let rt = e2e::runtime();
            let mut gap = Gap::default();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let ok = rt
                    .block_on(async { client.get(&url).send().await.ok() })
                    .is_some_and(|r| r.status() == 200);
                gap.probes += 1;
                if !ok {
                    let now = Instant::now();
                    gap.failed += 1;
                    gap.first_failure.get_or_insert(now);
                    gap.last_failure = Some(now);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            gap
        });
        Probe { stop, handle }
    }

    fn finish(self) -> Gap {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
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

    // `deployer verify` on the swarm speaks HTTPS to the balancer (as reached from here).
    let options = deployer::verify::Options {
        requests: 200,
        url: Some(c.url("")),
        ..Default::default()
    };
    let report = e2e::verify(&c, &options).unwrap();
    assert!(report.passed(), "{report:?}");

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
    let probe = Probe::start(&c);
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    c.apply().unwrap();
    let took = start.elapsed();
    e2e::wait_for(
        "the balancer to answer again",
        Duration::from_secs(60),
        || {
            c.rt.block_on(async { c.client().get(c.url("/lb/health")).send().await.ok() })
                .filter(|r| r.status() == 200)
                .map(drop)
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed, errors) = fresh.finish();
    let gap = probe.finish();
    println!(
        "certificate rotation on the swarm: apply {:.1}s; a probe every 50 ms failed from {:.1}s to \
         {:.1}s after the apply began ({:.1}s without an answer, {} of {} probes); \
         a 4-worker new-connection loop: {ok} ok, {failed} failed: {errors:?}",
        took.as_secs_f64(),
        gap.first_failure.map_or(0.0, |t| (t - start).as_secs_f64()),
        gap.last_failure.map_or(0.0, |t| (t - start).as_secs_f64()),
        gap.outage().as_secs_f64(),
        gap.failed,
        gap.probes,
    );
    // What the balancer's one task costs: a gap, bounded by a stop and a start of nginx.
    assert!(gap.outage() < Duration::from_secs(30), "{:?}", gap.outage());
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
