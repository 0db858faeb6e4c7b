//! `deployer backup` and `deployer restore` on the real engine and on the swarm lab:
//! users signed up and jobs enqueued through the API, a backup, `destroy --volumes`,
//! a fresh `apply`, the restore — and the same users log in with the same passwords,
//! every table has the rows it had. Refusals change nothing: a database that holds
//! rows (without --yes), a file whose checksum does not match, a file that is not a
//! pg_dump archive, a missing file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use deployer::backup::{self, BackupError};
use deployer::events::Silent;
use e2e::{serial, wait_for, Cluster};
use serde_json::{json, Value};
use sha2::Digest;

const PASSWORD: &str = "backup-e2e-password";

/// Signs up `who` (password `PASSWORD-<who>`) through the balancer.
fn sign_up(c: &Cluster, who: &str) -> String {
    let email = format!("{who}@backup.example.com");
    c.rt.block_on(async {
        let r = c
            .client()
            .post(c.url("/api/users"))
            .json(&json!({"email": email, "full_name": who,
                "password": format!("{PASSWORD}-{who}"),
                "password_confirmation": format!("{PASSWORD}-{who}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "sign-up of {who}: {}",
            r.text().await.unwrap()
        );
    });
    email
}

/// Logs `who` in with its password: the status, and the token on success.
fn log_in(c: &Cluster, who: &str) -> (u16, Option<String>) {
    c.rt.block_on(async {
        let r = c
            .client()
            .post(c.url("/api/auth/login"))
            .json(&json!({"email": format!("{who}@backup.example.com"),
                "password": format!("{PASSWORD}-{who}")}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let token = v["data"]["access_token"].as_str().map(str::to_string);
        (status, token)
    })
}

/// Who the token belongs to, as `/api/auth/me` says.
fn me(c: &Cluster, token: &str) -> String {
    e2e::me(c, token, 1)[0]["data"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn enqueue(c: &Cluster, token: &str, n: usize) {
    c.rt.block_on(async {
        for i in 0..n {
            let r = c
                .client()
                .post(c.url("/api/jobs"))
                .bearer_auth(token)
                .json(&json!({"kind": "noop", "args": {"from": "backup-e2e", "i": i}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "enqueue: {}", r.status());
        }
    })
}

/// Rows of one SQL statement in the cluster's database, through the library (psql in
/// the PostgreSQL container, or a one-off task on a swarm).
fn sql(c: &Cluster, statement: &str) -> Vec<Vec<String>> {
    c.rt.block_on(async {
        let d = c.deployment().await.unwrap();
        d.sql(statement).await.unwrap()
    })
}

/// Every table and its rows.
fn counts(c: &Cluster) -> Vec<(String, u64)> {
    backup::parse_tables(&sql(c, backup::TABLES_SQL)).unwrap()
}

fn rows_of(counts: &[(String, u64)], table: &str) -> u64 {
    counts
        .iter()
        .find(|(t, _)| t == table)
        .map_or(0, |(_, n)| *n)
}

fn take_backup(c: &Cluster, out: &Path) -> backup::Backup {
    c.rt.block_on(async {
        let d = c.deployment().await.unwrap();
        backup::backup(&d, Some(out)).await.unwrap()
    })
}

fn restore(c: &Cluster, file: &Path, replace: bool) -> Result<backup::Restored, BackupError> {
    let checked = backup::check(file)?;
    c.rt.block_on(async {
        let d = c.deployment().await.unwrap();
        let _lock = d.lock().unwrap();
        backup::restore(&d, &checked, replace, &Silent).await
    })
}

/// The backup file is complete, what its checksum file says, and a pg_dump archive.
fn assert_sound(b: &backup::Backup) {
    let bytes = std::fs::read(&b.file).unwrap();
    assert!(bytes.starts_with(b"PGDMP"), "not a pg_dump archive");
    assert_eq!(bytes.len() as u64, b.bytes);
    let sha = hex(&sha2::Sha256::digest(&bytes));
    assert_eq!(sha, b.sha256);
    let sidecar = std::fs::read_to_string(backup::checksum_path(&b.file)).unwrap();
    assert_eq!(
        sidecar,
        format!("{sha}  {}\n", b.file.file_name().unwrap().to_string_lossy())
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&b.file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the dump holds password hashes");
    // No temporary file left beside it.
    let dir = b.file.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A copy of `file` (and of its checksum file) with one byte changed in the middle.
fn damaged_copy(file: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let copy = dir.join("damaged.dump");
    std::fs::write(&copy, bytes).unwrap();
    let sidecar = std::fs::read_to_string(backup::checksum_path(file))
        .unwrap()
        .replace(
            &*file.file_name().unwrap().to_string_lossy(),
            "damaged.dump",
        );
    std::fs::write(backup::checksum_path(&copy), sidecar).unwrap();
    copy
}

/// A text file with a checksum file that matches it: refused as no archive.
fn not_a_dump(dir: &Path) -> PathBuf {
    let file = dir.join("notes.dump");
    let text = b"-- a plain SQL file, not a pg_dump custom archive\nDROP TABLE users;\n";
    std::fs::write(&file, text).unwrap();
    std::fs::write(
        backup::checksum_path(&file),
        format!("{}  notes.dump\n", hex(&sha2::Sha256::digest(text))),
    )
    .unwrap();
    file
}

/// The node containers (or tasks) and whether each runs: a refusal must not stop them.
fn nodes_running(c: &Cluster) -> Vec<(String, bool)> {
    let mut v: Vec<_> = c
        .observe()
        .units
        .into_iter()
        .filter(|u| u.role == deployer::names::Role::App)
        .map(|u| (u.name, u.running))
        .collect();
    v.sort();
    v
}

#[test]
fn a_backup_survives_destroy_volumes_and_restores_users_jobs_and_row_counts() {
    let _serial = serial();
    let c = Cluster::new("backup");
    c.write(|t| t.replace("nodes = 3", "nodes = 2"));
    c.apply().unwrap();
    let users = ["ada", "grace", "edsger"];
    for u in users {
        sign_up(&c, u);
    }
    let (status, token) = log_in(&c, "ada");
    assert_eq!(status, 200);
    let token = token.unwrap();
    enqueue(&c, &token, 25);
    wait_for("the jobs to complete", Duration::from_secs(60), || {
        let left = sql(&c, "SELECT count(*) FROM jobs WHERE state <> 'completed'");
        (left[0][0] == "0").then_some(())
    });
    // One job caught mid-run by the backup: executing on a node, its lease an hour off.
    sql(
        &c,
        "UPDATE jobs SET state = 'executing', node = 'gone', lease_expires_at = now() + interval '1 hour' \
         WHERE id = (SELECT min(id) FROM jobs)",
    );
    let before = counts(&c);
    assert_eq!(rows_of(&before, "public.users"), 3);
    // 25 enqueued, and each sign-up's welcome email.
    assert_eq!(rows_of(&before, "public.jobs"), 25 + 3);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/demo.dump");
    let b = take_backup(&c, &file);
    assert_sound(&b);
    println!(
        "backup: {} bytes in {:.2}s, sha256 {}",
        b.bytes,
        b.elapsed.as_secs_f64(),
        b.sha256
    );

    // Refusals: nothing changes, the nodes keep running.
    let running = nodes_running(&c);
    assert!(running.iter().all(|(_, r)| *r), "{running:?}");
    let e = restore(&c, &file, false).unwrap_err();
    assert!(matches!(e, BackupError::NotEmpty { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("public.users: 3 rows"), "{msg}");
    assert!(msg.contains("--yes"), "{msg}");
    let damaged = damaged_copy(&file, dir.path());
    let e = restore(&c, &damaged, true).unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e}");
    let e = restore(&c, &not_a_dump(dir.path()), true).unwrap_err();
    assert!(matches!(e, BackupError::NotADump { .. }), "{e}");
    let e = restore(&c, &dir.path().join("missing.dump"), true).unwrap_err();
    assert!(matches!(e, BackupError::NoFile { .. }), "{e}");
    std::fs::copy(&file, dir.path().join("bare.dump")).unwrap();
    let e = restore(&c, &dir.path().join("bare.dump"), true).unwrap_err();
    assert!(matches!(e, BackupError::NoChecksum { .. }), "{e}");
    assert_eq!(counts(&c), before, "a refusal changed the database");
    assert_eq!(nodes_running(&c), running, "a refusal touched the nodes");
    assert!(c.plan().is_empty());

    // The data gone with the volume, then a fresh cluster.
    c.destroy_all().unwrap();
    c.apply().unwrap();
    assert_eq!(
        log_in(&c, "ada").0,
        401,
        "the fresh cluster still knows ada"
    );
    assert!(backup::occupied(&counts(&c)).is_empty());

    // An empty database needs no --yes.
    let restored = restore(&c, &file, false).unwrap();
    println!(
        "restore: {} bytes, pg_restore {:.2}s, {:.2}s with the nodes stopped and back",
        restored.bytes,
        restored.restore.as_secs_f64(),
        restored.elapsed.as_secs_f64()
    );
    assert!(!restored.stopped.is_empty(), "the nodes were not stopped");
    assert_eq!(restored.tables, before);
    assert_eq!(counts(&c), before);
    for u in users {
        let (status, token) = log_in(&c, u);
        assert_eq!(status, 200, "{u} cannot log in after the restore");
        assert_eq!(me(&c, &token.unwrap()), format!("{u}@backup.example.com"));
    }
    assert!(c.plan().is_empty(), "the cluster differs after the restore");
    // The job caught mid-run went back to the queue and ran.
    wait_for(
        "the handed-back job to complete",
        Duration::from_secs(60),
        || {
            let left = sql(&c, "SELECT count(*) FROM jobs WHERE state <> 'completed'");
            (left[0][0] == "0").then_some(())
        },
    );
    let errors = sql(
        &c,
        "SELECT errors::text FROM jobs WHERE id = (SELECT min(id) FROM jobs)",
    );
    assert!(
        errors[0][0].contains("restored from a backup"),
        "{errors:?}"
    );
    // New sign-ups work (the sequences and indexes came back too).
    sign_up(&c, "barbara");
    enqueue(&c, &token_of(&c, "barbara"), 1);

    // --yes replaces a database that holds rows: barbara is gone again.
    let replaced = restore(&c, &file, true).unwrap();
    assert_eq!(rows_of(&replaced.tables, "public.users"), 3);
    assert_eq!(log_in(&c, "barbara").0, 401);
    assert_eq!(log_in(&c, "grace").0, 200);
    assert!(c.plan().is_empty());
}

fn token_of(c: &Cluster, who: &str) -> String {
    let (status, token) = log_in(c, who);
    assert_eq!(status, 200);
    token.unwrap()
}

#[test]
fn a_swarm_backup_survives_destroy_volumes_and_restores_logins() {
    let _serial = serial();
    let c = Cluster::on_swarm("backup", 4007);
    c.write(|t| t.replace("nodes = 3", "nodes = 2"));
    c.apply().unwrap();
    for u in ["ada", "grace"] {
        sign_up(&c, u);
    }
    enqueue(&c, &token_of(&c, "ada"), 5);
    let before = counts(&c);
    assert_eq!(rows_of(&before, "public.users"), 2);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swarm.dump");
    let b = take_backup(&c, &file);
    assert_sound(&b);
    println!(
        "swarm backup: {} bytes in {:.2}s",
        b.bytes,
        b.elapsed.as_secs_f64()
    );
    let e = restore(&c, &file, false).unwrap_err();
    assert!(matches!(e, BackupError::NotEmpty { .. }), "{e}");

    c.destroy_all().unwrap();
    c.apply().unwrap();
    assert_eq!(
        log_in(&c, "ada").0,
        401,
        "the fresh cluster still knows ada"
    );

    let restored = restore(&c, &file, false).unwrap();
    println!(
        "swarm restore: pg_restore {:.2}s, {:.2}s with the nodes stopped and back",
        restored.restore.as_secs_f64(),
        restored.elapsed.as_secs_f64()
    );
    assert!(!restored.stopped.is_empty(), "the nodes were not stopped");
    assert_eq!(
        rows_of(&restored.tables, "public.users"),
        rows_of(&before, "public.users")
    );
    assert_eq!(
        rows_of(&restored.tables, "public.jobs"),
        rows_of(&before, "public.jobs")
    );
    for u in ["ada", "grace"] {
        let token = token_of(&c, u);
        assert_eq!(me(&c, &token), format!("{u}@backup.example.com"));
    }
    assert!(c.plan().is_empty(), "the cluster differs after the restore");
}
