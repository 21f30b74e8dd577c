//! Tool calls at the pool monitor's head (`tools_use_monitor_head`, the default), counted at a
//! proxy between the hub and anvil: in a block the monitor has swept a call sends the node
//! nothing of its own and answers what a hub reading the node directly answers; once the
//! monitor can no longer reach the node, calls stop answering from its cache. With heads
//! subscribed (`monitor_heads = "subscribe"`, the default) a block costs the hub one batched
//! read and no head poll, the monitor still trips within two blocks, a cut websocket falls
//! back to polling (and resubscribes when it is back), and a node gone altogether fails
//! closed.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/rpc_proxy.rs"]
mod rpc_proxy;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use common::*;
use pmm_core::schema::ChainName;
use pmm_store::RedisStore;
use pmm_testkit::contracts::ChainlinkFeed;
use rpc_proxy::CountingProxy;
use serde_json::{Value, json};

const POLL_MS: u64 = 1_000;

fn s(a: Address) -> String {
    a.to_string()
}

/// The tool calls of one round: reads, a hold check, a write-shaped check (which reads the
/// executor's holdings) and a quote.
fn calls(pool: Address) -> Vec<(&'static str, Value)> {
    let add = json!({"action": "add_liquidity", "pool": s(pool),
                     "base_amount": "1000000000000000000", "quote_amount": "2000000000",
                     "min_shares": "1", "reason": "t"});
    vec![
        ("dodo.get_pool_state", json!({"pool": s(pool)})),
        ("dodo.risk_check", json!({"pool": s(pool)})),
        ("dodo.risk_check", json!({"pool": s(pool), "action": add})),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": s(pool), "base_amount": "1000000000000000000",
                   "quote_amount": "2000000000"}),
        ),
    ]
}

/// What must agree between two answers: everything for reads and quotes; for a policy report
/// its verdict, deciding rule, notional and each rule's outcome (details carry ages that move
/// with the clock).
fn comparable(tool: &str, result: &Value) -> Value {
    if tool != "dodo.risk_check" {
        return result.clone();
    }
    let rules: Vec<Value> = result["rules"]
        .as_array()
        .map(|a| a.iter().map(|r| json!([r["rule"], r["outcome"]])).collect())
        .unwrap_or_default();
    json!({"verdict": result["verdict"], "decided_by": result["decided_by"],
           "notional": result["notional"], "rules": rules})
}

async fn monitor_block(hub: &pmm_hub::RunningHub) -> anyhow::Result<Option<u64>> {
    let h: Value = reqwest::get(format!("http://{}/health", hub.addr))
        .await?
        .json()
        .await?;
    Ok(h["monitor_block"].as_u64())
}

#[tokio::test]
async fn a_tool_call_in_a_swept_block_sends_no_rpc_and_equals_a_direct_read() -> anyhow::Result<()>
{
    let f = fixture().await?;
    let proxy = CountingProxy::start(f.devnet.rpc_url()).await?;
    let mut cfg = f.cfg.clone();
    cfg.rpc_url = Some(proxy.url.clone());
    cfg.tools_use_monitor_head = true;
    cfg.monitor_poll_ms = POLL_MS;
    cfg.monitor_heads = pmm_chain::HeadMode::Poll;
    let hub = start(&cfg).await?;
    // The reference: every call asks anvil itself (the fixture's config).
    let direct = start(&f.cfg).await?;

    let provider = f.devnet.provider();
    provider
        .raw_request::<_, Value>("evm_mine".into(), ())
        .await?;
    let target = provider.get_block_number().await?;
    poll(Duration::from_secs(20), || async {
        Ok(monitor_block(&hub).await?.filter(|b| *b >= target))
    })
    .await?;

    let before = proxy.counts.snapshot();
    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..5 {
        for (tool, params) in calls(f.dsp) {
            let body = call_ok(&hub, AGENT, tool, params.clone()).await?;
            answers.push((tool, params, body["result"].clone()));
        }
    }
    let elapsed = started.elapsed();
    let sent = proxy.counts.snapshot().since(&before);
    // The monitor keeps polling the head on its own schedule meanwhile; nothing else may reach
    // the node: no pool read, no holdings read, no head poll per call.
    let monitor_polls = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX) / POLL_MS + 1;
    assert_eq!(sent.pool_batches, 0, "{sent:?}");
    assert_eq!(sent.other, 0, "{sent:?}");
    assert!(
        sent.head_polls <= monitor_polls,
        "{sent:?} in {elapsed:?}: more head polls than the monitor's"
    );

    for (tool, params, result) in &answers {
        let block = result["block_number"]
            .as_u64()
            .or_else(|| result["block"]["number"].as_u64());
        if let Some(b) = block {
            assert_eq!(b, target, "{tool}: {result}");
        }
        let reference = call_ok(&direct, AGENT, tool, params.clone()).await?;
        assert_eq!(
            comparable(tool, result),
            comparable(tool, &reference["result"]),
            "{tool} {params}"
        );
    }
    assert_eq!(
        provider.get_block_number().await?,
        target,
        "nothing was mined meanwhile"
    );

    // The monitor loses the node: once its head is older than two polls, calls ask the node
    // themselves and fail rather than answer from the cache as if it were current.
    proxy.cut();
    let (status, body) = poll(Duration::from_secs(20), || async {
        let (status, body) = call(
            &hub,
            Some(AGENT),
            "dodo.get_pool_state",
            json!({"pool": s(f.dsp)}),
        )
        .await?;
        Ok((status != 200).then_some((status, body)))
    })
    .await?;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "chain_error", "{body}");

    hub.shutdown().await;
    direct.shutdown().await;
    Ok(())
}

/// Mines one block and waits for the monitor to have swept it; returns its number.
async fn mine_swept(f: &Fixture, hub: &pmm_hub::RunningHub) -> anyhow::Result<u64> {
    Ok(mine_swept_counted(f, hub).await?.0)
}

/// [`mine_swept`], also returning how many `/health` calls it took: each asks the node for
/// its block number (one head poll at the proxy) that is the test's, not the monitor's.
async fn mine_swept_counted(f: &Fixture, hub: &pmm_hub::RunningHub) -> anyhow::Result<(u64, u64)> {
    let provider = f.devnet.provider();
    provider
        .raw_request::<_, Value>("evm_mine".into(), ())
        .await?;
    let target = provider.get_block_number().await?;
    let asked = std::sync::atomic::AtomicU64::new(0);
    poll(Duration::from_secs(20), || async {
        asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(monitor_block(hub).await?.filter(|b| *b >= target))
    })
    .await?;
    Ok((target, asked.into_inner()))
}

#[tokio::test]
async fn subscribed_heads_cost_one_batch_per_block_trip_in_time_and_fall_back_when_cut()
-> anyhow::Result<()> {
    const POLL: u64 = 200;
    let f = fixture().await?;
    let proxy = CountingProxy::start(f.devnet.rpc_url()).await?;
    let mut cfg = f.cfg.clone();
    cfg.rpc_url = Some(proxy.url.clone());
    cfg.tools_use_monitor_head = true;
    cfg.monitor_poll_ms = POLL;
    assert_eq!(
        cfg.monitor_heads,
        pmm_chain::HeadMode::Subscribe,
        "the default"
    );
    let hub = start(&cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    let chain = ChainName::new("devnet")?;

    // Subscribed once the node has answered `eth_subscribe` and a block was swept after it.
    poll(Duration::from_secs(20), || async {
        Ok((proxy.counts.snapshot().pushes > 0).then_some(()))
    })
    .await?;
    mine_swept(&f, &hub).await?;

    // Blocks and tool calls: one pool batch per block, no head poll (but the test's own
    // `/health` calls), no other request.
    let before = proxy.counts.snapshot();
    let blocks = 3;
    let mut health_calls = 0;
    for _ in 0..blocks {
        health_calls += mine_swept_counted(&f, &hub).await?.1;
        for (tool, params) in calls(f.dsp) {
            call_ok(&hub, AGENT, tool, params).await?;
        }
    }
    let sent = proxy.counts.snapshot().since(&before);
    println!("subscribed, {blocks} blocks with tool calls: {sent:?}");
    assert_eq!(sent.pool_batches, blocks, "{sent:?}");
    assert_eq!(sent.head_polls, health_calls, "{sent:?}");
    assert_eq!(sent.other, 0, "{sent:?}");
    assert!(sent.pushes >= blocks, "{sent:?}: every head pushed");

    // No tool call: a feed gone stale trips the pool within two blocks.
    ChainlinkFeed::new(f.feed, f.devnet.provider())
        .setUpdatedAt(U256::from(now_s() - 100_000))
        .send()
        .await?
        .get_receipt()
        .await?;
    let stale_at = f.devnet.provider().get_block_number().await?;
    let mut tripped_after = None;
    for n in 0..=2 {
        let swept = if n == 0 {
            poll(Duration::from_secs(20), || async {
                Ok(monitor_block(&hub).await?.filter(|b| *b >= stale_at))
            })
            .await?
        } else {
            mine_swept(&f, &hub).await?
        };
        if redis.breaker(&chain, f.dsp).await?.is_some() {
            tripped_after = Some(swept - stale_at);
            break;
        }
    }
    println!("subscribed: stale feed tripped {tripped_after:?} blocks after it went stale");
    assert!(tripped_after.is_some(), "not tripped within 2 blocks");

    // The websocket is cut (HTTP still flows): the monitor falls back to polling and keeps
    // sweeping each block; tool calls still answer.
    proxy.cut_ws();
    let polls = proxy.counts.snapshot().head_polls;
    poll(Duration::from_secs(20), || async {
        Ok((proxy.counts.snapshot().head_polls > polls).then_some(()))
    })
    .await?;
    let b = mine_swept(&f, &hub).await?;
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.get_pool_state",
        json!({"pool": s(f.dsp)}),
    )
    .await?;
    assert_eq!(body["result"]["block_number"].as_u64(), Some(b), "{body}");

    // The websocket is back: the monitor resubscribes and head polls stop.
    let pushes = proxy.counts.snapshot().pushes;
    proxy.restore_ws();
    poll(Duration::from_secs(40), || async {
        Ok((proxy.counts.snapshot().pushes > pushes).then_some(()))
    })
    .await?;
    mine_swept(&f, &hub).await?;
    let before = proxy.counts.snapshot();
    let mut health_calls = 0;
    for _ in 0..2 {
        health_calls += mine_swept_counted(&f, &hub).await?.1;
    }
    let sent = proxy.counts.snapshot().since(&before);
    assert_eq!(
        (sent.pool_batches, sent.head_polls),
        (2, health_calls),
        "{sent:?}"
    );

    // The node is gone altogether: calls stop answering from the monitor's cache.
    proxy.cut();
    let (status, body) = poll(Duration::from_secs(20), || async {
        let (status, body) = call(
            &hub,
            Some(AGENT),
            "dodo.get_pool_state",
            json!({"pool": s(f.dsp)}),
        )
        .await?;
        Ok((status != 200).then_some((status, body)))
    })
    .await?;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "chain_error", "{body}");
    hub.shutdown().await;
    Ok(())
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
