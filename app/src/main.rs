//! The `app` binary: parse the command line, run, report errors with their cause chain.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a request allocates and frees a few dozen small blocks
/// across the runtime's threads (headers, extensions, bodies, the query's buffers), and glibc's
/// arenas cost ~1,600 instructions of `/api/health` and ~4,400 of `/api/auth/me` more
/// (`scripts/bench-instructions.sh`; the app's README has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = app::cli::Cli::parse();
    match app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
