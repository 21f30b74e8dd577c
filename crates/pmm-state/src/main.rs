//! State bootstrapper (5704): Postgres migrations and Redis bootstrap.
//!
//! Commands (see `pmm-state --help`):
//! - `migrate`: apply the embedded (or `--migrations-dir`) migrations under an advisory lock.
//! - `status`: list applied and pending migrations.
//! - `bootstrap`: prepare Redis (idempotent).
//! - `check`: readiness of both stores, exit 0 / 1, for compose and systemd health checks.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/pmm REDIS_URL=redis://127.0.0.1:6379
//! pmm-state migrate && pmm-state bootstrap`.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, EXIT_FAILURE, EXIT_USAGE, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pmm-state: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(commands::CommandError::Usage(e)) => {
            eprintln!("pmm-state: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(commands::CommandError::Failed(e)) => {
            eprintln!("pmm-state: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
