//! Secrets (database password, JWT signing key): created once, mode 0600, in a
//! 0700 directory next to cluster.toml, never in `generated/` or in logs.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::config::ClusterSpec;
use crate::names::Names;

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
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// Creates what is missing and returns the cluster's secrets. Also writes the
/// env files the docker-compose path reads (`postgres.env`, `app.env`).
pub fn ensure(dir: &Path, spec: &ClusterSpec) -> Result<Secrets, SecretError> {
    let err = |source| SecretError {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        if let Some(parent) = dir.parent() {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(err)?;
        }
    }
    let secrets = Secrets {
        dir: dir.to_path_buf(),
        db_password: ensure_one(dir, "db_password", 32)?,
        jwt_secret: ensure_one(dir, "jwt_secret", 64)?,
    };
    let n = Names::of(spec);
    let pg_env = format!("POSTGRES_PASSWORD={}\n", secrets.db_password);
    let app_env = format!(
        "DATABASE_URL=postgres://{user}:{pw}@{host}:5432/{db}\nJWT_SECRET={jwt}\n",
        user = spec.database.user,
        pw = secrets.db_password,
        host = n.postgres(),
        db = spec.database.name,
        jwt = secrets.jwt_secret,
    );
    for (name, contents) in [("postgres.env", pg_env), ("app.env", app_env)] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|s| s == contents) {
            continue;
        }
        write_private(&path, &contents).map_err(|source| SecretError { path, source })?;
    }
    Ok(secrets)
}
