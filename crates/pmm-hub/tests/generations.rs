//! Template generations and empty pools through the hub: the generation each devnet pool's
//! EIP-1167 template names, allowlist pins, and first deposits on fresh pools of each type.

#[allow(dead_code)]
mod common;

use std::process::Command;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use common::*;
use pmm_chain::abi::IDODOV2Shares;
use pmm_testkit::Template;
use pmm_testkit::devnet::PoolParams;
use serde_json::{Value, json};

fn s(a: Address) -> String {
    a.to_string()
}

fn amount(v: &Value) -> U256 {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// The fixture's pool parameters: WETH/USDC at 2000, k = 0.1, 0.1% LP fee.
fn params(f: &Fixture) -> PoolParams {
    PoolParams {
        base: f.base,
        quote: f.quote,
        lp_fee_rate: U256::from(10u64.pow(15)),
        mt_fee_rate: U256::from(10u64.pow(14)),
        i: U256::from(2_000_000_000u64),
        k: U256::from(10u64.pow(17)),
    }
}

fn weth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64.pow(18))
}

fn usdc(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000u64)
}

/// Writes an allowlist of `(pool, pool_type, generation pin)` priced by the fixture's feed.
fn allowlist(
    f: &Fixture,
    name: &str,
    pools: &[(Address, &str, Option<&str>)],
) -> anyhow::Result<pmm_hub::HubConfig> {
    let entries: Vec<Value> = pools
        .iter()
        .map(|(pool, kind, pin)| {
            let mut e = json!({"address": s(*pool), "base_token": s(f.base), "quote_token": s(f.quote),
                "profile": kind, "pool_type": kind, "limits": limits(),
                "oracle": {"kind": "chainlink", "address": s(f.feed)}});
            if let Some(g) = pin {
                e["generation"] = json!(g);
            }
            e
        })
        .collect();
    let path = f.dir.join(name);
    std::fs::write(
        &path,
        json!({"chain": "devnet", "chain_id": 31337, "pools": entries}).to_string(),
    )?;
    let mut cfg = f.cfg.clone();
    cfg.allowlist_path = path;
    Ok(cfg)
}

#[tokio::test]
async fn identify_names_the_generation_of_every_devnet_pool() -> anyhow::Result<()> {
    let f = fixture().await?;
    let d = &f.devnet;
    let me = d.deployer();
    let p = params(&f);
    // The devnet's other pool types beside the fixture's 2024 DVM, DSP and DPP.
    let dvm2021 = d.deploy_shares_pool(Template::Dvm2021, &p, true).await?;
    let dsp2021 = d.deploy_shares_pool(Template::Dsp2021, &p, false).await?;
    let gsp = d.deploy_gsp(p).await?;
    for pool in [dvm2021, dsp2021, gsp] {
        d.buy_shares(me, pool, weth(10), usdc(20_000)).await?;
    }
    let guide = d.deploy_price_oracle(p.i).await?;
    let dppo = d.deploy_dpp_oracle(p, guide).await?;
    d.dpp_deposit(dppo, weth(10), usdc(20_000)).await?;
    let v1 = d.deploy_v1(f.base, f.quote, guide, p.k).await?;

    let hub = start(&f.cfg).await?;
    let cases = [
        (f.dvm, Some(Template::Dvm)),
        (f.dsp, Some(Template::Dsp)),
        (f.dpp, Some(Template::Dpp)),
        (gsp, Some(Template::Gsp)),
        (dppo, Some(Template::DppOracle)),
        (dvm2021, Some(Template::Dvm2021)),
        (dsp2021, Some(Template::Dsp2021)),
        (v1, None),
    ];
    for (pool, template) in cases {
        let body = call_ok(
            &hub,
            AGENT,
            "dodo.identify_pool_interface",
            json!({"pool": s(pool)}),
        )
        .await?;
        let r = &body["result"];
        let generation = template.map(|t| t.generation().as_str());
        assert_eq!(r["generation"], json!(generation), "{template:?}: {r}");
        match template {
            Some(t) => {
                assert_eq!(r["template"], json!(d.template(t).await?), "{r}");
                assert_eq!(r["template_code_hash"], json!(t.code_hash()), "{r}");
            }
            None => assert_eq!(r["template"], Value::Null, "{r}"),
        }
        if template.is_some() {
            let body =
                call_ok(&hub, AGENT, "dodo.get_pool_state", json!({"pool": s(pool)})).await?;
            assert_eq!(
                body["result"]["generation"],
                json!(generation),
                "{template:?}"
            );
        }
    }
    hub.shutdown().await;

    // Without a template table nothing names a generation: reads refuse the pool, the report
    // says why, and an allowlisted V2 pool stops the hub.
    let mut bare = allowlist(&f, "empty.json", &[])?;
    bare.devnet_file = None;
    let hub = start(&bare).await?;
    let body = call_ok(
        &hub,
        AGENT,
        "dodo.identify_pool_interface",
        json!({"pool": s(dvm2021)}),
    )
    .await?;
    assert_eq!(body["result"]["generation"], Value::Null);
    let notes = body["result"]["notes"].to_string();
    assert!(
        notes.contains("not a known dvm template on devnet"),
        "{notes}"
    );
    let (st, body) = call(
        &hub,
        Some(AGENT),
        "dodo.get_pool_state",
        json!({"pool": s(dvm2021)}),
    )
    .await?;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "unsupported", "{body}");
    assert!(
        body["error"]["message"]
            .to_string()
            .contains("generation (2021 or 2024 rules) is unknown"),
        "{body}"
    );
    hub.shutdown().await;
    let mut cfg = f.cfg.clone();
    cfg.devnet_file = None;
    let err = start(&cfg).await.expect_err("unknown template").to_string();
    assert!(
        err.contains("allowlist pools[0]") && err.contains("not a known dsp template"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_pin_of_the_wrong_generation_stops_the_hub_naming_the_entry() -> anyhow::Result<()> {
    let f = fixture().await?;
    let dsp2021 = f
        .devnet
        .deploy_shares_pool(Template::Dsp2021, &params(&f), false)
        .await?;
    let right = allowlist(
        &f,
        "right.json",
        &[(f.dsp, "dsp", Some("2024")), (dsp2021, "dsp", Some("2021"))],
    )?;
    start(&right).await?.shutdown().await;

    let wrong = allowlist(
        &f,
        "wrong.json",
        &[(f.dsp, "dsp", Some("2024")), (dsp2021, "dsp", Some("2024"))],
    )?;
    let err = start(&wrong).await.expect_err("must refuse").to_string();
    assert!(err.contains("allowlist pools[1]"), "{err}");
    assert!(
        err.contains("generation pinned to 2024, but the pool's template runs the 2021 rules"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMM_CHAIN", "devnet")
        .env(
            "PMM_DEVNET_FILE",
            wrong.devnet_file.as_ref().expect("fixture devnet file"),
        )
        .env("PMM_ALLOWLIST_PATH", &wrong.allowlist_path)
        .env("PMM_PROFILES_PATH", &wrong.profiles_path)
        .env("PMM_AUTH", "none")
        .env("PMM_LISTEN", "127.0.0.1:0")
        .output()?;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pools[1]") && stderr.contains("generation pinned to 2024"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn first_deposits_on_fresh_pools_are_read_and_quoted_to_the_wei() -> anyhow::Result<()> {
    let f = fixture().await?;
    let d = &f.devnet;
    let me = d.deployer();
    let p = params(&f);
    let mut pools = Vec::new();
    for t in [
        Template::Dvm,
        Template::Dsp,
        Template::Gsp,
        Template::Dvm2021,
        Template::Dsp2021,
    ] {
        pools.push((t, d.deploy_shares_pool(t, &p, false).await?));
    }
    let cfg = allowlist(&f, "empty-dsp.json", &[(pools[1].1, "dsp", None)])?;
    let hub = start(&cfg).await?;
    let (base_in, quote_in) = (weth(10), usdc(20_000));
    for (t, pool) in pools {
        let body = call_ok(&hub, AGENT, "dodo.get_pool_state", json!({"pool": s(pool)})).await?;
        let state = &body["result"];
        assert_eq!(state["mid_price_raw"], Value::Null, "{t:?}: {state}");
        assert_eq!(state["mid_price"], Value::Null, "{t:?}: {state}");
        assert_eq!(state["inventory_ratio"], Value::Null, "{t:?}: {state}");
        let why = state["mid_price_undefined"].as_str().unwrap_or_default();
        assert!(
            why.contains("the pool is empty") && why.contains("DIVIDING_ERROR"),
            "{t:?}: {state}"
        );

        let body = call_ok(&hub, AGENT, "dodo.quote_add_liquidity",
            json!({"pool": s(pool), "base_amount": base_in.to_string(), "quote_amount": quote_in.to_string()})).await?;
        let q = body["result"].clone();
        let action = json!({"action": "add_liquidity", "pool": s(pool), "base_amount": base_in.to_string(),
            "quote_amount": quote_in.to_string(), "min_shares": q["shares"], "reason": "first deposit"});
        let body = call_ok(
            &hub,
            AGENT,
            "dodo.simulate_action",
            json!({"action": action}),
        )
        .await?;
        let sim = &body["result"];
        assert_eq!(sim["dry_run"]["matches_math"], true, "{t:?}: {sim}");
        assert_eq!(
            sim["dry_run"]["primary_output"], q["shares"],
            "{t:?}: {sim}"
        );
        assert_eq!(
            sim["predicted"]["total_shares"], q["new_total_supply"],
            "{t:?}: {sim}"
        );
        // Without a mid price the deposit cannot be valued: the policy denies, naming why.
        assert_eq!(sim["verdict"], "deny", "{t:?}: {sim}");
        if t == Template::Dsp {
            assert_eq!(sim["risk"]["notional"], Value::Null, "{sim}");
            assert!(
                sim["risk"].to_string().contains("the pool is empty"),
                "{sim}"
            );
        }

        // The chain's own answer: transfer the amounts, then buyShares by eth_call.
        d.transfer(me, f.base, pool, base_in).await?;
        d.transfer(me, f.quote, pool, quote_in).await?;
        let tx = alloy::rpc::types::TransactionRequest::default()
            .from(me)
            .to(pool)
            .input(IDODOV2Shares::buySharesCall { to: me }.abi_encode().into());
        let out = d.provider().call(tx).await?;
        let r = IDODOV2Shares::buySharesCall::abi_decode_returns(&out)?;
        assert_eq!(amount(&q["shares"]), r.shares, "{t:?}");
        assert_eq!(amount(&q["base_input"]), r.baseInput, "{t:?}");
        assert_eq!(amount(&q["quote_input"]), r.quoteInput, "{t:?}");
        // The 2024 templates lock 1001 shares of a first deposit, the 2021 ones lock none.
        let locked = amount(&q["minted"]) - amount(&q["shares"]);
        let expected_lock = if t.generation().as_str() == "2021" {
            0
        } else {
            1001
        };
        assert_eq!(locked, U256::from(expected_lock), "{t:?}: {q}");
    }
    hub.shutdown().await;
    Ok(())
}

/// `Panic(uint256)`, what a Solidity 0.8 contract (the fixtures) reverts with on overflow.
fn panic_data(code: u8) -> Vec<u8> {
    let mut data = vec![0x4e, 0x48, 0x7b, 0x71];
    data.extend_from_slice(&[0u8; 31]);
    data.push(code);
    data
}

#[tokio::test]
async fn a_deposit_a_twap_pool_would_revert_on_is_denied_from_the_math() -> anyhow::Result<()> {
    let f = fixture().await?;
    let d = &f.devnet;
    let me = d.deployer();
    let e = |n: u64| U256::from(10u64).pow(U256::from(n));
    let base = d.deploy_token("BIG", 18).await?;
    let quote = d.deploy_token("QBIG", 18).await?;
    d.mint(base, me, e(34)).await?;
    d.mint(quote, me, e(34)).await?;
    // One quote per base, k = 0, no fees: 1e33 of each in, then buy base down to 1e7. The mid
    // price is still defined (B0^2 / B * 1e18 = 1e77 fits 256 bits) ...
    let p = PoolParams {
        base,
        quote,
        lp_fee_rate: U256::ZERO,
        mt_fee_rate: U256::ZERO,
        i: e(18),
        k: U256::ZERO,
    };
    let mut pools = Vec::new();
    for twap in [true, false] {
        let pool = d.deploy_shares_pool(Template::Dsp, &p, twap).await?;
        d.buy_shares(me, pool, e(33), e(33)).await?;
        d.sell_quote(me, pool, e(33) - e(7)).await?;
        pools.push(pool);
    }
    // ... and a 20% deposit grows both by 1.2, which overflows it: the TWAP pool prices its
    // new state a second later inside the deposit and reverts.
    let provider = d.provider();
    let _: Value = provider
        .raw_request("evm_increaseTime".into(), [1u64])
        .await?;
    let _: Value = provider.raw_request("evm_mine".into(), ()).await?;
    let (base_in, quote_in) = (U256::from(2_000_000u64), U256::from(4u64) * e(32));
    let hub = start(&f.cfg).await?;
    let mut results = Vec::new();
    for pool in &pools {
        let action = json!({"action": "add_liquidity", "pool": s(*pool), "base_amount": base_in.to_string(),
            "quote_amount": quote_in.to_string(), "min_shares": "0", "reason": "twap"});
        let body = call_ok(
            &hub,
            AGENT,
            "dodo.simulate_action",
            json!({"action": action}),
        )
        .await?;
        let (st, quoted) = call(&hub, Some(AGENT), "dodo.quote_add_liquidity",
            json!({"pool": s(*pool), "base_amount": base_in.to_string(), "quote_amount": quote_in.to_string()})).await?;

        d.transfer(me, base, *pool, base_in).await?;
        d.transfer(me, quote, *pool, quote_in).await?;
        let tx = alloy::rpc::types::TransactionRequest::default()
            .from(me)
            .to(*pool)
            .input(IDODOV2Shares::buySharesCall { to: me }.abi_encode().into());
        results.push((body["result"].clone(), st, quoted, provider.call(tx).await));
    }
    hub.shutdown().await;

    let (sim, st, quote, chain) = &results[0];
    assert_eq!(sim["verdict"], "deny", "{sim}");
    let error = sim["dry_run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("reverts \"MUL_ERROR\""), "{sim}");
    assert_eq!(
        sim["dry_run"]["gas_estimate"],
        Value::Null,
        "the math decided alone: {sim}"
    );
    assert_eq!(*st, 400, "{quote}");
    assert_eq!(quote["error"]["code"], "would_revert", "{quote}");
    // The chain agrees: SafeMath's "MUL_ERROR" is the fixtures' Solidity 0.8 Panic(0x11).
    let revert = chain
        .as_ref()
        .expect_err("the TWAP pool's deposit reverts")
        .as_error_resp()
        .and_then(|e| e.as_revert_data())
        .expect("revert data");
    assert_eq!(
        pmm_core::math::MathError::MulOverflow.solidity_panic_code(),
        Some(0x11)
    );
    assert_eq!(revert.to_vec(), panic_data(0x11));

    // The same deposit on the same state without TWAP mints, as quoted.
    let (sim, st, quote, chain) = &results[1];
    assert_eq!(*st, 200, "{quote}");
    assert_eq!(sim["dry_run"]["error"], Value::Null, "{sim}");
    let out = chain.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = IDODOV2Shares::buySharesCall::abi_decode_returns(out)?;
    assert_eq!(amount(&quote["result"]["shares"]), r.shares);
    Ok(())
}
