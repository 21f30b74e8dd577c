//! The hub end to end on the devnet fixtures, Postgres and Redis.

mod common;

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use common::*;
use pmm_chain::abi::{IDODOV2Pool, IDODOV2Shares};
use pmm_core::keys::{daily_cap_scope, utc_day};
use pmm_core::schema::ChainName;
use pmm_store::{PgStore, RedisStore};
use pmm_testkit::contracts::ChainlinkFeed;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

fn s(a: Address) -> String {
    a.to_string()
}

fn amount(v: &Value) -> U256 {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// Mines `blocks` blocks, the first with base fee `fee` (later ones follow EIP-1559 from it).
async fn mine_with_base_fee(f: &Fixture, fee: U256, blocks: usize) -> anyhow::Result<()> {
    let provider = f.devnet.provider();
    provider
        .raw_request::<_, ()>("anvil_setNextBlockBaseFeePerGas".into(), (fee,))
        .await?;
    for _ in 0..blocks {
        provider
            .raw_request::<_, Value>("evm_mine".into(), ())
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn read_tools_on_each_pool_type_match_the_chain() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let provider = f.devnet.provider();
    for (pool, kind) in [(f.dvm, "dvm"), (f.dsp, "dsp"), (f.dpp, "dpp")] {
        let body = call_ok(&hub, AGENT, "dodo.get_pool_state", json!({"pool": s(pool)})).await?;
        let state = &body["result"];
        let c = IDODOV2Pool::new(pool, provider);
        let pmm = c.getPMMStateForCall().call().await?;
        assert_eq!(state["pool_type"], kind);
        assert_eq!(amount(&state["pmm"]["B"]), pmm.B);
        assert_eq!(amount(&state["pmm"]["Q"]), pmm.Q);
        assert_eq!(amount(&state["pmm"]["B0"]), pmm.B0);
        assert_eq!(amount(&state["pmm"]["Q0"]), pmm.Q0);
        assert_eq!(amount(&state["pmm"]["i"]), pmm.i);
        assert_eq!(
            amount(&state["mid_price_raw"]),
            c.getMidPrice().call().await?
        );
        let reserve = c.getVaultReserve().call().await?;
        assert_eq!(amount(&state["reserves"]["base"]), reserve.baseReserve);
        assert_eq!(state["base_token"]["symbol"], "WETH");
        assert_eq!(state["quote_token"]["decimals"], 6);
        assert_eq!(state["block_number"], provider.get_block_number().await?);

        let body = call_ok(
            &hub,
            AGENT,
            "dodo.identify_pool_interface",
            json!({"pool": s(pool)}),
        )
        .await?;
        assert_eq!(body["result"]["detected_profile"], kind);

        let body = call_ok(&hub, AGENT, "dodo.risk_check", json!({"pool": s(pool)})).await?;
        assert_eq!(
            body["result"]["verdict"], "allow",
            "hold is always allowed: {body}"
        );
    }
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.identify_pool_interface",
        json!({"pool": s(f.base)}),
    )
    .await?;
    assert_eq!(body["result"]["detected_profile"], "unknown");

    // A DPP has no shares: the quote says so instead of inventing one.
    let (st, body) = call(
        &hub,
        Some(AGENT),
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dpp), "base_amount": "1000", "quote_amount": "1000"}),
    )
    .await?;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["code"], "unsupported");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn quote_add_liquidity_equals_buy_shares_after_the_transfers() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let me = f.devnet.deployer();
    for pool in [f.dvm, f.dsp] {
        // Unbalanced on purpose: the excess quote is donated.
        let base_in = U256::from(10u128.pow(18));
        let quote_in = U256::from(3_000_000_000u64);
        let body = call_ok(
            &hub,
            AGENT,
            "dodo.quote_add_liquidity",
            json!({"pool": s(pool), "base_amount": base_in.to_string(), "quote_amount": quote_in.to_string()}),
        )
        .await?;
        let q = &body["result"];
        assert!(amount(&q["quote_donated"]) > U256::ZERO, "{q}");
        assert_eq!(amount(&q["base_input"]), base_in);

        f.devnet.transfer(me, f.base, pool, base_in).await?;
        f.devnet.transfer(me, f.quote, pool, quote_in).await?;
        let tx = alloy::rpc::types::TransactionRequest::default()
            .from(me)
            .to(pool)
            .input(IDODOV2Shares::buySharesCall { to: me }.abi_encode().into());
        let out = f.devnet.provider().call(tx).await?;
        let r = IDODOV2Shares::buySharesCall::abi_decode_returns(&out)?;
        assert_eq!(amount(&q["shares"]), r.shares, "pool {pool}");
        assert_eq!(amount(&q["base_input"]), r.baseInput);
        assert_eq!(amount(&q["quote_input"]), r.quoteInput);
    }
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn simulate_action_dry_runs_with_overrides_and_never_signs() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let nonce_before = f
        .devnet
        .provider()
        .get_transaction_count(f.devnet.deployer())
        .await?;
    let block_before = f.devnet.provider().get_block_number().await?;
    let quote = call_ok(
        &hub,
        AGENT,
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dsp), "base_amount": "1000000000000000000", "quote_amount": "2000000000"}),
    )
    .await?;
    let shares = quote["result"]["shares"].clone();
    let action = json!({
        "action": "add_liquidity", "pool": s(f.dsp),
        "base_amount": "1000000000000000000", "quote_amount": "2000000000",
        "min_shares": shares, "reason": "test"
    });
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.simulate_action",
        json!({"action": action}),
    )
    .await?;
    let r = &body["result"];
    assert_eq!(r["dry_run"]["matches_math"], true, "{r}");
    assert_eq!(r["dry_run"]["primary_output"], shares);
    assert!(
        r["dry_run"]["gas_estimate"].as_u64().unwrap_or(0) > 21_000,
        "{r}"
    );
    assert_eq!(r["verdict"], "allow", "{r}");
    // Removing shares the executor holds: the node's answer equals the math.
    let held = IDODOV2Shares::new(f.dsp, f.devnet.provider())
        .balanceOf(f.devnet.deployer())
        .call()
        .await?;
    let remove = json!({
        "action": "remove_liquidity", "pool": s(f.dsp), "shares": (held / U256::from(10)).to_string(),
        "min_base": "0", "min_quote": "0", "reason": "test"
    });
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.simulate_action",
        json!({"action": remove}),
    )
    .await?;
    assert_eq!(body["result"]["dry_run"]["matches_math"], true, "{body}");
    // Nothing was signed or mined.
    assert_eq!(
        f.devnet
            .provider()
            .get_transaction_count(f.devnet.deployer())
            .await?,
        nonce_before
    );
    assert_eq!(f.devnet.provider().get_block_number().await?, block_before);
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn each_policy_rule_alone_denies_with_its_name() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    // The allowlist's chain name, which the hub must key Redis state by.
    let chain = ChainName::new("devnet")?;
    let (_, q) = call(
        &hub,
        Some(AGENT),
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dsp), "base_amount": "1000000000000000000", "quote_amount": "2000000000"}),
    )
    .await?;
    let shares = amount(&q["result"]["shares"]);
    let add = |pool: Address, base: &str, quote: &str, min: U256| {
        json!({"action": "add_liquidity", "pool": s(pool), "base_amount": base, "quote_amount": quote,
               "min_shares": min.to_string(), "reason": "t"})
    };
    let check = |pool: Address, action: Value| {
        let hub = &hub;
        async move {
            let (st, body) = call(
                hub,
                Some(AGENT),
                "dodo.risk_check",
                json!({"pool": s(pool), "action": action}),
            )
            .await?;
            anyhow::ensure!(st == 200, "{body}");
            Ok::<Value, anyhow::Error>(body["result"].clone())
        }
    };
    let good = add(f.dsp, "1000000000000000000", "2000000000", shares);
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["verdict"], "allow", "baseline must pass: {r}");

    let r = check(
        f.dvm,
        add(f.dvm, "1000000000000000000", "2000000000", U256::ZERO),
    )
    .await?;
    assert_eq!(r["decided_by"], "allowlist", "{r}");
    let r = check(
        f.dsp,
        add(
            f.dsp,
            "1000000000000000000",
            "2000000000",
            shares / U256::from(2),
        ),
    )
    .await?;
    assert_eq!(r["decided_by"], "max_slippage", "{r}");
    only_denied_by(&r, "max_slippage");
    // 60 WETH + 120k USDC is 240k USDC of notional, above the 100k per-tx limit.
    let (_, q) = call(
        &hub,
        Some(AGENT),
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dsp), "base_amount": "60000000000000000000", "quote_amount": "120000000000"}),
    )
    .await?;
    let big = amount(&q["result"]["shares"]);
    let r = check(
        f.dsp,
        add(f.dsp, "60000000000000000000", "120000000000", big),
    )
    .await?;
    assert_eq!(r["decided_by"], "max_notional_per_tx", "{r}");
    only_denied_by(&r, "max_notional_per_tx");

    // max_donation: ten times the balanced quote gives most of it to the other LPs.
    let (_, q) = call(
        &hub,
        Some(AGENT),
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dsp), "base_amount": "1000000000000000000", "quote_amount": "20000000000"}),
    )
    .await?;
    let r = check(
        f.dsp,
        add(
            f.dsp,
            "1000000000000000000",
            "20000000000",
            amount(&q["result"]["shares"]),
        ),
    )
    .await?;
    assert_eq!(r["decided_by"], "max_donation", "{r}");
    only_denied_by(&r, "max_donation");

    // balance: burning one share more than the executor holds, with minimums at or above the
    // expected outputs (no slippage), so nothing else is wrong with it.
    let held = f.devnet.balance_of(f.dsp, f.devnet.deployer()).await?;
    let remove = json!({"action": "remove_liquidity", "pool": s(f.dsp),
                        "shares": (held + U256::from(1)).to_string(),
                        "min_base": "1000000000000000000000000000000",
                        "min_quote": "1000000000000000000000000000000", "reason": "t"});
    let r = check(f.dsp, remove).await?;
    assert_eq!(r["decided_by"], "balance", "{r}");
    only_denied_by(&r, "balance");

    // Usage reserved under the shared scope of today's UTC day is what the hub reads.
    let day = utc_day(now());
    let scope = daily_cap_scope(&chain, f.dsp);
    redis
        .reserve_daily_cap(
            &scope,
            day,
            U256::from(499_000_000_000u64),
            U256::from(1u64 << 52),
        )
        .await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["decided_by"], "max_notional_per_day", "{r}");
    only_denied_by(&r, "max_notional_per_day");
    redis
        .release_daily_cap(&scope, day, U256::from(499_000_000_000u64))
        .await?;

    redis.set_cooldown(&chain, f.dsp, now() + 1000).await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["decided_by"], "cooldown", "{r}");
    only_denied_by(&r, "cooldown");
    redis.set_cooldown(&chain, f.dsp, 1).await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["verdict"], "allow", "cooldown cleared: {r}");

    mine_with_base_fee(&f, U256::from(500_000_000_000u64), 1).await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["decided_by"], "gas_cap", "{r}");
    only_denied_by(&r, "gas_cap");
    mine_with_base_fee(&f, U256::from(1_000_000_000u64), 2).await?;

    call_ok(
        &hub,
        OPERATOR,
        "dodo.pause_pool",
        json!({"pool": s(f.dsp), "reason": "test pause"}),
    )
    .await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["decided_by"], "circuit_breaker", "{r}");
    only_denied_by(&r, "circuit_breaker");
    call_ok(
        &hub,
        OPERATOR,
        "dodo.resume_pool",
        json!({"pool": s(f.dsp)}),
    )
    .await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["verdict"], "allow", "{r}");

    // Oracle 25% above the mid price: denied, and the breaker trips.
    let feed = ChainlinkFeed::new(f.feed, f.devnet.provider());
    feed.setAnswer(alloy::primitives::I256::try_from(250_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    let r = check(f.dsp, good.clone()).await?;
    assert_eq!(r["decided_by"], "oracle_deviation", "{r}");
    // The pool monitor, not the check, trips the breaker.
    poll(Duration::from_secs(20), || async {
        Ok(redis
            .breaker(&chain, f.dsp)
            .await?
            .filter(|b| b.tripped && b.reason.contains("oracle deviation")))
    })
    .await?;
    hub.shutdown().await;

    // Pools that are wrong in one way each, in a second hub: a DVM below its base reserve
    // floor (illiquid), a DPP listed with its tokens swapped (the allowlist's claim does not
    // hold at run time), and a DPP Oracle pool without an independent feed.
    let own = f
        .devnet
        .deploy_price_oracle(U256::from(2_000_000_000u64))
        .await?;
    let dppo = f
        .devnet
        .deploy_dpp_oracle(
            pmm_testkit::devnet::PoolParams {
                base: f.base,
                quote: f.quote,
                lp_fee_rate: U256::from(10u64.pow(15)),
                mt_fee_rate: U256::ZERO,
                i: U256::from(2_000_000_000u64),
                k: U256::from(10u64.pow(17)),
            },
            own,
        )
        .await?;
    f.devnet
        .dpp_deposit(
            dppo,
            U256::from(10u64.pow(19)),
            U256::from(20_000_000_000u64),
        )
        .await?;
    let mut illiquid = limits();
    illiquid["oracle_deviation_bps"] = json!(10_000);
    illiquid["min_base_reserve"] = json!("11000000000000000000");
    let mut wide = limits();
    wide["oracle_deviation_bps"] = json!(10_000);
    let feed = json!({"kind": "chainlink", "address": s(f.feed)});
    let entries = json!([
        {"address": s(f.dvm), "base_token": s(f.base), "quote_token": s(f.quote),
         "profile": "dvm", "pool_type": "dvm", "oracle": feed, "limits": illiquid},
        {"address": s(f.dpp), "base_token": s(f.quote), "quote_token": s(f.base),
         "profile": "dpp", "pool_type": "dpp", "oracle": feed, "limits": wide},
        {"address": s(dppo), "base_token": s(f.base), "quote_token": s(f.quote),
         "profile": "dpp_oracle", "pool_type": "dpp_oracle", "oracle": {"kind": "dpp_oracle"},
         "limits": limits()},
    ]);
    let path = f.dir.join("one-wrong-each.json");
    std::fs::write(
        &path,
        serde_json::to_string(&json!({"chain": "devnet", "chain_id": 31337, "pools": entries}))?,
    )?;
    let mut cfg = f.cfg.clone();
    cfg.allowlist_path = path;
    let hub = start(&cfg).await?;
    let check = |pool: Address, action: Value| {
        let hub = &hub;
        async move {
            let (st, body) = call(
                hub,
                Some(AGENT),
                "dodo.risk_check",
                json!({"pool": s(pool), "action": action}),
            )
            .await?;
            anyhow::ensure!(st == 200, "{body}");
            Ok::<Value, anyhow::Error>(body["result"].clone())
        }
    };
    let (_, q) = call(
        &hub,
        Some(AGENT),
        "dodo.quote_add_liquidity",
        json!({"pool": s(f.dvm), "base_amount": "1000000000000000000", "quote_amount": "2000000000"}),
    )
    .await?;
    let r = check(
        f.dvm,
        add(
            f.dvm,
            "1000000000000000000",
            "2000000000",
            amount(&q["result"]["shares"]),
        ),
    )
    .await?;
    assert_eq!(r["decided_by"], "circuit_breaker", "{r}");
    only_denied_by(&r, "circuit_breaker");
    assert!(
        detail(&r, "circuit_breaker").contains("pool illiquid: base reserve"),
        "{r}"
    );

    let r = check(f.dpp, add(f.dpp, "1", "1", U256::ZERO)).await?;
    assert_eq!(r["decided_by"], "allowlist", "{r}");
    assert!(
        detail(&r, "allowlist").contains("differ from the allowlisted"),
        "{r}"
    );

    // A pool without LP shares has no add to pass the amount rules with; the missing
    // reference price is what decides.
    let r = check(dppo, add(dppo, "1", "1", U256::ZERO)).await?;
    assert_eq!(r["decided_by"], "oracle_deviation", "{r}");
    assert!(
        detail(&r, "oracle_deviation").contains("no independent reference price"),
        "{r}"
    );
    hub.shutdown().await;
    Ok(())
}

fn detail<'a>(report: &'a Value, rule: &str) -> &'a str {
    report["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["rule"] == rule))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
}

/// Asserts that `rule` denies and every other rule passes.
fn only_denied_by(report: &Value, rule: &str) {
    let rules = report["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 10, "{report}");
    for c in rules {
        let want = if c["rule"] == rule { "deny" } else { "pass" };
        assert_eq!(c["outcome"], want, "{}: {report}", c["rule"]);
    }
}

#[tokio::test]
async fn stale_feed_trips_the_breaker_and_the_trip_survives_a_restart() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    let chain = ChainName::new("devnet")?;
    let feed = ChainlinkFeed::new(f.feed, f.devnet.provider());
    feed.setUpdatedAt(U256::from(now() - 100_000))
        .send()
        .await?
        .get_receipt()
        .await?;
    // The pool monitor trips it with no tool call.
    let b = poll(Duration::from_secs(20), || async {
        Ok(redis.breaker(&chain, f.dsp).await?)
    })
    .await?;
    assert!(b.tripped && b.reason.contains("stale"), "{b:?}");
    assert_eq!(
        f.redis.keys()?,
        vec![
            format!("{}cb:devnet:{:#x}", f.redis.namespace(), f.dsp),
            format!("{}pmm:schema_version", f.redis.namespace()),
        ],
        "the trip is stored under the chain name and the lowercase pool"
    );
    hub.shutdown().await;

    // Fresh feed again, new hub process state: the breaker still blocks writes.
    feed.setUpdatedAt(U256::from(now()))
        .send()
        .await?
        .get_receipt()
        .await?;
    let hub = start(&f.cfg).await?;
    let action = json!({"action": "add_liquidity", "pool": s(f.dsp), "base_amount": "1000000000000000000",
                        "quote_amount": "2000000000", "min_shares": "1", "reason": "t"});
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.risk_check",
        json!({"pool": s(f.dsp), "action": action}),
    )
    .await?;
    assert_eq!(body["result"]["verdict"], "deny", "{body}");
    let rules = body["result"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cb = rules
        .iter()
        .find(|r| r["rule"] == "circuit_breaker")
        .expect("breaker rule");
    assert_eq!(cb["outcome"], "deny", "{cb}");
    assert!(
        cb["detail"].as_str().unwrap_or_default().contains("stale"),
        "{cb}"
    );
    let oracle = rules
        .iter()
        .find(|r| r["rule"] == "oracle_deviation")
        .expect("oracle rule");
    assert_eq!(oracle["outcome"], "pass", "feed is fresh again: {oracle}");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_input_gets_clear_errors_and_auth_is_enforced() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let pool = s(f.dsp);
    let cases = [
        (
            "dodo.get_pool_state",
            json!({"pool": "0x1234"}),
            400,
            "invalid_params",
            "20-byte",
        ),
        (
            "dodo.get_pool_state",
            json!({}),
            400,
            "invalid_params",
            "missing field `pool`",
        ),
        (
            "dodo.get_pool_state",
            Value::Null,
            400,
            "invalid_params",
            "pool",
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "0", "quote_amount": "1"}),
            400,
            "invalid_params",
            "greater than 0",
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "-5", "quote_amount": "1"}),
            400,
            "invalid_params",
            "negative",
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1".repeat(80), "quote_amount": "1"}),
            400,
            "invalid_params",
            "2^256",
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": 5, "quote_amount": "1"}),
            400,
            "invalid_params",
            "base_amount",
        ),
        ("dodo.nope", json!({}), 404, "unknown_tool", "dodo.nope"),
        (
            "dodo.get_pool_state",
            json!({"pool": pool, "extra": 1}),
            400,
            "invalid_params",
            "extra",
        ),
    ];
    for (tool, params, status, code, needle) in cases {
        let (st, body) = call(&hub, Some(AGENT), tool, params.clone()).await?;
        assert_eq!(st, status, "{tool} {params}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{tool} {params}: {msg}");
    }
    let (st, _) = call(&hub, None, "dodo.get_pool_state", json!({"pool": pool})).await?;
    assert_eq!(st, 401);
    let (st, _) = call(
        &hub,
        Some("wrong-token-wrong-token"),
        "dodo.get_pool_state",
        json!({"pool": pool}),
    )
    .await?;
    assert_eq!(st, 401);
    let (st, body) = call(
        &hub,
        Some(AGENT),
        "dodo.pause_pool",
        json!({"pool": pool, "reason": "x"}),
    )
    .await?;
    assert_eq!(st, 403, "{body}");
    let mcp = reqwest::Client::new()
        .post(format!("http://{}/mcp", hub.addr))
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(mcp.status().as_u16(), 401);
    let foreign = reqwest::Client::new()
        .post(format!("http://{}/mcp", hub.addr))
        .bearer_auth(AGENT)
        .header("Origin", "https://evil.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await?;
    assert_eq!(foreign.status().as_u16(), 403);
    // Still serving after all of that.
    call_ok(&hub, AGENT, "dodo.get_pool_state", json!({"pool": pool})).await?;

    // Every call above that reached the hub is in tool_calls.
    let pg = PgStore::connect(f.db.url(), 2)?;
    let n = poll(Duration::from_secs(10), || {
        let pg = pg.clone();
        async move {
            let n = pg.count_tool_calls().await?;
            Ok((n >= 11).then_some(n))
        }
    })
    .await?;
    // 9 malformed calls, the forbidden pause and the final read; 401s never reach a tool.
    assert_eq!(n, 11);
    let rows = pg.recent_tool_calls(Some("dodo.pause_pool"), 10).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].caller, "agent#0");
    assert!(
        matches!(&rows[0].outcome, pmm_store::ToolOutcome::Err(e) if e.starts_with("forbidden"))
    );
    let health: Value = reqwest::get(format!("http://{}/health", hub.addr))
        .await?
        .json()
        .await?;
    assert_eq!(health["tool_log"]["state"], "ok", "{health}");
    assert_eq!(health["redis"]["status"], "ok");
    assert_eq!(health["postgres"]["status"], "ok");
    let text = reqwest::get(format!("http://{}/metrics", hub.addr))
        .await?
        .text()
        .await?;
    assert!(
        text.lines().any(|l| l.starts_with("pmm_hub_tool_calls_total") && l.contains("dodo.get_pool_state")),
        "{text}"
    );
    // A caller-chosen unknown name never becomes a metric label.
    assert!(!text.contains("dodo.nope"), "{text}");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn mcp_client_lists_tools_with_schemas_and_calls_each() -> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", hub.addr))
            .auth_header(AGENT),
    );
    let client = ClientConfig::default().serve(transport).await?;
    let tools = client.list_all_tools().await?;
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "dodo.get_pool_state",
        "dodo.identify_pool_interface",
        "dodo.quote_add_liquidity",
        "dodo.risk_check",
        "dodo.simulate_action",
    ] {
        let t = tools
            .iter()
            .find(|t| t.name == expected)
            .unwrap_or_else(|| panic!("{expected} missing: {names:?}"));
        assert_eq!(
            t.input_schema.get("type").and_then(|v| v.as_str()),
            Some("object"),
            "{expected}"
        );
        assert!(t.output_schema.is_some(), "{expected} has no output schema");
        assert!(t.annotations.is_some(), "{expected} has no annotations");
    }
    let read_only = |n: &str| {
        tools
            .iter()
            .find(|t| t.name == n)
            .and_then(|t| t.annotations.as_ref())
            .and_then(|a| a.read_only_hint)
    };
    assert_eq!(read_only("dodo.get_pool_state"), Some(true));
    assert_eq!(read_only("dodo.pause_pool"), Some(false));

    let args = |v: Value| v.as_object().cloned().unwrap_or_default();
    let pool = s(f.dsp);
    let action = json!({"action": "hold", "reason": "t"});
    for (tool, params) in [
        ("dodo.get_pool_state", json!({"pool": pool})),
        ("dodo.identify_pool_interface", json!({"pool": pool})),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1000000000000000000", "quote_amount": "2000000000"}),
        ),
        ("dodo.risk_check", json!({"pool": pool, "action": action})),
        (
            "dodo.simulate_action",
            json!({"action": {"action": "remove_liquidity", "pool": pool, "shares": "1000000", "min_base": "0", "min_quote": "0", "reason": "t"}}),
        ),
    ] {
        let r = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args(params.clone())))
            .await?;
        assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
        let structured = r.structured_content.clone().unwrap_or(Value::Null);
        assert!(structured.is_object(), "{tool}: {r:?}");
        // Same result as /mcp/call (same code path, same block).
        let (_, body) = call(&hub, Some(AGENT), tool, params).await?;
        if tool == "dodo.get_pool_state" {
            assert_eq!(structured["pmm"], body["result"]["pmm"]);
        }
    }
    // Validation failures are tool errors, not protocol errors.
    let r = client
        .call_tool(
            CallToolRequestParams::new("dodo.get_pool_state")
                .with_arguments(args(json!({"pool": "nope"}))),
        )
        .await?;
    assert_eq!(r.is_error, Some(true));
    let r = client
        .call_tool(
            CallToolRequestParams::new("dodo.get_pool_state").with_arguments(args(json!({}))),
        )
        .await?;
    assert_eq!(r.is_error, Some(true));
    // An agent may not pause.
    let r = client
        .call_tool(
            CallToolRequestParams::new("dodo.pause_pool")
                .with_arguments(args(json!({"pool": pool, "reason": "x"}))),
        )
        .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(r.structured_content.is_none(), "{r:?}");
    assert_eq!(mcp_error(&r)["code"], "forbidden");
    // The same bad input gets the same {code, message, field} on both transports.
    let bad = pool.to_lowercase().replacen("a", "A", 1);
    for (tool, params) in [
        ("dodo.get_pool_state", json!({"pool": bad})),
        ("dodo.get_pool_state", json!({"pool": pool, "extra": 1})),
        (
            "dodo.pause_pool",
            json!({"pool": pool, "reason": "r".repeat(501)}),
        ),
        ("dodo.pause_pool", json!({"pool": pool, "reason": ""})),
        (
            "dodo.risk_check",
            json!({"pool": pool, "action": {"action": "hold", "reason": 1}}),
        ),
        ("dodo.pause_pool", json!({"pool": pool, "reason": "x"})),
    ] {
        let r = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args(params.clone())))
            .await?;
        assert_eq!(r.is_error, Some(true), "{tool} {params}");
        assert!(r.structured_content.is_none(), "{r:?}");
        let (_, body) = call(&hub, Some(AGENT), tool, params.clone()).await?;
        assert_eq!(mcp_error(&r), body["error"], "{tool} {params}");
        assert!(body["error"]["field"].is_string() || body["error"]["code"] == "forbidden");
    }
    client.cancel().await?;
    hub.shutdown().await;
    Ok(())
}

/// The `{code, message, field}` body of an MCP error result's text content.
fn mcp_error(r: &rmcp::model::CallToolResult) -> Value {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .and_then(|t| serde_json::from_str(&t.text).ok())
        .unwrap_or(Value::Null)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_chain_id_or_name_mismatch_refuses_to_start() -> anyhow::Result<()> {
    let f = fixture().await?;
    let mut cfg = f.cfg.clone();
    cfg.chain = pmm_hub::config::ChainPreset::Bsc;
    let err = start(&cfg).await.expect_err("must refuse");
    assert!(err.to_string().contains("chain id mismatch"), "{err}");

    // Same chain id, but the allowlist names the chain differently from the preset: Redis
    // keys and the policy would disagree on the chain, so the hub refuses to start.
    let mut allowlist: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.cfg.allowlist_path)?)?;
    allowlist["chain"] = json!("devnet-b");
    let path = f.dir.join("allowlist-renamed.json");
    std::fs::write(&path, serde_json::to_string(&allowlist)?)?;
    let mut cfg = f.cfg.clone();
    cfg.allowlist_path = path;
    let err = start(&cfg).await.expect_err("must refuse");
    assert!(
        err.to_string()
            .contains("chain name mismatch: config says devnet, the allowlist says devnet-b"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn redis_down_denies_writes_but_reads_still_work() -> anyhow::Result<()> {
    let f = fixture().await?;
    let mut cfg = f.cfg.clone();
    // Nothing listens on port 1: Redis is configured but unreachable.
    cfg.redis_url = Some("redis://127.0.0.1:1".into());
    let hub = start(&cfg).await?;
    call_ok(
        &hub,
        AGENT,
        "dodo.get_pool_state",
        json!({"pool": s(f.dsp)}),
    )
    .await?;
    let action = json!({"action": "add_liquidity", "pool": s(f.dsp), "base_amount": "1000000000000000000",
                        "quote_amount": "2000000000", "min_shares": "1000000000000000000", "reason": "t"});
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.risk_check",
        json!({"pool": s(f.dsp), "action": action}),
    )
    .await?;
    let r = &body["result"];
    assert_eq!(r["verdict"], "deny", "{r}");
    for rule in ["max_notional_per_day", "cooldown", "circuit_breaker"] {
        let c = r["rules"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["rule"] == rule))
            .cloned()
            .unwrap_or_default();
        assert_eq!(c["outcome"], "deny", "{rule} must fail closed: {c}");
    }
    let health = reqwest::get(format!("http://{}/health", hub.addr)).await?;
    assert_eq!(health.status().as_u16(), 503);
    let health: Value = health.json().await?;
    assert_eq!(health["redis"]["status"], "down", "{health}");
    hub.shutdown().await;
    Ok(())
}
