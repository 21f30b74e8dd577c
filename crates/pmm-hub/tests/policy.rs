//! The policy as the write tools will trust it, end to end on anvil, Postgres and Redis: lost
//! Redis state, breakers and the global pause, the pool monitor, pool identity, independent
//! prices, broken feeds, balances and donations.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/own_redis.rs"]
mod own_redis;

use std::process::Command;
use std::time::Duration;

use alloy::primitives::{Address, I256, U256};
use alloy::providers::Provider;
use common::*;
use own_redis::OwnRedis;
use pmm_core::keys::{daily_cap_scope, utc_day};
use pmm_core::schema::ChainName;
use pmm_store::{NotionalReservation, PgStore, PolicyEventKind, RedisStore, ReserveOutcome};
use pmm_testkit::contracts::ChainlinkFeed;
use serde_json::{Value, json};

fn s(a: Address) -> String {
    a.to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn amount(v: &Value) -> U256 {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// Writes an allowlist of `pools` (address, pool_type, feed, limits) and points `cfg` at it.
fn with_allowlist(
    f: &Fixture,
    name: &str,
    pools: &[(Address, &str, Option<Address>, Value)],
) -> anyhow::Result<pmm_hub::HubConfig> {
    let entries: Vec<Value> = pools
        .iter()
        .map(|(pool, kind, feed, limits)| {
            let oracle = match (feed, *kind) {
                (Some(feed), _) => json!({"kind": "chainlink", "address": s(*feed)}),
                (None, "v1") => json!({"kind": "v1"}),
                (None, _) => json!({"kind": "dpp_oracle"}),
            };
            json!({"address": s(*pool), "base_token": s(f.base), "quote_token": s(f.quote),
                   "profile": kind, "pool_type": kind, "oracle": oracle, "limits": limits})
        })
        .collect();
    let path = f.dir.join(name);
    std::fs::write(
        &path,
        serde_json::to_string(&json!({"chain": "devnet", "chain_id": 31337, "pools": entries}))?,
    )?;
    let mut cfg = f.cfg.clone();
    cfg.allowlist_path = path;
    Ok(cfg)
}

/// The fixture limits with any oracle deviation accepted: the shared feed prices the DSP, and
/// the DVM's mid price sits elsewhere.
fn wide_oracle() -> Value {
    let mut l = limits();
    l["oracle_deviation_bps"] = json!(10_000);
    l
}

async fn risk(hub: &pmm_hub::RunningHub, pool: Address, action: Value) -> anyhow::Result<Value> {
    let body = call_ok(
        hub,
        AGENT,
        "dodo.risk_check",
        json!({"pool": s(pool), "action": action}),
    )
    .await?;
    Ok(body["result"].clone())
}

fn rule<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["rule"] == name))
        .unwrap_or_else(|| panic!("no rule {name}: {report}"))
}

/// 1 WETH + 2,000 USDC into the DSP with `min_shares` 1: within every limit but slippage.
fn small_add(pool: Address, min_shares: U256) -> Value {
    json!({"action": "add_liquidity", "pool": s(pool), "base_amount": "1000000000000000000",
           "quote_amount": "2000000000", "min_shares": min_shares.to_string(), "reason": "t"})
}

async fn shares_for(
    hub: &pmm_hub::RunningHub,
    pool: Address,
    base: &str,
    quote: &str,
) -> anyhow::Result<Value> {
    let body = call_ok(
        hub,
        AGENT,
        "dodo.quote_add_liquidity",
        json!({"pool": s(pool), "base_amount": base, "quote_amount": quote}),
    )
    .await?;
    Ok(body["result"].clone())
}

async fn events(
    pg: &PgStore,
    pool: Option<Address>,
    kind: PolicyEventKind,
) -> anyhow::Result<Vec<pmm_store::PolicyEvent>> {
    let text = pool.map_or_else(|| "*".to_owned(), pmm_store::pool_text);
    Ok(pg
        .recent_policy_events(31337, &text, 100)
        .await?
        .into_iter()
        .filter(|e| e.kind == kind && (pool.is_some() || e.pool.is_none()))
        .collect())
}

#[tokio::test]
async fn lost_redis_state_denies_writes_until_bootstrap_restores_trips_and_usage()
-> anyhow::Result<()> {
    let f = fixture().await?;
    let mut own = OwnRedis::start()?;
    let mut cfg = f.cfg.clone();
    cfg.redis_url = Some(own.url());
    cfg.redis_namespace = String::new();
    bootstrap(f.db.url(), &own.url(), "").await?;
    let hub = start(&cfg).await?;
    let redis = RedisStore::connect(&own.url(), "")?;
    let pg = PgStore::connect(f.db.url(), 1)?;
    let chain = ChainName::new("devnet")?;

    // Today's usage, reserved the way a write does: the ledger row, then the Redis counter.
    let used = U256::from(123_456_789u64);
    let scope = daily_cap_scope(&chain, f.dsp);
    let reserved = pg
        .reserve_notional(&NotionalReservation {
            id: uuid::Uuid::new_v4(),
            scope: scope.clone(),
            at: chrono::Utc::now(),
            amount: used,
            cap: U256::from(10u64.pow(12)),
        })
        .await?;
    assert!(matches!(reserved, ReserveOutcome::Reserved(_)));
    redis
        .reserve_daily_cap(&scope, utc_day(now()), used, U256::from(10u64.pow(12)))
        .await?;
    // A pool tripped before the loss.
    call_ok(
        &hub,
        OPERATOR,
        "dodo.pause_pool",
        json!({"pool": s(f.dsp), "reason": "before the flush"}),
    )
    .await?;
    let tripped = redis.breaker(&chain, f.dsp).await?.expect("tripped");

    for lose in ["FLUSHALL", "restart without persistence"] {
        if lose == "FLUSHALL" {
            own.flushall()?;
        } else {
            own.restart()?;
        }
        assert_eq!(
            redis.breaker(&chain, f.dsp).await?,
            None,
            "{lose}: the key is gone"
        );
        let r = risk(&hub, f.dsp, small_add(f.dsp, U256::from(1))).await?;
        assert_eq!(r["verdict"], "deny", "{lose}: {r}");
        let breaker = rule(&r, "circuit_breaker");
        assert_eq!(breaker["outcome"], "deny", "{lose}: {r}");
        assert!(
            breaker["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("policy state unavailable"),
            "{lose}: {r}"
        );
        // Reads go on.
        call_ok(
            &hub,
            AGENT,
            "dodo.get_pool_state",
            json!({"pool": s(f.dsp)}),
        )
        .await?;

        bootstrap(f.db.url(), &own.url(), "").await?;
        assert_eq!(
            redis.breaker(&chain, f.dsp).await?,
            Some(tripped.clone()),
            "{lose}: the trip is back with its first reason and time"
        );
        assert_eq!(
            redis.daily_cap_used(&scope, utc_day(now())).await?,
            used,
            "{lose}: today's usage equals its value before the loss"
        );
        let r = risk(&hub, f.dsp, small_add(f.dsp, U256::from(1))).await?;
        assert_eq!(
            r["decided_by"], "circuit_breaker",
            "{lose}: state is back, with the trip: {r}"
        );
        assert!(
            rule(&r, "circuit_breaker")["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("before the flush"),
            "{lose}: {r}"
        );
    }
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn trips_keep_the_first_reason_resume_names_the_operator_and_star_pauses_every_pool()
-> anyhow::Result<()> {
    let f = fixture().await?;
    let cfg = with_allowlist(
        &f,
        "two-pools.json",
        &[
            (f.dsp, "dsp", Some(f.feed), limits()),
            (f.dvm, "dvm", Some(f.feed), wide_oracle()),
        ],
    )?;
    let hub = start(&cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    let pg = PgStore::connect(f.db.url(), 1)?;
    let chain = ChainName::new("devnet")?;
    let feed = ChainlinkFeed::new(f.feed, f.devnet.provider());

    // First automatic trip: a stale feed.
    feed.setUpdatedAt(U256::from(now() - 100_000))
        .send()
        .await?
        .get_receipt()
        .await?;
    let first = poll(Duration::from_secs(20), || async {
        Ok(redis.breaker(&chain, f.dsp).await?)
    })
    .await?;
    assert!(first.reason.contains("stale"), "{first:?}");
    // Second cause: a fresh feed 25% off the mid price. The first reason stays.
    feed.setUpdatedAt(U256::from(now()))
        .send()
        .await?
        .get_receipt()
        .await?;
    feed.setAnswer(I256::try_from(250_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    let provider = f.devnet.provider();
    for _ in 0..3 {
        provider
            .raw_request::<_, Value>("evm_mine".into(), ())
            .await?;
    }
    let after = provider.get_block_number().await?;
    let swept = || async {
        let h: Value = reqwest::get(format!("http://{}/health", hub.addr))
            .await?
            .json()
            .await?;
        Ok(h["monitor_block"].as_u64().filter(|b| *b >= after))
    };
    poll(Duration::from_secs(20), swept).await?;
    assert_eq!(redis.breaker(&chain, f.dsp).await?, Some(first.clone()));
    assert_eq!(
        events(&pg, Some(f.dsp), PolicyEventKind::BreakerTrip)
            .await?
            .len(),
        1,
        "one row for the one trip"
    );

    // Resume records the operator (the feed agrees again first).
    feed.setAnswer(I256::try_from(200_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    let r = call_ok(
        &hub,
        OPERATOR,
        "dodo.resume_pool",
        json!({"pool": s(f.dsp)}),
    )
    .await?;
    assert_eq!(r["result"]["changed"], true, "{r}");
    let resumes = events(&pg, Some(f.dsp), PolicyEventKind::Resume).await?;
    assert_eq!(resumes.len(), 1);
    assert!(resumes[0].actor.starts_with("operator"), "{:?}", resumes[0]);

    // A global pause: one row, every pool denied.
    call_ok(
        &hub,
        OPERATOR,
        "dodo.pause_pool",
        json!({"pool": "*", "reason": "incident 42"}),
    )
    .await?;
    let paused = events(&pg, None, PolicyEventKind::Pause).await?;
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0].pool, None);
    for pool in [f.dsp, f.dvm] {
        let r = risk(&hub, pool, small_add(pool, U256::from(1))).await?;
        assert_eq!(r["verdict"], "deny", "{r}");
        let cb = rule(&r, "circuit_breaker");
        assert_eq!(cb["outcome"], "deny", "{r}");
        assert!(
            cb["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("global pause: incident 42"),
            "{r}"
        );
    }
    call_ok(&hub, OPERATOR, "dodo.resume_pool", json!({"pool": "*"})).await?;
    let r = risk(&hub, f.dsp, small_add(f.dsp, U256::from(1))).await?;
    assert_eq!(rule(&r, "circuit_breaker")["outcome"], "pass", "{r}");
    hub.shutdown().await;
    Ok(())
}

/// Mines one block at a time (at most `blocks`), waiting for the monitor to sweep each, until
/// `tripped` holds; returns how many blocks past `from` that took.
async fn blocks_until<F, Fut>(
    f: &Fixture,
    hub: &pmm_hub::RunningHub,
    from: u64,
    blocks: u64,
    mut tripped: F,
) -> anyhow::Result<Option<u64>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let provider = f.devnet.provider();
    for n in 0..=blocks {
        let target = from + n;
        while provider.get_block_number().await? < target {
            provider
                .raw_request::<_, Value>("evm_mine".into(), ())
                .await?;
        }
        poll(Duration::from_secs(20), || async {
            let h: Value = reqwest::get(format!("http://{}/health", hub.addr))
                .await?
                .json()
                .await?;
            Ok(h["monitor_block"].as_u64().filter(|b| *b >= target))
        })
        .await?;
        if tripped().await? {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

#[tokio::test]
async fn the_monitor_trips_a_stale_feed_and_a_drained_reserve_within_two_blocks()
-> anyhow::Result<()> {
    let f = fixture().await?;
    let dvm_feed = f
        .devnet
        .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
        .await?;
    let mut dvm_limits = limits();
    dvm_limits["min_base_reserve"] = json!("9000000000000000000");
    dvm_limits["oracle_deviation_bps"] = json!(10_000);
    let cfg = with_allowlist(
        &f,
        "monitor.json",
        &[
            (f.dsp, "dsp", Some(f.feed), limits()),
            (f.dvm, "dvm", Some(dvm_feed), dvm_limits),
        ],
    )?;
    let hub = start(&cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    let pg = PgStore::connect(f.db.url(), 1)?;
    let chain = ChainName::new("devnet")?;
    let provider = f.devnet.provider();

    // No tool call from here on.
    ChainlinkFeed::new(f.feed, provider)
        .setUpdatedAt(U256::from(now() - 100_000))
        .send()
        .await?
        .get_receipt()
        .await?;
    let at = provider.get_block_number().await?;
    let took = blocks_until(&f, &hub, at, 2, || async {
        Ok(redis.breaker(&chain, f.dsp).await?.is_some())
    })
    .await?;
    println!("stale feed tripped {took:?} blocks after it went stale");
    assert!(took.is_some(), "not tripped within 2 blocks");
    assert_eq!(
        redis.breaker(&chain, f.dvm).await?,
        None,
        "the DVM has its own fresh feed"
    );

    // Buy 1.5 WETH out of the DVM: its base reserve falls below 9 WETH.
    f.devnet
        .sell_quote(f.devnet.deployer(), f.dvm, U256::from(3_500_000_000u64))
        .await?;
    let at = provider.get_block_number().await?;
    let took = blocks_until(&f, &hub, at, 2, || async {
        Ok(redis.breaker(&chain, f.dvm).await?.is_some())
    })
    .await?;
    println!("illiquid pool tripped {took:?} blocks after its reserve fell");
    assert!(took.is_some(), "not tripped within 2 blocks");
    let b = redis.breaker(&chain, f.dvm).await?.expect("tripped");
    assert!(b.reason.starts_with("pool illiquid: base reserve"), "{b:?}");

    // More blocks: still one row each.
    blocks_until(
        &f,
        &hub,
        provider.get_block_number().await? + 1,
        2,
        || async { Ok(false) },
    )
    .await?;
    for pool in [f.dsp, f.dvm] {
        let rows = events(&pg, Some(pool), PolicyEventKind::BreakerTrip).await?;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].actor, "pool-monitor");
        assert!(rows[0].block.is_some());
    }
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_allowlist_calling_a_dvm_a_dsp_stops_the_hub_naming_the_entry() -> anyhow::Result<()> {
    let f = fixture().await?;
    let cfg = with_allowlist(
        &f,
        "lying.json",
        &[
            (f.dsp, "dsp", Some(f.feed), limits()),
            (f.dvm, "dsp", Some(f.feed), limits()),
        ],
    )?;
    let err = start(&cfg).await.expect_err("must refuse").to_string();
    assert!(err.contains("allowlist pools[1]"), "{err}");
    assert!(err.contains("is a dvm"), "{err}");

    // The binary exits non-zero with the same words.
    let out = Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMM_CHAIN", "devnet")
        .env("PMM_RPC_URL", f.devnet.rpc_url())
        .env(
            "PMM_DEVNET_FILE",
            cfg.devnet_file.as_ref().expect("fixture devnet file"),
        )
        .env("PMM_ALLOWLIST_PATH", &cfg.allowlist_path)
        .env("PMM_PROFILES_PATH", &cfg.profiles_path)
        .env("PMM_AUTH", "none")
        .env("PMM_LISTEN", "127.0.0.1:0")
        .output()?;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pools[1]"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn own_oracle_pools_need_an_independent_feed_and_are_held_to_it() -> anyhow::Result<()> {
    let f = fixture().await?;
    let own = f
        .devnet
        .deploy_price_oracle(U256::from(2_000_000_000u64))
        .await?;
    let p = pmm_testkit::devnet::PoolParams {
        base: f.base,
        quote: f.quote,
        lp_fee_rate: U256::from(10u64.pow(15)),
        mt_fee_rate: U256::ZERO,
        i: U256::from(2_000_000_000u64),
        k: U256::from(10u64.pow(17)),
    };
    let dppo = f.devnet.deploy_dpp_oracle(p, own).await?;
    f.devnet
        .dpp_deposit(
            dppo,
            U256::from(10u64.pow(19)),
            U256::from(20_000_000_000u64),
        )
        .await?;
    let v1 = f
        .devnet
        .deploy_v1(f.base, f.quote, own, U256::from(10u64.pow(17)))
        .await?;
    let me = f.devnet.deployer();
    let (base_in, quote_in) = (U256::from(10u64.pow(19)), U256::from(20_000_000_000u64));
    f.devnet.approve(me, f.base, v1, base_in).await?;
    f.devnet.approve(me, f.quote, v1, quote_in).await?;
    let pool = pmm_testkit::contracts::V1Pool::new(v1, f.devnet.provider());
    pool.depositBase(base_in)
        .from(me)
        .send()
        .await?
        .get_receipt()
        .await?;
    pool.depositQuote(quote_in)
        .from(me)
        .send()
        .await?
        .get_receipt()
        .await?;
    let hold = json!({"action": "add_liquidity", "pool": "", "base_amount": "1",
                      "quote_amount": "1", "min_shares": "0", "reason": "t"});
    let add = |pool: Address| {
        let mut a = hold.clone();
        a["pool"] = json!(s(pool));
        a
    };

    let cfg = with_allowlist(
        &f,
        "own-oracles.json",
        &[
            (dppo, "dpp_oracle", None, limits()),
            (v1, "v1", None, limits()),
        ],
    )?;
    let hub = start(&cfg).await?;
    for pool in [dppo, v1] {
        let r = risk(&hub, pool, add(pool)).await?;
        assert_eq!(r["verdict"], "deny", "{r}");
        assert_eq!(r["decided_by"], "oracle_deviation", "{r}");
        let o = rule(&r, "oracle_deviation");
        assert_eq!(o["outcome"], "deny", "{r}");
        assert!(
            o["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("no independent reference price"),
            "{r}"
        );
    }
    hub.shutdown().await;

    // With a feed the pools are evaluated against it, and a feed past the limit denies.
    let feed = f
        .devnet
        .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
        .await?;
    let cfg = with_allowlist(
        &f,
        "own-oracles-fed.json",
        &[
            (dppo, "dpp_oracle", Some(feed), limits()),
            (v1, "v1", Some(feed), limits()),
        ],
    )?;
    let hub = start(&cfg).await?;
    for pool in [dppo, v1] {
        let r = risk(&hub, pool, add(pool)).await?;
        assert_eq!(rule(&r, "oracle_deviation")["outcome"], "pass", "{r}");
    }
    ChainlinkFeed::new(feed, f.devnet.provider())
        .setAnswer(I256::try_from(250_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    for pool in [dppo, v1] {
        let r = risk(&hub, pool, add(pool)).await?;
        assert_eq!(r["decided_by"], "oracle_deviation", "{r}");
        let o = rule(&r, "oracle_deviation");
        assert_eq!(o["outcome"], "deny", "{r}");
        assert!(
            o["detail"].as_str().unwrap_or_default().contains("bps"),
            "{r}"
        );
    }
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_zero_or_negative_feed_is_broken_reads_answer_and_writes_wait_for_a_resume()
-> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let redis = RedisStore::connect(f.redis.url(), f.redis.namespace())?;
    let pg = PgStore::connect(f.db.url(), 1)?;
    let chain = ChainName::new("devnet")?;
    let feed = ChainlinkFeed::new(f.feed, f.devnet.provider());
    for answer in [0_i64, -1] {
        feed.setAnswer(I256::try_from(answer)?)
            .send()
            .await?
            .get_receipt()
            .await?;
        let body = call_ok(
            &hub,
            AGENT,
            "dodo.get_pool_state",
            json!({"pool": s(f.dsp)}),
        )
        .await?;
        let st = &body["result"];
        assert_eq!(st["oracle_price"], Value::Null, "{st}");
        assert!(
            st["oracle_unusable"]
                .as_str()
                .unwrap_or_default()
                .contains("not positive"),
            "{st}"
        );
        let b = poll(Duration::from_secs(20), || async {
            Ok(redis.breaker(&chain, f.dsp).await?)
        })
        .await?;
        assert!(b.reason.starts_with("oracle feed unusable"), "{b:?}");
    }
    assert_eq!(
        events(&pg, Some(f.dsp), PolicyEventKind::BreakerTrip)
            .await?
            .len(),
        1,
        "0 then -1 is one trip"
    );
    // Recovered: the breaker still denies until an operator resumes.
    feed.setAnswer(I256::try_from(200_000_000_000_i64)?)
        .send()
        .await?
        .get_receipt()
        .await?;
    let shares =
        amount(&shares_for(&hub, f.dsp, "1000000000000000000", "2000000000").await?["shares"]);
    let r = risk(&hub, f.dsp, small_add(f.dsp, shares)).await?;
    assert_eq!(r["decided_by"], "circuit_breaker", "{r}");
    assert_eq!(rule(&r, "oracle_deviation")["outcome"], "pass", "{r}");
    call_ok(
        &hub,
        OPERATOR,
        "dodo.resume_pool",
        json!({"pool": s(f.dsp)}),
    )
    .await?;
    let r = risk(&hub, f.dsp, small_add(f.dsp, shares)).await?;
    assert_eq!(r["verdict"], "allow", "{r}");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn balances_bound_burns_and_deposits_and_donations_are_refused() -> anyhow::Result<()> {
    let f = fixture().await?;
    let mut loose = limits();
    loose["max_slippage_bps"] = json!(10_000);
    let mut cfg = with_allowlist(&f, "loose.json", &[(f.dsp, "dsp", Some(f.feed), loose)])?;
    let hub = start(&cfg).await?;

    // More shares than the executor holds.
    let held = f.devnet.balance_of(f.dsp, f.devnet.deployer()).await?;
    let remove = json!({"action": "remove_liquidity", "pool": s(f.dsp),
                        "shares": (held + U256::from(1)).to_string(), "min_base": "0",
                        "min_quote": "0", "reason": "t"});
    let r = risk(&hub, f.dsp, remove.clone()).await?;
    assert_eq!(r["decided_by"], "balance", "{r}");
    let mut ok = remove.clone();
    ok["shares"] = json!(U256::from(10u64.pow(18)).to_string());
    assert_eq!(risk(&hub, f.dsp, ok).await?["verdict"], "allow");

    // Ten times the balanced quote is denied by max_donation; the balanced deposit passes.
    let q = shares_for(&hub, f.dsp, "1000000000000000000", "20000000000").await?;
    assert_eq!(q["balanced_quote_amount"], "2000000000", "{q}");
    let lopsided = json!({"action": "add_liquidity", "pool": s(f.dsp),
                          "base_amount": "1000000000000000000", "quote_amount": "20000000000",
                          "min_shares": q["shares"], "reason": "t"});
    let r = risk(&hub, f.dsp, lopsided).await?;
    assert_eq!(r["decided_by"], "max_donation", "{r}");
    let b = shares_for(
        &hub,
        f.dsp,
        q["balanced_base_amount"].as_str().unwrap_or_default(),
        q["balanced_quote_amount"].as_str().unwrap_or_default(),
    )
    .await?;
    let balanced = json!({"action": "add_liquidity", "pool": s(f.dsp),
                          "base_amount": q["balanced_base_amount"],
                          "quote_amount": q["balanced_quote_amount"],
                          "min_shares": b["shares"], "reason": "t"});
    let r = risk(&hub, f.dsp, balanced.clone()).await?;
    assert_eq!(rule(&r, "max_donation")["outcome"], "pass", "{r}");
    assert_eq!(r["verdict"], "allow", "{r}");
    hub.shutdown().await;

    // No executor configured: every write-shaped check denies under balance.
    cfg.executor = None;
    let hub = start(&cfg).await?;
    let r = risk(&hub, f.dsp, balanced).await?;
    assert_eq!(r["decided_by"], "balance", "{r}");
    hub.shutdown().await;
    Ok(())
}
