//! argon2id hashing and verification on the blocking pool, with bounded parallelism so the
//! async runtime (and `/api/health`) stays responsive during a login storm.
//!
//! Each permit comes with argon2's working memory (19 MiB with the OWASP parameters), kept from
//! one hash to the next: the crate's `hash_password` allocates and fills a fresh buffer every
//! time, which on a 2-core machine costs 10–20% of the hash rate in page faults and writes
//! (`examples/argon2_rate.rs` measures both). The memory held is at most
//! `PASSWORD_HASH_CONCURRENCY` buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters")]
    Params(#[source] argon2::Error),
    #[error("failed to hash a password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("failed to hash a password")]
    Argon2(#[source] argon2::Error),
    #[error("the password task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

/// Every hashing slot is taken and the queue in front of them is full.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing queue is full")]
pub struct QueueFull;

/// A place in the hashing queue (running or waiting), held from before a request's other work
/// until its hash is done; dropping it frees the place.
pub struct Ticket {
    inner: Arc<Inner>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Arc<Semaphore>,
    /// Tickets out: hashes running, waiting for a permit, or about to.
    admitted: AtomicUsize,
    /// The most tickets out at once: the permits plus the queue.
    capacity: usize,
    /// Working memory of finished hashes, for the next ones (at most one per permit).
    memory: Mutex<Vec<Vec<Block>>>,
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
        let dummy_hash = hash_blocking(&params, "not a real password", &mut Vec::new())?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                admitted: AtomicUsize::new(0),
                capacity: settings.concurrency.max(1) + settings.queue,
                memory: Mutex::new(Vec::new()),
                dummy_hash,
            }),
        })
    }

    /// A place in the hashing queue, or `QueueFull` at once when `PASSWORD_HASH_CONCURRENCY`
    /// hashes run and `PASSWORD_HASH_QUEUE` wait: a login storm then gets quick 503s instead
    /// of answers that take ever longer.
    pub fn ticket(&self) -> Result<Ticket, QueueFull> {
        let before = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket {
            inner: Arc::clone(&self.inner),
        };
        if before >= self.inner.capacity {
            return Err(QueueFull);
        }
        Ok(ticket)
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, ticket: Ticket, password: String) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.run(ticket, move |memory| {
            hash_blocking(&params, &password, memory)
        })
        .await?
    }

    /// Checks a password against a stored hash; with no stored hash (unknown email) it checks
    /// against a dummy hash and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        ticket: Ticket,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let matches = self
            .run(ticket, move |memory| {
                verify_blocking(&password, &hash, memory)
            })
            .await?;
        Ok(known && matches)
    }

    /// Runs `work` on the blocking pool once a permit is free, lending it a working buffer.
    async fn run<T: Send + 'static>(
        &self,
        ticket: Ticket,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .expect("the password semaphore is never closed");
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _ticket = ticket;
            let _permit = permit;
            lower_thread_priority();
            let mut memory = inner
                .memory
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop()
                .unwrap_or_default();
            let result = work(&mut memory);
            // Returned before the permit is released, so there are never more buffers than
            // permits.
            inner
                .memory
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(memory);
            result
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

/// Hashes `password` with a fresh salt into a PHC string (`$argon2id$v=19$m=…`), in `memory`.
fn hash_blocking(
    params: &Params,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(PasswordError::Hash)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = compute(&argon2, password, salt_bytes, output_len, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Checks `password` against a PHC string, with the algorithm, version and parameters the
/// string names (so hashes made with older parameters still verify). `false` for a hash that
/// does not parse.
fn verify_blocking(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    verify_phc(password, phc, memory).unwrap_or(false)
}

fn verify_phc(password: &str, phc: &str, memory: &mut Vec<Block>) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = compute(&argon2, password, salt_bytes, expected.len(), memory).ok()?;
    // `Output`'s equality is constant-time.
    Some(computed == expected)
}

fn compute(
    argon2: &Argon2<'_>,
    password: &str,
    salt: &[u8],
    output_len: usize,
    memory: &mut Vec<Block>,
) -> Result<Output, PasswordError> {
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut bytes = [0u8; Output::MAX_LENGTH];
    let bytes = &mut bytes[..output_len.min(Output::MAX_LENGTH)];
    argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, bytes, &mut memory[..])
        .map_err(PasswordError::Argon2)?;
    Output::new(bytes).map_err(PasswordError::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let passwords = Passwords::new(&PasswordSettings::insecure_fast()).unwrap();
        let ticket = || passwords.ticket().unwrap();
        let hash = passwords
            .hash(ticket(), "correct horse".into())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords
            .verify(ticket(), "correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify(ticket(), "wrong horse".into(), Some(hash))
            .await
            .unwrap());
        assert!(!passwords
            .verify(ticket(), "anything".into(), None)
            .await
            .unwrap());
    }

    #[test]
    fn the_queue_admits_its_capacity_and_frees_places() {
        let settings = PasswordSettings {
            concurrency: 2,
            queue: 3,
            ..PasswordSettings::insecure_fast()
        };
        let passwords = Passwords::new(&settings).unwrap();
        let held: Vec<Ticket> = (0..5).map(|_| passwords.ticket().unwrap()).collect();
        assert!(passwords.ticket().is_err(), "a sixth place was given out");
        assert!(
            passwords.ticket().is_err(),
            "a refusal must not use up a place"
        );
        drop(held);
        let again: Vec<Ticket> = (0..5).map(|_| passwords.ticket().unwrap()).collect();
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let params = Params::new(1024, 1, 1, None).unwrap();
        let crate_hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = Vec::new();

        // Ours, checked by the crate.
        let ours = hash_blocking(&params, "correct horse", &mut memory).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(crate_hasher
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(crate_hasher
            .verify_password(b"wrong horse", &parsed)
            .is_err());

        // The crate's, checked by ours, with different parameters than the buffer was sized
        // for (a hash stored before the parameters changed) and a dirty buffer.
        let older = Params::new(2048, 2, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, older)
            .hash_password(b"battery staple", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_blocking("battery staple", &theirs, &mut memory));
        assert!(!verify_blocking("battery stapler", &theirs, &mut memory));
        assert!(verify_blocking("correct horse", &ours, &mut memory));

        // Garbage never verifies.
        assert!(!verify_blocking("x", "not a hash", &mut memory));
        assert!(!verify_blocking(
            "x",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA",
            &mut memory
        ));
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
