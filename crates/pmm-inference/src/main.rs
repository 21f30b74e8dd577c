//! Inference proxy (5702): OpenAI-compatible gateway for llama.cpp and TGI.
//!
//! Endpoints: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
//! `GET /v1/models/{id}`, `GET /health`, `GET /metrics`.
//!
//! Run: `pmm-inference --config config/inference.toml` (env overrides `PMM_INFERENCE__*`, e.g.
//! `PMM_INFERENCE__LISTEN=127.0.0.1:8000`). Locally: `scripts/llama/inference-local.sh`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pmm_daemon::init_logging(args.log_json);
    let cfg = pmm_inference::Config::load(args.config.as_deref()).context("loading config")?;
    let addr = cfg.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        %addr,
        models = cfg.models.len(),
        upstreams = cfg.upstreams.len(),
        auth = !cfg.auth.disabled,
        "inference proxy listening"
    );
    pmm_inference::serve(listener, &cfg, pmm_daemon::shutdown_signal()).await?;
    Ok(())
}
