//! `pmm-hub`: the MCP hub daemon (see the library docs for endpoints).
//!
//! Run: `pmm-hub --config config/hub.toml` (every key also as `PMM_<KEY>`);
//! `pmm-hub doctor` checks the hardening list; `pmm-hub keystore new|import|address` manages
//! the signer's encrypted keystore.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::PrometheusBuilder;
use zeroize::Zeroizing;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Without a command the hub serves.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The hardening checklist as pass/fail lines; exits 1 when any item fails.
    Doctor,
    /// The signer's encrypted JSON keystore.
    Keystore {
        #[command(subcommand)]
        action: KeystoreCmd,
    },
}

#[derive(Debug, Subcommand)]
enum KeystoreCmd {
    /// Create a keystore holding a fresh random key.
    New {
        /// Keystore file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// File holding the password.
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Encrypt an existing key read from standard input (hex, one line).
    Import {
        /// Keystore file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// File holding the password.
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Print the address of a keystore (decrypts it; prints nothing secret).
    Address {
        /// Keystore file.
        #[arg(long)]
        keystore: PathBuf,
        /// File holding the password.
        #[arg(long)]
        password_file: PathBuf,
    },
}

async fn keystore(action: KeystoreCmd) -> anyhow::Result<()> {
    use pmm_hub::signer::{HubSigner, read_password, write_keystore};
    let address = match action {
        KeystoreCmd::New { out, password_file } => {
            write_keystore(&out, None, &read_password(Some(&password_file))?)?
        }
        KeystoreCmd::Import { out, password_file } => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the key from stdin")?;
            write_keystore(&out, Some(line), &read_password(Some(&password_file))?)?
        }
        KeystoreCmd::Address {
            keystore,
            password_file,
        } => HubSigner::from_keystore(&keystore, read_password(Some(&password_file))?)
            .await?
            .address(),
    };
    println!("{address:#x}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pmm_daemon::init_logging(args.log_json);
    if let Some(Command::Keystore { action }) = args.command {
        return keystore(action).await;
    }
    let cfg = pmm_hub::HubConfig::load(args.config.as_deref()).context("loading the hub config")?;
    if let Some(Command::Doctor) = args.command {
        let checks = pmm_hub::doctor::run(&cfg).await;
        for c in &checks {
            println!(
                "{} {:<24} {}",
                if c.pass { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if checks.iter().any(|c| !c.pass) {
            std::process::exit(1);
        }
        return Ok(());
    }
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    tokio::spawn(publish_allocator_stats());
    let running = pmm_hub::serve(&cfg, Some(Arc::new(metrics)))
        .await
        .context("starting the hub")?;
    pmm_daemon::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

/// Publishes jemalloc's statistics every second as `pmm_hub_allocator_bytes{kind}`:
/// `allocated` is what the hub's live objects hold, `resident` what the allocator keeps in
/// RAM for them (resident minus allocated is the allocator's, not the hub's: free pages not
/// yet returned, and `metadata`), `retained` address space kept but given back to the OS.
async fn publish_allocator_stats() {
    use tikv_jemalloc_ctl::{epoch, stats};
    type Read = fn() -> tikv_jemalloc_ctl::Result<usize>;
    let reads: [(&str, Read); 4] = [
        ("allocated", stats::allocated::read),
        ("resident", stats::resident::read),
        ("metadata", stats::metadata::read),
        ("retained", stats::retained::read),
    ];
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        // The statistics are a snapshot taken when the epoch advances.
        if let Err(e) = epoch::advance() {
            tracing::warn!(error = %e, "allocator statistics unavailable");
            return;
        }
        for (kind, read) in reads {
            if let Ok(bytes) = read() {
                metrics::gauge!("pmm_hub_allocator_bytes", "kind" => kind).set(bytes as f64);
            }
        }
    }
}
