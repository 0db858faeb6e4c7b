use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = deployer::commands::Cli::parse();
    match deployer::commands::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
