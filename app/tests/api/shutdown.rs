//! Graceful shutdown: in-flight requests finish, running jobs finish until the deadline, the
//! rest is handed back to the queue.

use std::time::Duration;

use app::config::PasswordSettings;
use serde_json::json;

use crate::helpers::{spawn_app_with, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_and_jobs_and_hands_back_the_rest() {
    let mut app = spawn_app_with(|s| {
        s.shutdown_timeout = Duration::from_secs(2);
        // A login that takes a while, so it is in flight when the signal comes.
        s.passwords = PasswordSettings {
            iterations: 8,
            ..PasswordSettings::owasp()
        };
    })
    .await;
    let token = app.token().await;
    let short = app
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 300}}))
        .await;
    let long = app
        .enqueue(&token, &json!({"kind": "sleep", "args": {"ms": 60000}}))
        .await;
    for id in [short, long] {
        app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
            job["state"] == "executing"
        })
        .await;
    }
    let login = {
        let client = app.client.clone();
        let url = app.url("/api/auth/login");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"email": "nobody@example.com", "password": PASSWORD}))
                .send()
                .await
                .map(|response| response.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = std::time::Instant::now();
    let stopped = app.begin_shutdown();

    assert_eq!(
        login.await.unwrap().unwrap(),
        401,
        "the in-flight request finished"
    );
    stopped.await.unwrap().expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let state = |id: uuid::Uuid| {
        let pool = app.pool().clone();
        async move {
            sqlx::query_as::<_, (String, i32, serde_json::Value)>(
                "SELECT state::text, attempts, errors FROM jobs WHERE public_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(state(short).await.0, "completed");
    let (long_state, attempts, errors) = state(long).await;
    assert_eq!(long_state, "available");
    assert_eq!(attempts, 0, "the interrupted attempt is not charged");
    assert!(errors.to_string().contains("handed back"), "{errors}");
    // The listener is closed.
    assert!(app
        .client
        .get(app.url("/api/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err());
}

/// The real binary with the deployer's 18 s budget, idle HTTP/1.1 keep-alive connections held
/// open (as nginx's upstream keepalive does), the job queue having run, and one request in
/// flight at SIGTERM: the request still gets its answer, and the process exits soon after
/// rather than at its drain deadline (14.4 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_promptly_with_idle_keep_alive_connections_held_open() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::Command;
    use std::time::Instant;

    let db = crate::helpers::TestDatabase::create().await;
    let crate::helpers::Binary {
        mut child,
        // Kept: the reader thread drains the node's stdout while the test runs.
        lines: _lines,
        port,
        ..
    } = crate::helpers::Binary::start(
        &db,
        "linger-1",
        &[
            ("JOB_WORKERS", "4"),
            ("SHUTDOWN_TIMEOUT_SECS", "18"),
            ("ARGON2_MEMORY_KIB", "64"),
            ("ARGON2_ITERATIONS", "100"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");

    // Some traffic and jobs first, through a pooled client whose connections stay open.
    let client = reqwest::Client::new();
    let email = format!("linger-{}@example.com", uuid::Uuid::new_v4().simple());
    let signed_up = client
        .post(format!("{base}/api/users"))
        .json(
            &json!({"email": email, "full_name": "L", "password": PASSWORD,
                      "password_confirmation": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["access_token"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let queued = client
            .post(format!("{base}/api/jobs"))
            .bearer_auth(&token)
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status(), 202);
    }
    // Idle keep-alive connections, each with one completed request, left open.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: node\r\n\r\n")
            .unwrap();
        let mut buffer = [0u8; 4096];
        assert!(stream.read(&mut buffer).unwrap() > 0);
        idle.push(stream);
    }
    // One request in flight when the signal comes (argon2 makes the login take a while).
    let in_flight = {
        let client = client.clone();
        let url = format!("{base}/api/auth/login");
        tokio::spawn(async move {
            let status = client
                .post(url)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .map(|response| response.status().as_u16());
            (status, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;

    let signalled = Instant::now();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().map(|exit| (exit, Instant::now())))
        .await
        .unwrap()
        .unwrap();
    let (answer, answered) = in_flight.await.unwrap();
    assert_eq!(answer.unwrap(), 200, "the in-flight request finished");
    assert!(exit.0.success(), "exit status {:?}", exit.0);
    // Measured from the later of the signal and the in-flight answer: the drain deadline is
    // 14.4 s, so 5 s tells "exited once the work was done" from "waited out the deadline".
    let since = exit.1 - answered.max(signalled);
    assert!(
        since < Duration::from_secs(5),
        "the node took {since:?} to exit after its work was done ({:?} after SIGTERM)",
        exit.1 - signalled
    );
    eprintln!(
        "SIGTERM → exit: {:?} (in-flight answered {:?} after SIGTERM)",
        exit.1 - signalled,
        answered.saturating_duration_since(signalled)
    );
    drop(idle);
}

/// On a swarm the engine drops a task from DNS, then sends SIGTERM; a balancer that has not
/// asked DNS again yet still sends new connections there. With `SHUTDOWN_DELAY_SECS` the real
/// binary keeps accepting and answering for that long after SIGTERM (readiness already 503),
/// then drains and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_node_with_a_delay_serves_new_connections_until_the_delay_is_over() {
    use std::process::Command;
    use std::time::Instant;

    let db = crate::helpers::TestDatabase::create().await;
    let crate::helpers::Binary {
        mut child,
        lines: _lines,
        port,
        ..
    } = crate::helpers::Binary::start(
        &db,
        "delayed-1",
        &[("SHUTDOWN_TIMEOUT_SECS", "5"), ("SHUTDOWN_DELAY_SECS", "2")],
    );
    let base = format!("http://127.0.0.1:{port}");
    let fresh = || {
        // A new connection per request, as a balancer's first request to a node makes.
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    assert_eq!(
        fresh()
            .get(format!("{base}/api/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let signalled = Instant::now();
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let exited =
        tokio::task::spawn_blocking(move || child.wait().map(|exit| (exit, Instant::now())));

    let (mut served, mut ready_503) = (0, 0);
    while signalled.elapsed() < Duration::from_millis(1500) {
        let health = fresh().get(format!("{base}/api/health")).send().await;
        assert_eq!(
            health.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "a new connection {:?} after SIGTERM, inside the 2 s delay",
            signalled.elapsed()
        );
        served += 1;
        if fresh()
            .get(format!("{base}/api/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
            == Some(503)
        {
            ready_503 += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served >= 5, "only {served} requests in the delay");
    assert_eq!(ready_503, served, "readiness says the node is going away");

    let (exit, at) = exited.await.unwrap().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let took = at - signalled;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM: the 2 s delay, then a prompt drain"
    );
}
