//! argon2id hashing and verification on the blocking pool, with bounded parallelism so the
//! async runtime (and `/api/health`) stays responsive during a login storm.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters")]
    Params(#[source] argon2::Error),
    #[error("failed to hash a password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("the password task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so both 401 paths cost one argon2 run.
    dummy_hash: String,
}

impl Passwords {
    pub fn new(settings: &PasswordSettings) -> Result<Self, PasswordError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(PasswordError::Params)?;
        let dummy_hash = hash_blocking(&params, "not a real password")?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                dummy_hash,
            }),
        })
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Checks a password against a stored hash; with no stored hash (unknown email) it checks
    /// against a dummy hash and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let params = self.inner.params.clone();
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let matches = self
            .run(move || verify_blocking(&params, &password, &hash))
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .expect("the password semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            lower_thread_priority();
            work()
        })
        .await
        .map_err(PasswordError::Task)
    }
}

/// The nice value of threads that ran a hash: above the async workers' 0, so requests such as
/// `/api/health` preempt hashing at once while hashes still get every idle cycle.
#[cfg(target_os = "linux")]
const HASHING_NICE: libc::c_int = 5;

/// Lowers the CPU priority of the current (blocking-pool) thread, once per thread. An
/// unprivileged process cannot raise it again, so the thread keeps it for later blocking work;
/// in this app that is almost only password hashing.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        use std::cell::Cell;
        thread_local!(static LOWERED: Cell<bool> = const { Cell::new(false) });
        LOWERED.with(|lowered| {
            if !lowered.get() {
                // SAFETY: plain syscalls on the calling thread with valid arguments.
                unsafe {
                    let tid = libc::gettid() as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, HASHING_NICE);
                }
                lowered.set(true);
            }
        });
    }
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

fn verify_blocking(params: &Params, password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher(params)
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let passwords = Passwords::new(&PasswordSettings::insecure_fast()).unwrap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse".into(), Some(hash))
            .await
            .unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn owasp_parameters_are_the_default() {
        let settings = PasswordSettings::owasp();
        let params = Params::new(settings.memory_kib, settings.iterations, 1, None).unwrap();
        assert_eq!(params.m_cost(), 19_456);
        assert_eq!(params.t_cost(), 2);
        assert_eq!(params.p_cost(), 1);
    }
}
