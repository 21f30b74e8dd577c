//! `dodo.get_pool_state` throughput and latency through the hub (`/mcp/call`), cached and
//! uncached, against a direct batched `eth_call` of the same getters on the same anvil.
//!
//! Run: `cargo bench -p pmm-hub --bench get_pool_state` (prints ratios; asserts nothing).

use std::time::{Duration, Instant};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::{Block, TransactionRequest};
use alloy::sol_types::SolCall;
use pmm_chain::abi::{IDODOV2Pool, IDODOV2Shares, IDODOV2Targets, IERC20};
use serde_json::json;

// Each benchmark uses part of it.
#[allow(dead_code)]
mod common;
use common::{BenchPool, TOKEN, show, stats};

const N: usize = 300;

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
    let pool = BenchPool::start("pmm-hub-bench").await?;
    let (devnet, base, quote, dsp) = (&pool.devnet, pool.base, pool.quote, pool.dsp);
    let cfg = pool.hub_config(json!({})).await?;
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
    show("direct batched eth_call", &direct, &direct, "direct");
    show("hub /mcp/call cached", &cached, &direct, "direct");
    show("hub /mcp/call uncached", &uncached, &direct, "direct");
    hub.shutdown().await;
    Ok(())
}
