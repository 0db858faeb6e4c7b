//! The raw argon2id hash rate on this machine: one hashing thread per core for a few seconds,
//! with the same parameters as the app (`ARGON2_*` variables, OWASP defaults). Prints hashes/s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn var(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let params = Params::new(
        var("ARGON2_MEMORY_KIB", 19_456),
        var("ARGON2_ITERATIONS", 2),
        var("ARGON2_PARALLELISM", 1),
        None,
    )
    .expect("valid argon2 parameters");
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let seconds = u64::from(var("BENCH_SECONDS", 5));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (params, done, stop) = (params.clone(), Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                while !stop.load(Ordering::Relaxed) {
                    let salt = SaltString::generate(&mut OsRng);
                    argon2.hash_password(b"benchmark password", &salt).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("{rate:.1}");
}
