use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, test_redis};

#[tokio::test]
async fn health_has_the_fixed_shape() {
    let app = spawn_app().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let object = body.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["node", "status", "timestamp", "uptime", "version"]);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node"], app.node.as_str());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].as_f64().unwrap() >= 0.0);
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap())
        .expect("timestamp is RFC 3339");
}

#[tokio::test]
async fn health_is_fresh_on_every_call_and_names_its_own_node() {
    // Two nodes in one process: the per-thread rendering must never answer one with the other.
    let (one, two) = (spawn_app().await, spawn_app().await);
    let health = |body: Value| {
        let at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
        (
            at,
            body["uptime"].as_f64().unwrap(),
            body["node"].as_str().unwrap().to_owned(),
        )
    };
    let (first_at, first_uptime, node) = health(one.get("/api/health").await.json().await.unwrap());
    assert_eq!(node, one.node);
    let (_, _, node) = health(two.get("/api/health").await.json().await.unwrap());
    assert_eq!(node, two.node);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (later_at, later_uptime, node) = health(one.get("/api/health").await.json().await.unwrap());
    assert_eq!(node, one.node);
    assert!(later_at > first_at, "{later_at} should be after {first_at}");
    assert!(
        later_uptime > first_uptime,
        "{later_uptime} should be above {first_uptime}"
    );
}

#[tokio::test]
async fn ready_checks_the_database_and_redis() {
    let app = spawn_app_with(|s| s.redis = Some(test_redis("ready"))).await;
    let response = app.get("/api/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn ready_is_503_naming_the_failing_check_when_the_database_is_down() {
    // Port 1 on loopback: nothing listens there.
    let app = spawn_app_with(|s| {
        s.database.connect_options = s.database.connect_options.clone().port(1);
    })
    .await;
    let response = app.get("/api/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "failing");
    // Liveness does not touch the database.
    assert_eq!(app.get("/api/health").await.status(), 200);
}

#[tokio::test]
async fn metrics_expose_requests_pool_and_jobs() {
    let app = spawn_app().await;
    let token = app.token().await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/health").await.status(), 200);
    }
    let id = app
        .enqueue(&token, &serde_json::json!({"kind": "noop"}))
        .await;
    app.wait_for_job(&token, id, Duration::from_secs(10), |job| {
        job["state"] == "completed"
    })
    .await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|line| line.contains(needle));
    assert!(
        has(r#"http_requests_total{method="GET",route="/api/health",status="200"}"#),
        "{text}"
    );
    assert!(has("http_request_duration_seconds_bucket{"), "{text}");
    assert!(has(r#"db_pool_connections{state="idle"}"#), "{text}");
    assert!(has(r#"db_pool_connections{state="in_use"}"#), "{text}");
    assert!(has(r#"jobs{state="completed"}"#), "{text}");
    assert!(has("jobs_executed_total{"), "{text}");
}

/// A scrape's cost does not grow with the jobs table: each state is counted through the index up
/// to a limit, and a state past it (finished jobs within their retention) is estimated.
#[tokio::test]
async fn a_metrics_scrape_reads_a_bounded_number_of_jobs_however_many_there_are() {
    use app::jobs::queue::{count_by_state_sql, EXACT_COUNT_LIMIT};

    let app = spawn_app().await;
    let finished = 3 * EXACT_COUNT_LIMIT;
    sqlx::query(
        "INSERT INTO jobs (kind, state, completed_at) \
         SELECT 'noop', 'completed', now() FROM generate_series(1, $1)",
    )
    .bind(finished)
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("INSERT INTO jobs (kind, state, scheduled_at) VALUES ('noop', 'scheduled', now() + interval '1 day')")
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query("ANALYZE jobs")
        .execute(app.pool())
        .await
        .unwrap();

    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let completed = value(r#"jobs{state="completed"}"#);
    assert!(
        (0.8 * finished as f64..1.2 * finished as f64).contains(&completed),
        "{completed} completed jobs reported, {finished} there"
    );
    assert_eq!(value(r#"jobs_count_exact{state="completed"}"#), 0.0);
    assert_eq!(value(r#"jobs{state="scheduled"}"#), 1.0);
    assert_eq!(value(r#"jobs_count_exact{state="scheduled"}"#), 1.0);
    assert_eq!(value(r#"jobs{state="available"}"#), 0.0);

    // What the query reads: no plan node touching `jobs` sees more than the limit + 1 rows
    // (returned or filtered out) per loop, with 30,001 rows in the table.
    let plan: Value = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) {}",
        count_by_state_sql()
    ))
    .bind(EXACT_COUNT_LIMIT)
    .fetch_one(app.pool())
    .await
    .unwrap();
    fn walk(node: &Value, reads: &mut Vec<(String, f64)>) {
        let touches_jobs = node["Relation Name"] == "jobs"
            || node["Index Name"]
                .as_str()
                .is_some_and(|i| i.starts_with("jobs"));
        if touches_jobs {
            let rows = node["Actual Rows"].as_f64().unwrap_or(0.0)
                + node["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
            reads.push((node["Node Type"].to_string(), rows));
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, reads);
        }
    }
    let mut reads = Vec::new();
    walk(&plan[0]["Plan"], &mut reads);
    assert!(!reads.is_empty(), "{plan}");
    for (node, rows) in &reads {
        assert!(
            *rows <= (EXACT_COUNT_LIMIT + 1) as f64,
            "{node} read {rows} rows per loop: {plan}"
        );
    }
}

#[tokio::test]
async fn database_backed_requests_get_a_quick_503_when_the_database_is_down() {
    // A working node and a token, then a second node whose database is unreachable
    // (port 1 on loopback refuses): its answers are 503s with the stable body, fast.
    let app = spawn_app().await;
    let token = app.token().await;
    let down = app
        .spawn_peer(|s| {
            s.database.connect_options = s.database.connect_options.clone().port(1);
        })
        .await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let response = down.me(&token).await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a 503 must not hang: {:?}",
            started.elapsed()
        );
    }
    let response = down
        .post_user(&serde_json::json!({"email": "x@example.com", "full_name": "X", "password": "password1", "password_confirmation": "password1"}))
        .await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn ready_is_503_when_redis_goes_away_and_logins_still_work() {
    // A Redis of this test's own, so it can be stopped.
    let port = crate::infra::free_port();
    let command = crate::infra::redis_server_command(port);
    let mut redis = std::process::Command::new(&command[0])
        .args(&command[1..])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/install-deps)");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !crate::infra::ping_redis(port) {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = spawn_app_with(|s| {
        let mut redis = test_redis("gone");
        redis.url = format!("redis://127.0.0.1:{port}/");
        s.redis = Some(redis);
    })
    .await;
    assert_eq!(app.get("/api/ready").await.status(), 200);
    app.sign_up("gone@example.com").await;

    let _ = redis.kill();
    let _ = redis.wait();

    let started = std::time::Instant::now();
    let response = app.get("/api/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "failing", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/api/health").await.status(), 200);
    // The limiter fails open: a broken Redis does not lock users out.
    let token = app.token_for("gone@example.com").await;
    assert_eq!(app.me(&token).await.status(), 200);
}
