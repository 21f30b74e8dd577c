//! Inference proxy (5702): OpenAI-compatible gateway for llama.cpp and TGI.
//!
//! Endpoints: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics`.
//!
//! Run: `pmm-inference --config config/inference.toml` (env overrides `PMM_INFERENCE__*`, e.g.
//! `PMM_INFERENCE__LISTEN=127.0.0.1:8000`). Locally: `scripts/llama/inference-local.sh`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(about = "OpenAI-compatible inference proxy for llama.cpp and TGI")]
struct Args {
    /// Config file (TOML or JSON).
    #[arg(long, env = "PMM_INFERENCE_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "PMM_INFERENCE_LOG_JSON")]
    log_json: bool,
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let cfg = pmm_inference::Config::load(args.config.as_deref()).context("loading config")?;
    let addr = cfg.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        %addr,
        upstreams = cfg.upstreams.len(),
        auth = !cfg.auth.disabled,
        "inference proxy listening"
    );
    pmm_inference::serve(listener, &cfg, shutdown_signal()).await?;
    Ok(())
}
