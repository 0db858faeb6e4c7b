//! Secrets (database password, JWT signing key): created once, mode 0600, in a
//! 0700 directory next to cluster.toml, never in `generated/` or in logs. The
//! pooler's auth file is derived from the database password. The balancer's TLS
//! key (and its certificate chain) are the user's own files, placed the same way.

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

/// A secret file some unit of the cluster reads under `/run/secrets`: a node's
/// (the node contract's [`Secret`]) or the pooler's auth file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFile {
    DatabasePassword,
    JwtSecret,
    /// PgBouncer's `auth_file`: the database user and password as one
    /// `"user" "password"` line, derived from the database password.
    PoolerAuth,
    /// The balancer's certificate chain (PEM; not secret, but placed with its key).
    TlsCertificate,
    /// The balancer's private key (PEM), from `[balancer] tls_key`.
    TlsKey,
}

impl SecretFile {
    pub const ALL: [SecretFile; 5] = [
        SecretFile::DatabasePassword,
        SecretFile::JwtSecret,
        SecretFile::PoolerAuth,
        SecretFile::TlsCertificate,
        SecretFile::TlsKey,
    ];

    /// The file's name under `/run/secrets` (and in the compose copies).
    pub const fn file_name(self) -> &'static str {
        match self {
            SecretFile::DatabasePassword => Secret::DatabasePassword.file_name(),
            SecretFile::JwtSecret => Secret::JwtSecret.file_name(),
            SecretFile::PoolerAuth => "pgbouncer_auth",
            SecretFile::TlsCertificate => "tls_cert",
            SecretFile::TlsKey => "tls_key",
        }
    }

    /// The file's path in a container.
    pub const fn path(self) -> &'static str {
        match self {
            SecretFile::DatabasePassword => Secret::DatabasePassword.path(),
            SecretFile::JwtSecret => Secret::JwtSecret.path(),
            SecretFile::PoolerAuth => "/run/secrets/pgbouncer_auth",
            SecretFile::TlsCertificate => "/run/secrets/tls_cert",
            SecretFile::TlsKey => "/run/secrets/tls_key",
        }
    }
}

impl From<Secret> for SecretFile {
    fn from(secret: Secret) -> SecretFile {
        match secret {
            Secret::DatabasePassword => SecretFile::DatabasePassword,
            Secret::JwtSecret => SecretFile::JwtSecret,
        }
    }
}

/// The secrets of a cluster. `Debug` never prints them.
#[derive(Clone)]
pub struct Secrets {
    pub dir: PathBuf,
    pub db_password: String,
    pub jwt_secret: String,
    /// PgBouncer's auth file for the cluster's database user.
    pooler_auth: String,
    /// The balancer's certificate chain and key, with HTTPS.
    tls: Option<TlsFiles>,
}

/// The balancer's certificate chain and private key, as PEM (read and checked by `validate`).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles").finish_non_exhaustive()
    }
}

impl Secrets {
    /// The file's contents; empty for TLS files of a cluster without HTTPS (see [`Secrets::files`]).
    pub fn value(&self, secret: SecretFile) -> &str {
        match secret {
            SecretFile::DatabasePassword => &self.db_password,
            SecretFile::JwtSecret => &self.jwt_secret,
            SecretFile::PoolerAuth => &self.pooler_auth,
            SecretFile::TlsCertificate => self.tls.as_ref().map_or("", |t| &t.cert),
            SecretFile::TlsKey => self.tls.as_ref().map_or("", |t| &t.key),
        }
    }

    /// The files this cluster has: every one, but the TLS files only with HTTPS.
    pub fn files(&self) -> impl Iterator<Item = SecretFile> + '_ {
        SecretFile::ALL.into_iter().filter(|s| {
            !matches!(s, SecretFile::TlsCertificate | SecretFile::TlsKey) || self.tls.is_some()
        })
    }
}

/// One `auth_file` line: `"user" "password"`, a `"` inside doubled (PgBouncer's quoting).
fn pooler_auth(user: &str, password: &str) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{} {}\n", quote(user), quote(password))
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
/// What the data volume records of the database password: the first 16 hex digits of
/// SHA-256 over the cluster's name and the password. It tells one password from another
/// and gives nothing away (the password is 32 random characters).
pub fn password_check(cluster: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "deployer-password-check\0{cluster}\0{}",
        password.trim()
    ));
    hex::encode(digest)[..16].to_string()
}

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

/// Creates what is missing and returns the cluster's secrets (`db_user` is the
/// database user, for the pooler's auth file; `tls` the balancer's certificate
/// and key, with HTTPS). Also writes the
/// copies the docker-compose path mounts as `/run/secrets/*` (`compose/`, mode
/// 0444 inside the 0700 directory: compose bind-mounts a file with its host
/// mode, and the containers' users must read it).
pub fn ensure(dir: &Path, db_user: &str, tls: Option<TlsFiles>) -> Result<Secrets, SecretError> {
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
    let db_password = ensure_one(dir, Secret::DatabasePassword.file_name(), 32)?;
    let secrets = Secrets {
        dir: dir.to_path_buf(),
        pooler_auth: pooler_auth(db_user, &db_password),
        db_password,
        jwt_secret: ensure_one(dir, Secret::JwtSecret.file_name(), 64)?,
        tls,
    };
    // A TLS key no longer used leaves the compose copies.
    if secrets.tls.is_none() {
        for gone in [SecretFile::TlsCertificate, SecretFile::TlsKey] {
            let _ = std::fs::remove_file(dir.join(COMPOSE_DIR).join(gone.file_name()));
        }
    }
    for secret in secrets.files() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pooler_auth_file_is_one_quoted_line() {
        assert_eq!(pooler_auth("app", "s3cret"), "\"app\" \"s3cret\"\n");
        assert_eq!(pooler_auth("app", "a\"b"), "\"app\" \"a\"\"b\"\n");
    }

    #[test]
    fn secret_files_live_under_run_secrets() {
        for s in SecretFile::ALL {
            assert_eq!(s.path(), format!("/run/secrets/{}", s.file_name()));
        }
    }
}
