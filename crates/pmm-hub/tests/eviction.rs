//! A Redis that may evict keys is a Redis whose missing key may be a lost breaker or cap: the
//! hub refuses writes under the state reason until `maxmemory-policy` is `noeviction` again,
//! `pmm-state bootstrap` (here its library call) sets it, and `pmm-hub doctor` names it.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/own_redis.rs"]
mod own_redis;

use alloy::primitives::Address;
use common::*;
use own_redis::OwnRedis;
use pmm_store::RedisStore;
use serde_json::{Value, json};

fn s(a: Address) -> String {
    a.to_string()
}

async fn breaker_check(hub: &pmm_hub::RunningHub, pool: Address) -> anyhow::Result<Value> {
    let add = json!({"action": "add_liquidity", "pool": s(pool),
                     "base_amount": "1000000000000000000", "quote_amount": "2000000000",
                     "min_shares": "1", "reason": "t"});
    let body = call_ok(
        hub,
        AGENT,
        "dodo.risk_check",
        json!({"pool": s(pool), "action": add}),
    )
    .await?;
    let r = body["result"].clone();
    let rule = r["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["rule"] == "circuit_breaker").cloned())
        .unwrap_or_else(|| panic!("no circuit_breaker rule: {r}"));
    Ok(json!({"verdict": r["verdict"], "rule": rule}))
}

#[tokio::test]
async fn an_evicting_redis_denies_writes_until_bootstrap_sets_noeviction() -> anyhow::Result<()> {
    let f = fixture().await?;
    let own = OwnRedis::start()?;
    let mut cfg = f.cfg.clone();
    cfg.redis_url = Some(own.url());
    cfg.redis_namespace = String::new();
    bootstrap(f.db.url(), &own.url(), "").await?;
    let hub = start(&cfg).await?;

    let before = breaker_check(&hub, f.dsp).await?;
    assert_eq!(before["rule"]["outcome"], "pass", "{before}");

    // Under memory pressure this server would now drop any key, a breaker's included.
    own.config_set("maxmemory-policy", "allkeys-lru")?;
    let r = breaker_check(&hub, f.dsp).await?;
    assert_eq!(r["verdict"], "deny", "{r}");
    assert_eq!(r["rule"]["outcome"], "deny", "{r}");
    let detail = r["rule"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("policy state unavailable: maxmemory-policy is allkeys-lru"),
        "{r}"
    );
    // Reads go on.
    call_ok(
        &hub,
        AGENT,
        "dodo.get_pool_state",
        json!({"pool": s(f.dsp)}),
    )
    .await?;

    // The doctor names it.
    let path = f.dir.join("doctor.json");
    std::fs::write(&path, serde_json::to_string(&cfg)?)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
        .arg("--config")
        .arg(&path)
        .arg("doctor")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("FAIL")
            && l.contains("redis_eviction")
            && l.contains("allkeys-lru")),
        "{text}"
    );

    // Bootstrap sets noeviction back, and writes are judged on the state again.
    bootstrap(f.db.url(), &own.url(), "").await?;
    let info = RedisStore::connect(&own.url(), "")?.server_info().await?;
    assert_eq!(info.maxmemory_policy.as_deref(), Some("noeviction"));
    let after = breaker_check(&hub, f.dsp).await?;
    assert_eq!(after["rule"]["outcome"], "pass", "{after}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
        .arg("--config")
        .arg(&path)
        .arg("doctor")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS") && l.contains("redis_eviction")),
        "{text}"
    );
    hub.shutdown().await;
    Ok(())
}
