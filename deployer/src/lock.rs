//! The cluster's lock in `.deployer/<cluster>.lock`, held for an apply, a
//! destroy or a `verify --chaos`: a second one on the same cluster is refused.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another deployer apply or destroy is running on cluster `{cluster}` (lock {} is held); wait for it to finish",
        path.display()
    )]
    Held { cluster: String, path: PathBuf },
    #[error("cannot lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Takes the lock of `cluster` under `base` (the directory of cluster.toml).
    pub fn take(base: &Path, cluster: &str) -> Result<Lock, LockError> {
        let dir = base.join(".deployer");
        let path = dir.join(format!("{cluster}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match f.try_lock() {
            Ok(()) => Ok(Lock { _file: f }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
                cluster: cluster.to_string(),
                path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}
