//! `pmm-hub`: the MCP hub daemon (see the library docs for endpoints).
//!
//! Run: `pmm-hub --config config/hub.toml` (every key also as `PMM_<KEY>`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pmm-hub",
    version,
    about = "MCP hub for DODO PMM liquidity tools (VM 5701)",
    long_about = "MCP hub for DODO PMM liquidity tools (VM 5701).\n\n\
Serves, on one address (default 127.0.0.1:3000):\n  \
POST /mcp        MCP over Streamable HTTP (tools/list, tools/call with structured output)\n  \
POST /mcp/call   {\"tool\": \"dodo.get_pool_state\", \"params\": {\"pool\": \"0x...\"}}\n  \
GET  /health     chain, Redis, Postgres and audit-log status (503 when degraded)\n  \
GET  /metrics    Prometheus text\n\n\
Config: --config FILE, then CHAIN, RPC_URL, REDIS_URL, DATABASE_URL, then PMM_<KEY> \
(e.g. PMM_LISTEN, PMM_ALLOWLIST_PATH, PMM_TOKENS_FILE). Every value is validated at start and \
an error names the bad key. Callers authenticate with bearer tokens: agent (read, simulate) \
or operator (also pause/resume). Stops cleanly on SIGINT or SIGTERM, flushing the audit log."
)]
struct Args {
    /// Config file (TOML or JSON); the environment overrides it.
    #[arg(long, env = "PMM_CONFIG")]
    config: Option<PathBuf>,
    /// Log JSON lines (for production log collectors) instead of text.
    #[arg(long, env = "PMM_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pmm_daemon::init_logging(args.log_json);
    let cfg = pmm_hub::HubConfig::load(args.config.as_deref()).context("loading the hub config")?;
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let running = pmm_hub::serve(&cfg, Some(Arc::new(metrics)))
        .await
        .context("starting the hub")?;
    pmm_daemon::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
