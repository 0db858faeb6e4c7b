//! The real binary: `app migrate` and refusing to start without a proper signing key.

use std::process::Command;

use crate::helpers::{database_url, Binary, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_runs_are_safe() {
    let db = TestDatabase::create_empty().await;
    let url = database_url(&db);
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_app"))
                .arg("migrate")
                .env("DATABASE_URL", &url)
                .env("NODE_NAME", "migrator")
                .env("LOG_FORMAT", "text")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(applied, app::db::MIGRATOR.iter().count() as i64);
}

#[tokio::test]
async fn serve_refuses_a_missing_or_short_signing_key() {
    let db = TestDatabase::create_empty().await;
    let url = database_url(&db);
    let run = |secret: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
        command
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("PORT", "0")
            .env_remove("JWT_SECRET")
            .env_remove("JWT_SECRET_FILE");
        if let Some(secret) = secret {
            command.env("JWT_SECRET", secret);
        }
        command.output().unwrap()
    };
    let missing = run(None);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("JWT_SECRET_FILE"), "{stderr}");
    let short = run(Some("too-short"));
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

/// The binary as the deployer runs it: env contract in, JSON logs out, health with the node
/// name, and a clean exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("db-password");
    std::fs::write(&password, "unused-with-trust-auth\n").unwrap();
    let Binary {
        mut child,
        lines: lines_rx,
        port,
        ..
    } = Binary::start(
        &db,
        "demo-app-7",
        &[
            ("DATABASE_PASSWORD_FILE", password.to_str().unwrap()),
            ("DATABASE_POOL_SIZE", "2"),
            ("JOB_WORKERS", "2"),
            ("SHUTDOWN_TIMEOUT_SECS", "5"),
            ("ARGON2_MEMORY_KIB", "64"),
            ("ARGON2_ITERATIONS", "1"),
        ],
    );

    let client = reqwest::Client::new();
    let health: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["node"], "demo-app-7");
    let ready = client
        .get(format!("http://127.0.0.1:{port}/api/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let connections: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'demo-app-%'",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        !connections.is_empty() && connections.len() <= 3,
        "{connections:?}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(lines_rx
        .iter()
        .any(|line| line["message"] == "node stopped"));
}
