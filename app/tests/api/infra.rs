//! One throwaway PostgreSQL and one throwaway Redis per test binary run, on 127.0.0.1 and free
//! ports, unless `TEST_DATABASE_URL` / `TEST_REDIS_URL` name existing ones.
//!
//! Each server runs under a small `sh` watchdog that stops it and deletes its directory once this
//! test process is gone, however it ended. With `CI=true` a server that cannot be started fails
//! the tests with a clear message; nothing is skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

pub struct Infra {
    /// Options for the maintenance database, as a superuser.
    pub admin: PgConnectOptions,
    pub redis_url: String,
}

pub fn infra() -> &'static Infra {
    static INFRA: OnceLock<Infra> = OnceLock::new();
    INFRA.get_or_init(|| {
        let admin = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                PgConnectOptions::from_str(&url).expect("TEST_DATABASE_URL is not a valid URL")
            }
            _ => start_postgres().unwrap_or_else(|error| fail("PostgreSQL", &error)),
        };
        let redis_url = match std::env::var("TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_redis().unwrap_or_else(|error| fail("Redis", &error)),
        };
        Infra { admin, redis_url }
    })
}

fn fail(what: &str, error: &str) -> ! {
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    panic!(
        "could not start a throwaway {what} for the app tests{}: {error}\n\
         hint: install the Debian packages postgresql (15) and redis-server, or set \
         TEST_DATABASE_URL / TEST_REDIS_URL",
        if ci {
            " (CI=true: failing, not skipping)"
        } else {
            ""
        }
    );
}

/// PgBouncer 1.24 in transaction mode in front of the test PostgreSQL, started once per run.
pub struct Pooler {
    /// Where clients connect: 127.0.0.1 and the pooler's port, as the superuser with the
    /// password of its auth file (SCRAM between client and pooler, as in a cluster).
    pub admin: PgConnectOptions,
    /// PgBouncer's server connections per database: each test database gets its own pool.
    pub pool_size: u32,
}

/// The image the tests run PgBouncer from (Debian trixie's 1.24 built locally by
/// scripts/build-images.sh, or the same image pulled): the host is bookworm, whose
/// PgBouncer 1.18 cannot pool prepared statements, and trixie's package needs a newer libc
/// than bookworm's.
pub const PGBOUNCER_IMAGE: &str = "edoburu/pgbouncer:v1.24.1-p1";

/// The password in the pooler's auth file (the throwaway PostgreSQL trusts local
/// connections, so only the pooler checks it).
const POOLER_PASSWORD: &str = "pooler-test-password";

pub fn pooler() -> &'static Pooler {
    static POOLER: OnceLock<Pooler> = OnceLock::new();
    POOLER.get_or_init(|| start_pooler().unwrap_or_else(|error| fail_pooler(&error)))
}

fn fail_pooler(error: &str) -> ! {
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    panic!(
        "could not start PgBouncer for the app tests{}: {error}\n\
         hint: a Docker engine and the image {PGBOUNCER_IMAGE} (scripts/build-images.sh builds it \
         from Debian trixie's pgbouncer 1.24 when it cannot be pulled)",
        if ci {
            " (CI=true: failing, not skipping)"
        } else {
            ""
        }
    );
}

fn start_pooler() -> Result<Pooler, String> {
    let admin = &infra().admin;
    let image_ok = Command::new("docker")
        .args(["image", "inspect", PGBOUNCER_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| format!("cannot run docker: {error}"))?
        .success();
    if !image_ok {
        return Err(format!("the image {PGBOUNCER_IMAGE} is not on this engine"));
    }
    let dir = scratch_dir("pgbouncer");
    // The container's user (uid 70) reads it through a bind mount.
    let auth = dir.join("auth");
    std::fs::write(
        &auth,
        format!("\"{}\" \"{POOLER_PASSWORD}\"\n", admin.get_username()),
    )
    .map_err(|error| error.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(&dir, 0o755), (&auth, 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|error| error.to_string())?;
        }
    }
    let port = free_port();
    let pool_size = 4;
    let name = format!("app-tests-pgbouncer-{}", std::process::id());
    let env = [
        ("DB_HOST", "127.0.0.1".to_string()),
        ("DB_PORT", admin.get_port().to_string()),
        ("LISTEN_ADDR", "127.0.0.1".to_string()),
        ("LISTEN_PORT", port.to_string()),
        ("AUTH_TYPE", "scram-sha-256".to_string()),
        ("AUTH_FILE", "/run/secrets/pgbouncer_auth".to_string()),
        ("POOL_MODE", "transaction".to_string()),
        ("DEFAULT_POOL_SIZE", pool_size.to_string()),
        ("MAX_CLIENT_CONN", "1000".to_string()),
        ("MAX_PREPARED_STATEMENTS", "200".to_string()),
        (
            "IGNORE_STARTUP_PARAMETERS",
            "extra_float_digits".to_string(),
        ),
        ("STATS_USERS", admin.get_username().to_string()),
    ];
    // In the foreground under the watchdog: when this process is gone, SIGINT reaches
    // `docker run`, which passes it to PgBouncer (a safe shutdown), and --rm removes it.
    let mut command: Vec<String> = [
        "docker",
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
    ]
    .map(String::from)
    .to_vec();
    command.extend([
        "-v".to_string(),
        format!("{}:/run/secrets/pgbouncer_auth:ro", auth.display()),
    ]);
    for (key, value) in &env {
        command.extend(["-e".to_string(), format!("{key}={value}")]);
    }
    command.push(PGBOUNCER_IMAGE.to_string());
    let log = dir.join("pgbouncer.log");
    spawn_watched(&dir, &log, &command)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("PgBouncer did not listen in 30 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Pooler {
        admin: admin.clone().port(port).password(POOLER_PASSWORD),
        pool_size,
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free port on 127.0.0.1")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("app-tests-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("failed to create a scratch directory");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The command prefix that runs a program as the `postgres` OS user when we are root.
fn as_postgres_user(dir: &Path) -> Result<Vec<String>, String> {
    if !is_root() {
        return Ok(Vec::new());
    }
    let exists = Command::new("id")
        .arg("-u")
        .arg("postgres")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !exists {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "postgres",
            ])
            .status()
            .map_err(|error| format!("failed to run useradd: {error}"))?;
        if !status.success() {
            return Err("useradd postgres failed".into());
        }
    }
    let status = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir)
        .status()
        .map_err(|error| format!("failed to run chown: {error}"))?;
    if !status.success() {
        return Err("chown failed".into());
    }
    // `setpriv` execs the program itself (no intermediate process), so signals reach it.
    Ok(vec![
        "setpriv".into(),
        "--reuid=postgres".into(),
        "--regid=postgres".into(),
        "--init-groups".into(),
    ])
}

fn postgres_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql (is the postgresql package installed?)".to_owned())?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

/// Runs `command` under a watchdog that stops it when this process exits.
fn spawn_watched(dir: &Path, log: &Path, command: &[String]) -> Result<(), String> {
    const WATCHDOG: &str = r#"owner=$1; dir=$2; shift 2
"$@" & child=$!
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill -INT "$child" 2>/dev/null; wait "$child"; rm -rf "$dir""#;
    let log = std::fs::File::create(log).map_err(|error| error.to_string())?;
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .args(command)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|error| error.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|error| format!("failed to spawn {}: {error}", command.join(" ")))?;
    Ok(())
}

fn start_postgres() -> Result<PgConnectOptions, String> {
    let bin = postgres_bin_dir()?;
    let dir = scratch_dir("pg");
    let data = dir.join("data");
    let prefix = as_postgres_user(&dir)?;
    let mut initdb: Vec<String> = prefix.clone();
    initdb.extend([
        bin.join("initdb").display().to_string(),
        "-D".into(),
        data.display().to_string(),
        "-U".into(),
        "postgres".into(),
        "--auth=trust".into(),
        "-E".into(),
        "UTF8".into(),
        "--no-sync".into(),
    ]);
    let out = Command::new(&initdb[0])
        .args(&initdb[1..])
        .output()
        .map_err(|error| format!("failed to run initdb: {error}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let mut server = prefix;
    server.push(bin.join("postgres").display().to_string());
    for arg in [
        "-D",
        &data.display().to_string(),
        "-k",
        &dir.display().to_string(),
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=400",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
    ] {
        server.push(arg.to_owned());
    }
    let log = dir.join("postgres.log");
    spawn_watched(&dir, &log, &server)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("PostgreSQL did not become ready in 30 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres"))
}

/// `redis-server` on 127.0.0.1:`port`, in memory only (no RDB, no AOF).
pub fn redis_server_command(port: u16) -> Vec<String> {
    [
        "redis-server",
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_redis() -> Result<String, String> {
    let dir = scratch_dir("redis");
    let port = free_port();
    let mut server = redis_server_command(port);
    server.extend(["--dir".to_string(), dir.display().to_string()]);
    let log = dir.join("redis.log");
    spawn_watched(&dir, &log, &server)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if ping_redis(port) {
            return Ok(format!("redis://127.0.0.1:{port}/"));
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "redis-server did not answer PING in 15 s (is the redis-server package installed?):\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn ping_redis(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
