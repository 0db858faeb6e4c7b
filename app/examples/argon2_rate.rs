//! The raw argon2id hash rate on this machine: one hashing thread per core for a few seconds,
//! with the same parameters as the app (`ARGON2_*` variables, OWASP defaults), measured two ways
//! one after the other:
//!
//! - `alloc`: the argon2 crate's `hash_password`, which allocates and fills fresh working memory
//!   (19 MiB) for every hash;
//! - `reuse`: `hash_password_into_with_memory` with one working buffer per thread, kept between
//!   hashes (what the app does).
//!
//! Prints `<mode> <hashes/s>` per line; `scripts/bench-app.sh` compares logins with the faster.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

fn var(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy)]
enum Mode {
    Alloc,
    Reuse,
}

fn rate(params: &Params, mode: Mode, threads: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (params, done, stop) = (params.clone(), Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match mode {
                        Mode::Alloc => {
                            let salt = SaltString::generate(&mut OsRng);
                            argon2.hash_password(b"benchmark password", &salt).unwrap();
                        }
                        Mode::Reuse => {
                            let mut salt = [0u8; 16];
                            OsRng.fill_bytes(&mut salt);
                            memory.resize(params.block_count(), Block::new());
                            let mut out = [0u8; 32];
                            argon2
                                .hash_password_into_with_memory(
                                    b"benchmark password",
                                    &salt,
                                    &mut out,
                                    &mut memory,
                                )
                                .unwrap();
                        }
                    }
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
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let params = Params::new(
        var(node_contract::var::ARGON2_MEMORY_KIB, 19_456),
        var(node_contract::var::ARGON2_ITERATIONS, 2),
        var(node_contract::var::ARGON2_PARALLELISM, 1),
        None,
    )
    .expect("valid argon2 parameters");
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let seconds = u64::from(var("BENCH_SECONDS", 5));
    for (name, mode) in [("alloc", Mode::Alloc), ("reuse", Mode::Reuse)] {
        println!("{name} {:.1}", rate(&params, mode, threads, seconds));
    }
}
