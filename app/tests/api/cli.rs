//! The real binary: `app migrate` and refusing to start without a proper signing key.

use std::process::Command;

use crate::helpers::TestDatabase;

fn database_url(db: &TestDatabase) -> String {
    let options = &db.options;
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        db.name
    )
}

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
