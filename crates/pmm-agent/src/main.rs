//! Agent worker (5703): the tick loop over the hub and the inference proxy.
//!
//! This release loads and validates its config and serves `GET /health` on `health_listen`;
//! the tick loop (pool state -> risk -> LLM proposal -> simulate -> execute -> log) arrives with
//! the agent issue. Run: `pmm-agent --config config/agent.toml`.

mod config;

use std::path::PathBuf;

use anyhow::Context;
use axum::{Json, Router, routing::get};
use clap::Parser;

/// Command line of the agent worker.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "PMM agent worker (5703): ticks each allowlisted pool through the hub and the inference proxy"
)]
struct Cli {
    /// TOML config file; every key can also be set as PMM_<KEY> in the environment.
    #[arg(long, env = "PMM_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config, print it and exit.
    #[arg(long)]
    check_config: bool,
    /// Log JSON lines (for production log collectors) instead of text.
    #[arg(long, env = "PMM_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    pmm_daemon::init_logging(cli.log_json);
    let cfg =
        config::AgentConfig::load(cli.config.as_deref()).context("loading the agent config")?;
    if cli.check_config {
        println!(
            "config ok: mode {:?}, tick every {} s",
            cfg.mode, cfg.tick_interval_s
        );
        return Ok(());
    }
    let mode = format!("{:?}", cfg.mode).to_lowercase();
    let app = Router::new().route(
        "/health",
        get(move || {
            let mode = mode.clone();
            async move { Json(serde_json::json!({"status": "ok", "mode": mode, "tick_loop": "not part of this release"})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(cfg.health_listen)
        .await
        .with_context(|| format!("binding {}", cfg.health_listen))?;
    tracing::info!(listen = %cfg.health_listen, "pmm-agent serving /health");
    axum::serve(listener, app)
        .with_graceful_shutdown(pmm_daemon::shutdown_signal())
        .await
        .context("serving /health")
}
