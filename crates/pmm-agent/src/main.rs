//! `pmm-agent`: the agent worker daemon (5703); see the library docs for the tick.
//!
//! Run: `pmm-agent --config config/agent.toml` (every key also as `PMM_<KEY>`); `--once` ticks
//! every pool it can lease once and exits; `--print-decisions` prints one line per decision.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;
use pmm_agent::config::Proposer;
use pmm_agent::hub::HubClient;
use pmm_agent::inference::InferenceClient;
use pmm_agent::sink::DecisionSink;
use pmm_agent::tick::TickContext;
use pmm_agent::worker::{LoopStatus, Worker};
use pmm_agent::{AgentConfig, decision_line};
use pmm_core::config::{Allowlist, PoolProfiles};
use pmm_store::PgStore;
use tokio_util::sync::CancellationToken;

/// Command line of the agent worker.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "PMM agent worker (5703): ticks each allowlisted pool through the hub and the inference proxy",
    long_about = "PMM agent worker (5703).\n\n\
Each tick (tick_interval_s) and for every allowlisted pool it holds a lease on: pool state and \
risk from the hub (MCP), a baseline, a proposal from the model (OpenAI API on the inference \
proxy, constrained to the ActionProposal JSON Schema), validation, simulation on the hub, and in \
execute mode the allowed write. Every tick of every pool is one agent_decisions row.\n\n\
Serves GET /health (503 naming a missing hub, inference or tick) and GET /metrics on \
health_listen. SIGINT/SIGTERM finish the current tick, release the leases and exit 0."
)]
struct Cli {
    /// TOML config file; every key can also be set as PMM_<KEY> in the environment.
    #[arg(long, env = "PMM_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config, print it and exit.
    #[arg(long)]
    check_config: bool,
    /// Run one tick over every pool this worker can lease, then exit.
    #[arg(long)]
    once: bool,
    /// Print one line per decision on stdout.
    #[arg(long, env = "PMM_PRINT_DECISIONS")]
    print_decisions: bool,
    /// Log JSON lines (for production log collectors) instead of text.
    #[arg(long, env = "PMM_LOG_JSON")]
    log_json: bool,
}

fn load_pools(cfg: &AgentConfig) -> anyhow::Result<Allowlist> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let profiles = PoolProfiles::from_json_str(&read(&cfg.profiles_path)?)
        .with_context(|| format!("{}", cfg.profiles_path.display()))?;
    Allowlist::from_json_str(&read(&cfg.allowlist_path)?, &profiles)
        .with_context(|| format!("{}", cfg.allowlist_path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    pmm_daemon::init_logging(cli.log_json);
    let cfg = AgentConfig::load(cli.config.as_deref()).context("loading the agent config")?;
    let allowlist = load_pools(&cfg)?;
    let chain_id = allowlist
        .chain_id
        .context("the allowlist has no chain_id: the agent files decisions and leases under it")?;
    if cli.check_config {
        println!(
            "config ok: mode {}, tick every {} s, {} pools on chain {chain_id}",
            cfg.mode.as_str(),
            cfg.tick_interval_s,
            allowlist.pools.len()
        );
        return Ok(());
    }
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let database_url = cfg.database_url.as_deref().unwrap_or_default();
    let store = PgStore::connect(database_url, 4).context("database_url")?;
    let lease_store = PgStore::connect(database_url, 1).context("database_url")?;
    let (sink, _writer) = DecisionSink::spawn(store.clone(), cfg.decision_buffer);
    let hub = HubClient::new(
        &cfg.hub_url,
        cfg.hub_token.clone(),
        Duration::from_millis(cfg.hub_timeout_ms),
    );
    let inference = InferenceClient::new(
        &cfg.inference_url,
        cfg.inference_token.clone(),
        Duration::from_millis(cfg.inference_timeout_ms),
    );
    let status = Arc::new(LoopStatus::default());
    let health = pmm_agent::http::HealthState {
        hub: Arc::new(HubClient::new(&cfg.hub_url, None, Duration::from_secs(2))),
        inference: (cfg.proposer == Proposer::Model).then(|| {
            Arc::new(InferenceClient::new(
                &cfg.inference_url,
                None,
                Duration::from_secs(2),
            ))
        }),
        status: status.clone(),
        tick_grace: cfg.interval() * 2 + Duration::from_millis(cfg.inference_timeout_ms),
        metrics,
        mode: cfg.mode.as_str(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.health_listen)
        .await
        .with_context(|| format!("binding {}", cfg.health_listen))?;
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, pmm_agent::http::router(health))
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await
    });
    let worker_id = cfg.worker_id();
    tracing::info!(
        listen = %cfg.health_listen,
        worker = %worker_id,
        mode = cfg.mode.as_str(),
        pools = allowlist.pools.len(),
        interval_s = cfg.tick_interval_s,
        "pmm-agent started"
    );
    let hook: Option<pmm_agent::worker::DecisionHook> = cli.print_decisions.then(|| {
        Arc::new(|d: &pmm_store::Decision| println!("{}", decision_line(d)))
            as pmm_agent::worker::DecisionHook
    });
    let worker = Worker::new(
        TickContext {
            hub,
            inference,
            cfg,
            chain_id,
            worker: worker_id,
        },
        allowlist.pools,
        store,
        lease_store,
        sink,
        status,
        hook,
    );
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        pmm_daemon::shutdown_signal().await;
        signal_stop.cancel();
    });
    worker.run(stop.clone(), cli.once).await;
    stop.cancel();
    let _ = server.await;
    tracing::info!("pmm-agent stopped");
    Ok(())
}
