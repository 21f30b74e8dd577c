//! JSON-RPC requests per block the hub sends its node for 50 allowlisted pools while tool calls
//! are in flight, counted by a proxy between the hub and anvil, in four modes of one run:
//!
//! * baseline: the monitor idle (`monitor_interval_s` = 1 h: one sweep at start), every tool
//!   call asks the node for the head and reads its pool itself;
//! * the monitor polling for heads and sweeping each block, tool calls still asking the node
//!   for the head;
//! * the monitor polling and sweeping each block, tool calls using the head it published;
//! * the same with heads pushed by `eth_subscribe newHeads` (`monitor_heads = "subscribe"`).
//!
//! Requests are counted and sorted by the proxy in `tests/common/rpc_proxy.rs` over HTTP and
//! websocket (a JSON-RPC batch counts once; a websocket text frame to the node counts as a
//! request, the node's pushes and ping/pong frames are shown apart). With the monitor's
//! head, what is left per block is the monitor's own: its one batch of every pool, plus, when
//! polling, its head polls (`monitor_poll_ms` apart, so about the block interval over the poll
//! interval of them); subscribed, none. `x poll` compares with the polling monitor's head.
//!
//! Run: `cargo bench -p pmm-hub --bench monitor_rpc` (prints; asserts nothing).

// Each benchmark uses part of it.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../tests/common/rpc_proxy.rs"]
mod rpc_proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, I256};
use alloy::providers::Provider;
use pmm_testkit::devnet::Devnet;
use rpc_proxy::{CountingProxy, Snapshot};
use serde_json::{Value, json};

const POOLS: usize = 50;
const CLIENTS: usize = 8;
const BLOCKS: u64 = 20;
const BLOCK_GAP: Duration = Duration::from_millis(500);
const POLL_MS: u64 = 100;
const TOKEN: &str = "bench-agent-token-000000001";

struct Mode {
    name: &'static str,
    monitor_each_block: bool,
    tools_use_monitor_head: bool,
    heads: &'static str,
}

struct Measured {
    counted: Snapshot,
    tool_calls: u64,
}

impl Measured {
    fn per_block(&self, n: u64) -> f64 {
        n as f64 / BLOCKS as f64
    }

    fn requests(&self) -> f64 {
        self.per_block(self.counted.requests())
    }
}

async fn tool_call(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    pools: &[Address],
) -> anyhow::Result<()> {
    let pool = pools[n % pools.len()].to_string();
    let body = match n % 3 {
        0 => json!({"tool": "dodo.get_pool_state", "params": {"pool": pool}}),
        1 => json!({"tool": "dodo.risk_check", "params": {"pool": pool}}),
        _ => json!({"tool": "dodo.quote_add_liquidity", "params": {"pool": pool,
                     "base_amount": "1000000000000000000", "quote_amount": "2000000000"}}),
    };
    http.post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn measure(
    devnet: &Devnet,
    proxy: &CountingProxy,
    allowlist: &std::path::Path,
    pools: &[Address],
    mode: &Mode,
) -> anyhow::Result<Measured> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let devnet_file = allowlist.with_file_name("devnet.json");
    std::fs::write(
        &devnet_file,
        json!({"rpc_url": proxy.url, "templates": devnet.all_templates().await?}).to_string(),
    )?;
    let mut cfg = json!({
        "listen": "127.0.0.1:0",
        "chain": "devnet",
        "rpc_url": proxy.url,
        "devnet_file": devnet_file,
        "allowlist_path": allowlist,
        "profiles_path": root.join("config/pool_profiles.json"),
        "agent_token": TOKEN,
        "executor": devnet.deployer().to_string(),
        "monitor_poll_ms": POLL_MS,
        "tools_use_monitor_head": mode.tools_use_monitor_head,
        "monitor_heads": mode.heads,
        // The benchmark measures the hub's reads, not its per-caller rate limit.
        "rate_limit_per_s": 1_000_000,
        "rate_limit_burst": 1_000_000,
    });
    if !mode.monitor_each_block {
        cfg["monitor_interval_s"] = json!(3600);
    }
    let cfg: pmm_hub::HubConfig = serde_json::from_value(cfg)?;
    let hub = pmm_hub::serve(&cfg, None).await?;
    let url = format!("http://{}/mcp/call", hub.addr);
    let http = reqwest::Client::new();
    // Warm up: the first sweep and every pool's statics.
    let health = format!("http://{}/health", hub.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(&health).send().await?.json::<Value>().await?["monitor_block"].is_null() {
        anyhow::ensure!(Instant::now() < deadline, "the monitor never swept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 0..pools.len() * 3 {
        tool_call(&http, &url, n, pools).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let before = proxy.counts.snapshot();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, url, pools) = (http.clone(), url.clone(), pools.to_vec());
            let (stop, served) = (stop.clone(), served.clone());
            tokio::spawn(async move {
                let mut n = c * 7;
                while !stop.load(Ordering::Relaxed) {
                    tool_call(&http, &url, n, &pools).await?;
                    served.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok::<(), anyhow::Error>(())
            })
        })
        .collect();
    let provider = devnet.provider();
    for _ in 0..BLOCKS {
        provider
            .raw_request::<_, Value>("evm_mine".into(), ())
            .await?;
        tokio::time::sleep(BLOCK_GAP).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await??;
    }
    let counted = proxy.counts.snapshot().since(&before);
    hub.shutdown().await;
    Ok(Measured {
        counted,
        tool_calls: served.load(Ordering::Relaxed),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let (base, quote) = common::tokens(&devnet).await?;
    let feed = devnet
        .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
        .await?;
    let mut pools = Vec::with_capacity(POOLS);
    for _ in 0..POOLS {
        pools.push(common::funded_dsp(&devnet, base, quote).await?);
    }
    let entries: Vec<Value> = pools
        .iter()
        .map(|p| {
            json!({"address": p.to_string(), "base_token": base.to_string(),
                   "quote_token": quote.to_string(), "profile": "dsp", "pool_type": "dsp",
                   "oracle": {"kind": "chainlink", "address": feed.to_string()},
                   "limits": {"max_slippage_bps": 100, "max_notional_per_tx": "100000000000",
                              "max_notional_per_day": "500000000000", "cooldown_s": 60,
                              "oracle_deviation_bps": 10_000, "oracle_max_age_s": 3600,
                              "gas_cap_gwei": 100}})
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("pmm-hub-monitor-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let allowlist = dir.join("allowlist.json");
    std::fs::write(
        &allowlist,
        serde_json::to_string(&json!({"chain": "devnet", "chain_id": 31337, "pools": entries}))?,
    )?;
    let proxy = CountingProxy::start(devnet.rpc_url()).await?;

    let modes = [
        Mode {
            name: "baseline: monitor idle, tools ask",
            monitor_each_block: false,
            tools_use_monitor_head: false,
            heads: "poll",
        },
        Mode {
            name: "monitor polls, tools ask",
            monitor_each_block: true,
            tools_use_monitor_head: false,
            heads: "poll",
        },
        Mode {
            name: "monitor polls, monitor head",
            monitor_each_block: true,
            tools_use_monitor_head: true,
            heads: "poll",
        },
        Mode {
            name: "monitor subscribed, monitor head",
            monitor_each_block: true,
            tools_use_monitor_head: true,
            heads: "subscribe",
        },
    ];
    const POLLED_HEAD: usize = 2;
    let mut results = Vec::new();
    for mode in &modes {
        results.push(measure(&devnet, &proxy, &allowlist, &pools, mode).await?);
    }
    println!(
        "monitor_rpc: {POOLS} allowlisted DSPs, {CLIENTS} clients calling get_pool_state / \
         risk_check / quote_add_liquidity without pause, {BLOCKS} blocks {} ms apart, monitor \
         poll {POLL_MS} ms",
        BLOCK_GAP.as_millis()
    );
    println!(
        "{:<34} {:>10} {:>9} {:>12} {:>10} {:>6} {:>9} {:>7} {:>7} {:>10} {:>7}",
        "per block",
        "tool calls",
        "requests",
        "pool batches",
        "head polls",
        "other",
        "rpc calls",
        "pushes",
        "pings",
        "x baseline",
        "x poll"
    );
    let baseline = results[0].requests();
    let polled = results[POLLED_HEAD].requests();
    for (mode, m) in modes.iter().zip(&results) {
        println!(
            "{:<34} {:>10.1} {:>9.2} {:>12.2} {:>10.2} {:>6.2} {:>9.1} {:>7.2} {:>7.2} {:>10.4} {:>7.3}",
            mode.name,
            m.per_block(m.tool_calls),
            m.requests(),
            m.per_block(m.counted.pool_batches),
            m.per_block(m.counted.head_polls),
            m.per_block(m.counted.other),
            m.per_block(m.counted.calls),
            m.per_block(m.counted.pushes),
            m.per_block(m.counted.keepalives),
            m.requests() / baseline,
            m.requests() / polled,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
