//! `dodo.get_pool_state` throughput and latency through the hub (`/mcp/call`), cached and
//! uncached, against a direct batched `eth_call` of the same getters on the same anvil.
//!
//! Run: `cargo bench -p pmm-hub --bench get_pool_state` (prints ratios; asserts nothing).

use std::time::{Duration, Instant};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::{Block, TransactionRequest};
use alloy::sol_types::SolCall;
use pmm_chain::abi::{IDODOV2Pool, IDODOV2Shares, IDODOV2Targets, IERC20};
use pmm_testkit::devnet::{Devnet, ONE, PoolParams};
use serde_json::json;

const N: usize = 300;
const TOKEN: &str = "bench-agent-token-000000001";

struct Stats {
    p50: Duration,
    p99: Duration,
    per_s: f64,
}

fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        per_s: samples.len() as f64 / total.as_secs_f64(),
    }
}

fn show(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<28} p50 {:>8.3} ms  p99 {:>8.3} ms  {:>8.1} req/s  | p50 x{:.2}  throughput x{:.2} vs direct",
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.per_s,
        s.p50.as_secs_f64() / base.p50.as_secs_f64(),
        s.per_s / base.per_s,
    );
}

fn call(to: Address, data: Vec<u8>, at: BlockId) -> (TransactionRequest, BlockId) {
    (
        TransactionRequest::default()
            .to(to)
            .input(Bytes::from(data).into()),
        at,
    )
}

/// The getters `read_pool` batches for a DSP, sent as one plain alloy batch.
async fn direct_read(
    p: &alloy::providers::DynProvider,
    pool: Address,
    base: Address,
    quote: Address,
) -> anyhow::Result<()> {
    let n = p.get_block_number().await?;
    let at = BlockId::number(n);
    let mut b = BatchRequest::new(p.client());
    let mut ws = Vec::new();
    let blk = b.add_call::<_, Option<Block>>(
        "eth_getBlockByNumber",
        &(BlockNumberOrTag::Number(n), false),
    )?;
    for (to, data) in [
        (pool, IDODOV2Pool::getPMMStateForCallCall {}.abi_encode()),
        (pool, IDODOV2Pool::getMidPriceCall {}.abi_encode()),
        (pool, IDODOV2Pool::getVaultReserveCall {}.abi_encode()),
        (
            pool,
            IDODOV2Pool::getUserFeeRateCall {
                user: Address::ZERO,
            }
            .abi_encode(),
        ),
        (pool, IDODOV2Shares::totalSupplyCall {}.abi_encode()),
        (pool, IDODOV2Targets::_BASE_TARGET_Call {}.abi_encode()),
        (pool, IDODOV2Targets::_QUOTE_TARGET_Call {}.abi_encode()),
        (pool, IDODOV2Pool::_I_Call {}.abi_encode()),
        (base, IERC20::balanceOfCall { owner: pool }.abi_encode()),
        (quote, IERC20::balanceOfCall { owner: pool }.abi_encode()),
    ] {
        ws.push(b.add_call::<_, Bytes>("eth_call", &call(to, data, at))?);
    }
    b.send().await?;
    blk.await?;
    for w in ws {
        w.await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let base = devnet.deploy_token("WETH", 18).await?;
    let quote = devnet.deploy_token("USDC", 6).await?;
    let me = devnet.deployer();
    devnet.mint(base, me, U256::from(10u128.pow(30))).await?;
    devnet.mint(quote, me, U256::from(10u128.pow(30))).await?;
    let p = PoolParams {
        base,
        quote,
        lp_fee_rate: U256::from(ONE / 1000),
        mt_fee_rate: U256::ZERO,
        i: U256::from(2_000_000_000u64),
        k: U256::from(ONE / 10),
    };
    let dsp = devnet.deploy_dsp(p).await?;
    devnet
        .buy_shares(me, dsp, U256::from(10 * ONE), U256::from(20_000_000_000u64))
        .await?;

    let dir = std::env::temp_dir().join(format!("pmm-hub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let allowlist = dir.join("allowlist.json");
    std::fs::write(
        &allowlist,
        r#"{"chain": "devnet", "chain_id": 31337, "pools": []}"#,
    )?;
    let devnet_file = dir.join("devnet.json");
    std::fs::write(
        &devnet_file,
        json!({"rpc_url": devnet.rpc_url(), "templates": devnet.all_templates().await?})
            .to_string(),
    )?;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg: pmm_hub::HubConfig = serde_json::from_value(json!({
        "listen": "127.0.0.1:0",
        "chain": "devnet",
        "rpc_url": devnet.rpc_url(),
        "devnet_file": devnet_file,
        "allowlist_path": allowlist,
        "profiles_path": root.join("config/pool_profiles.json"),
        "agent_token": TOKEN,
        // The benchmark measures the hub's reads, not its per-caller rate limit.
        "rate_limit_per_s": 1_000_000,
        "rate_limit_burst": 1_000_000,
    }))?;
    let hub = pmm_hub::serve(&cfg, None).await?;
    let http = reqwest::Client::new();
    let url = format!("http://{}/mcp/call", hub.addr);
    let body = json!({"tool": "dodo.get_pool_state", "params": {"pool": dsp.to_string()}});
    let provider = devnet.provider().clone();

    // Warm up connections and the per-pool statics.
    for _ in 0..20 {
        direct_read(&provider, dsp, base, quote).await?;
        http.post(&url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }

    let mut direct = Vec::with_capacity(N);
    let t = Instant::now();
    for _ in 0..N {
        let s = Instant::now();
        direct_read(&provider, dsp, base, quote).await?;
        direct.push(s.elapsed());
    }
    let direct = stats(direct, t.elapsed());

    let mut cached = Vec::with_capacity(N);
    let t = Instant::now();
    for _ in 0..N {
        let s = Instant::now();
        http.post(&url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        cached.push(s.elapsed());
    }
    let cached = stats(cached, t.elapsed());

    // A new block before each call: every read misses the (pool, block) cache.
    let mut uncached = Vec::with_capacity(N);
    let mut busy = Duration::ZERO;
    for _ in 0..N {
        provider
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await?;
        let s = Instant::now();
        http.post(&url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let e = s.elapsed();
        busy += e;
        uncached.push(e);
    }
    let uncached = stats(uncached, busy);

    println!("get_pool_state, {N} sequential calls each, DSP on anvil:");
    show("direct batched eth_call", &direct, &direct);
    show("hub /mcp/call cached", &cached, &direct);
    show("hub /mcp/call uncached", &uncached, &direct);
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
