//! `tidemark`: a command-line client for a tidemark database. The manual,
//! with the exit codes, is cli/README.md.

mod args;
mod codec;
mod commands;
mod exit;
mod manifest;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let writes = matches!(cli.command, args::Command::Put { .. } | args::Command::Delete { .. } | args::Command::Merge { .. });
    exit::report(commands::run(cli).await, writes)
}
