//! Secrets (database password, JWT signing key): created once, mode 0600, in a
//! 0700 directory next to cluster.toml, never in `generated/` or in logs.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

use node_contract::Secret;

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare secret {}", path.display())]
pub struct SecretError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The secrets of a cluster. `Debug` never prints them.
#[derive(Clone)]
pub struct Secrets {
    pub dir: PathBuf,
    pub db_password: String,
    pub jwt_secret: String,
}

impl Secrets {
    pub fn value(&self, secret: Secret) -> &str {
        match secret {
            Secret::DatabasePassword => &self.db_password,
            Secret::JwtSecret => &self.jwt_secret,
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Where the secrets of the cluster file at `cluster_file` live.
pub fn dir_for(cluster_file: &Path) -> PathBuf {
    let base = cluster_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    base.join(".deployer").join("secrets")
}

fn random(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The database password's file name in the secrets directory.
pub const DB_PASSWORD_FILE: &str = "db_password";

/// Whether `dir` holds a database password (a non-empty file).
pub fn has_db_password(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(DB_PASSWORD_FILE)).is_ok_and(|s| !s.trim().is_empty())
}

/// Reads the secret file `name`, creating it with a fresh random value if missing.
fn ensure_one(dir: &Path, name: &str, len: usize) -> Result<String, SecretError> {
    let path = dir.join(name);
    let err = |source| SecretError {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let value = random(len);
    write_private(&path, &value).map_err(err)?;
    Ok(value)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    write_mode(path, contents, 0o600)
}

/// Writes `contents` to a new file with `mode`, replacing any file there.
fn write_mode(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// The subdirectory holding the copies the compose path mounts as secrets.
pub const COMPOSE_DIR: &str = "compose";

/// Creates what is missing and returns the cluster's secrets. Also writes the
/// copies the docker-compose path mounts as `/run/secrets/*` (`compose/`, mode
/// 0444 inside the 0700 directory: compose bind-mounts a file with its host
/// mode, and the containers' users must read it).
pub fn ensure(dir: &Path) -> Result<Secrets, SecretError> {
    let err = |source| SecretError {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir.join(COMPOSE_DIR)).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.to_path_buf(), dir.join(COMPOSE_DIR)] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(err)?;
        }
    }
    let secrets = Secrets {
        dir: dir.to_path_buf(),
        db_password: ensure_one(dir, DB_PASSWORD_FILE, 32)?,
        jwt_secret: ensure_one(dir, "jwt_secret", 64)?,
    };
    for secret in Secret::ALL {
        let path = dir.join(COMPOSE_DIR).join(secret.file_name());
        let contents = secrets.value(secret);
        if std::fs::read_to_string(&path).is_ok_and(|s| s == contents) {
            continue;
        }
        write_mode(&path, contents, 0o444).map_err(|source| SecretError { path, source })?;
    }
    // Earlier versions passed the secrets to compose as env files: gone.
    for stale in ["app.env", "postgres.env"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    Ok(secrets)
}
