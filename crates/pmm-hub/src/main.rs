//! `pmm-hub`: the MCP hub daemon (see the library docs for endpoints).
//!
//! Run: `pmm-hub --config config/hub.toml` (every key also as `PMM_<KEY>`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pmm-hub",
    version,
    about = "MCP hub for DODO PMM liquidity tools"
)]
struct Args {
    /// Config file (TOML or JSON); `PMM_*` variables override it.
    #[arg(long, env = "PMM_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let cfg = pmm_hub::HubConfig::load(args.config.as_deref())?;
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let running = pmm_hub::serve(&cfg, Some(Arc::new(metrics))).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
