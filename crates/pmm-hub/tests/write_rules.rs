//! Every policy rule alone denies a write made through the write tools, under its own name,
//! and nothing leaves the hub; and a corpus of bypass attempts is refused or capped.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/write_fixture.rs"]
mod write_fixture;

use alloy::primitives::{I256, U256};
use common::{AGENT, OPERATOR, call, call_ok, start};
use pmm_core::keys::{daily_cap_scope, utc_day};
use pmm_core::schema::ChainName;
use pmm_hub::RunningHub;
use pmm_store::RedisStore;
use pmm_testkit::contracts::ChainlinkFeed;
use serde_json::{Value, json};
use write_fixture::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One write that must be denied by `rule`: the result names it, the call is recorded as a
/// denial, and the signer's nonce does not move.
async fn denied_by(w: &Writes, hub: &RunningHub, rule: &str, params: Value) -> anyhow::Result<()> {
    let n0 = nonce(w).await?;
    let r = call_ok(hub, AGENT, "dodo.add_liquidity", params).await?;
    assert_eq!(r["result"]["status"], "denied", "{rule}: {r}");
    assert_eq!(r["result"]["denied_by"], rule, "{r}");
    assert!(r["result"]["tx_hash"].is_null(), "{rule}: {r}");
    assert_eq!(nonce(w).await?, n0, "{rule}: no transaction left");
    println!("{rule}: denied, nonce {n0} unchanged");
    Ok(())
}

#[tokio::test]
async fn each_rule_alone_denies_a_write_by_name_and_no_transaction_leaves() -> anyhow::Result<()> {
    let w = writes(true, true).await?;
    let hub = start(&w.fx.cfg).await?;
    let chain = ChainName::new("devnet")?;
    let redis = RedisStore::connect(w.fx.redis.url(), w.fx.redis.namespace())?;
    let feed = ChainlinkFeed::new(w.fx.feed, w.fx.devnet.provider());
    let dsp = w.fx.dsp;
    let mut covered = Vec::new();

    // allowlist: the DVM is not on the list.
    denied_by(
        &w,
        &hub,
        "allowlist",
        add_params(w.fx.dvm, "rule-allowlist"),
    )
    .await?;
    covered.push("allowlist");

    // oracle_deviation: the independent feed 25% above the pool's mid price.
    feed.setAnswer(I256::try_from(250_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    denied_by(&w, &hub, "oracle_deviation", add_params(dsp, "rule-oracle")).await?;
    covered.push("oracle_deviation");
    feed.setAnswer(I256::try_from(200_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    // The monitor may have tripped the breaker on the deviation: resume once the feed agrees.
    call_ok(
        &hub,
        OPERATOR,
        "dodo.resume_pool",
        json!({"pool": dsp.to_string()}),
    )
    .await?;

    // circuit_breaker: an operator pause.
    call_ok(
        &hub,
        OPERATOR,
        "dodo.pause_pool",
        json!({"pool": dsp.to_string(), "reason": "rule table"}),
    )
    .await?;
    denied_by(&w, &hub, "circuit_breaker", add_params(dsp, "rule-breaker")).await?;
    covered.push("circuit_breaker");
    call_ok(
        &hub,
        OPERATOR,
        "dodo.resume_pool",
        json!({"pool": dsp.to_string()}),
    )
    .await?;

    // cooldown: the pool's next allowed write an hour from now.
    redis.set_cooldown(&chain, dsp, now() + 3600).await?;
    denied_by(&w, &hub, "cooldown", add_params(dsp, "rule-cooldown")).await?;
    covered.push("cooldown");
    redis.set_cooldown(&chain, dsp, 1).await?;

    // gas_cap: a 500 gwei base fee against the 100 gwei cap.
    anvil(
        &w,
        "anvil_setNextBlockBaseFeePerGas",
        json!(["0x746a528800"]),
    )
    .await?;
    anvil(&w, "evm_mine", json!([])).await?;
    denied_by(&w, &hub, "gas_cap", add_params(dsp, "rule-gas")).await?;
    covered.push("gas_cap");
    anvil(&w, "anvil_setNextBlockBaseFeePerGas", json!(["0x3b9aca00"])).await?;
    anvil(&w, "evm_mine", json!([])).await?;

    // max_slippage: a minimum of one share for a deposit worth ~0.1 of them.
    let mut loose = add_params(dsp, "rule-slippage");
    loose["min_shares"] = json!("1");
    denied_by(&w, &hub, "max_slippage", loose).await?;
    covered.push("max_slippage");

    // max_notional_per_tx: 200 000 USDC against the 100 000 cap.
    let mut big = add_params(dsp, "rule-pertx");
    big["base_amount"] = json!("100000000000000000000");
    big["quote_amount"] = json!("200000000000");
    big["min_shares"] = json!("99500000000000000000");
    denied_by(&w, &hub, "max_notional_per_tx", big).await?;
    covered.push("max_notional_per_tx");

    // balance: the signer keeps 100 USDC and offers 200 (the dry run fails too; the rule that
    // explains it is the named reason).
    let held = w.fx.devnet.balance_of(w.fx.quote, w.signer).await?;
    let keep = U256::from(100_000_000u64);
    let elsewhere = w.fx.devnet.account(1)?;
    w.fx.devnet
        .transfer(w.signer, w.fx.quote, elsewhere, held - keep)
        .await?;
    denied_by(&w, &hub, "balance", add_params(dsp, "rule-balance")).await?;
    covered.push("balance");
    w.fx.devnet.mint(w.fx.quote, w.signer, held - keep).await?;

    // max_notional_per_day: today's window one unit short of the cap.
    let scope = daily_cap_scope(&chain, dsp);
    redis
        .restore_daily_cap(&scope, utc_day(now()), U256::from(500_000_000_000u64 - 1))
        .await?;
    denied_by(
        &w,
        &hub,
        "max_notional_per_day",
        add_params(dsp, "rule-perday"),
    )
    .await?;
    covered.push("max_notional_per_day");

    // max_donation cannot be reached through a write tool: the tool balances the amounts to
    // the pool's ratio before the policy sees them (the bypass corpus shows the capping).
    let mut names: Vec<&str> = pmm_core::policy::Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| *r != "max_donation")
        .collect();
    names.sort_unstable();
    covered.sort_unstable();
    assert_eq!(covered, names, "every other rule, each alone");
    // Each denial is in tool_calls, and none of them built a transaction.
    let rows = tool_calls(&w).await?;
    let denials = rows
        .iter()
        .filter(|r| r.tool == "dodo.add_liquidity")
        .count();
    assert_eq!(denials, covered.len(), "{rows:?}");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bypass_corpus_is_refused_or_capped() -> anyhow::Result<()> {
    let w = writes(true, true).await?;
    let hub = start(&w.fx.cfg).await?;
    let dsp = w.fx.dsp;
    let n0 = nonce(&w).await?;
    let refused = |what: &'static str, status: u16, body: &Value| {
        assert_eq!(status, 400, "{what}: {body}");
        println!("{what}: refused ({})", body["error"]["message"]);
    };

    // Zero on one side with a large other side: nothing to pair, refused.
    let mut p = add_params(dsp, "bypass-zero-base");
    p["base_amount"] = json!("0");
    p["quote_amount"] = json!("90000000000");
    let (s, b) = call(&hub, Some(AGENT), "dodo.add_liquidity", p).await?;
    refused("zero base, 90 000 USDC", s, &b);
    let mut p = add_params(dsp, "bypass-zero-quote");
    p["base_amount"] = json!("40000000000000000000");
    p["quote_amount"] = json!("0");
    let (s, b) = call(&hub, Some(AGENT), "dodo.add_liquidity", p).await?;
    refused("40 WETH, zero quote", s, &b);

    // The base amount written with 6 decimals (0.1 WETH as 100000): a dust deposit that
    // cannot mint the shares asked for.
    let mut p = add_params(dsp, "bypass-6dec-base");
    p["base_amount"] = json!("100000");
    let (s, b) = call(&hub, Some(AGENT), "dodo.add_liquidity", p).await?;
    refused("base with 6 decimals", s, &b);

    // More shares than the signer holds.
    let held = w.fx.devnet.balance_of(dsp, w.signer).await?;
    let (s, b) = call(
        &hub,
        Some(AGENT),
        "dodo.remove_liquidity",
        json!({"pool": dsp.to_string(), "shares": (held + U256::from(1)).to_string(),
               "min_base": "0", "min_quote": "0", "idempotency_key": "bypass-shares"}),
    )
    .await?;
    refused("shares above the holding", s, &b);

    // 2^256 and above, in every amount.
    for field in ["base_amount", "quote_amount", "min_shares"] {
        let mut p = add_params(dsp, "bypass-2-256");
        p[field] =
            json!("115792089237316195423570985008687907853269984665640564039457584007913129639936");
        let (s, b) = call(&hub, Some(AGENT), "dodo.add_liquidity", p).await?;
        refused("2^256", s, &b);
    }

    // The pool's address in upper case is the same pool under the same caps.
    let upper = format!("0x{}", alloy::hex::encode_upper(dsp.as_slice()));
    let mut p = add_params(dsp, "bypass-case");
    p["pool"] = json!(upper);
    p["base_amount"] = json!("100000000000000000000");
    p["quote_amount"] = json!("200000000000");
    p["min_shares"] = json!("99500000000000000000");
    let r = call_ok(&hub, AGENT, "dodo.add_liquidity", p).await?;
    assert_eq!(r["result"]["denied_by"], "max_notional_per_tx", "{r}");
    assert_eq!(
        nonce(&w).await?,
        n0,
        "nothing was sent for a refused bypass"
    );

    // The quote amount written with 18 decimals (200 USDC as 200e18): capped to the pool's
    // ratio, so exactly 200 USDC leaves the signer.
    let q0 = w.fx.devnet.balance_of(w.fx.quote, w.signer).await?;
    let mut p = add_params(dsp, "bypass-18dec-quote");
    p["quote_amount"] = json!("200000000000000000000");
    let r = call_ok(&hub, AGENT, "dodo.add_liquidity", p).await?;
    assert_eq!(r["result"]["status"], "confirmed", "{r}");
    assert_eq!(r["result"]["predicted"]["quote"], "200000000", "{r}");
    let spent = q0 - w.fx.devnet.balance_of(w.fx.quote, w.signer).await?;
    assert_eq!(spent, U256::from(200_000_000u64), "capped to the ratio");
    println!("quote with 18 decimals: capped, {spent} USDC units spent");
    hub.shutdown().await;

    // A pool allowlisted on another chain only: the hub on devnet does not write to it.
    let path = w.fx.cfg.allowlist_path.clone();
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    list["chain"] = json!("arbitrum");
    list["chain_id"] = json!(42161);
    std::fs::write(&path, list.to_string())?;
    match start(&w.fx.cfg).await {
        Err(e) => {
            let e = format!("{e:#}");
            assert!(e.contains("chain") || e.contains("arbitrum"), "{e}");
            println!("allowlisted on arbitrum only: the hub refuses to start: {e}");
        }
        Ok(hub) => {
            let n1 = nonce(&w).await?;
            let r = call_ok(
                &hub,
                AGENT,
                "dodo.add_liquidity",
                add_params(dsp, "bypass-chain"),
            )
            .await?;
            assert_eq!(r["result"]["denied_by"], "allowlist", "{r}");
            assert_eq!(nonce(&w).await?, n1);
            hub.shutdown().await;
        }
    }
    Ok(())
}
