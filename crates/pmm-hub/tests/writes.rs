//! Write tools on anvil + Postgres + Redis: gates, exact outcomes, reverts, replacement,
//! restarts after SIGKILL, and secrets that never leave the signer.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/write_fixture.rs"]
mod write_fixture;

use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use common::{AGENT, call, call_ok, poll, start};
use pmm_hub::HubConfig;
use pmm_store::PgStore;
use serde_json::{Value, json};
use write_fixture::*;

#[tokio::test]
async fn closed_gates_refuse_without_building_anything() -> anyhow::Result<()> {
    for (allow, armed) in [(false, false), (true, false), (false, true)] {
        let w = writes(allow, armed).await?;
        let before = nonce(&w).await?;
        let hub = start(&w.fx.cfg).await?;
        let (status, body) = call(
            &hub,
            Some(AGENT),
            "dodo.add_liquidity",
            add_params(w.fx.dsp, "k1"),
        )
        .await?;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "gate_closed", "{body}");
        let (status, _) = call(
            &hub,
            Some(AGENT),
            "dodo.remove_liquidity",
            json!({"pool": w.fx.dsp.to_string(), "shares": "1000", "min_base": "0", "min_quote": "0"}),
        )
        .await?;
        assert_eq!(status, 403);
        let health: Value = reqwest::get(format!("http://{}/health", hub.addr))
            .await?
            .json()
            .await?;
        assert_eq!(health["writes"]["allow_write"], allow);
        assert_eq!(health["writes"]["execution_armed"], armed);
        hub.shutdown().await;
        assert_eq!(nonce(&w).await?, before, "no transaction left");
        let rows = tool_calls(&w).await?;
        let gated: Vec<_> = rows
            .iter()
            .filter(|r| r.verdict.as_deref() == Some("gate_closed"))
            .collect();
        assert_eq!(gated.len(), 2, "{rows:?}");
        let pg = PgStore::connect(w.fx.db.url(), 1)?;
        assert!(
            pg.intent_by_key("k1").await?.is_none(),
            "no intent recorded"
        );
    }
    Ok(())
}

#[tokio::test]
async fn add_moves_reserves_and_shares_as_quoted_and_remove_meets_its_minimums()
-> anyhow::Result<()> {
    let w = writes(true, true).await?;
    let hub = start(&w.fx.cfg).await?;
    let p = add_params(w.fx.dsp, "add-1");
    let quote = call_ok(
        &hub,
        AGENT,
        "dodo.quote_add_liquidity",
        json!({"pool": p["pool"], "base_amount": p["base_amount"], "quote_amount": p["quote_amount"]}),
    )
    .await?;
    let (b0, q0) = reserves(&w).await?;
    let lp0 = lp(&w, w.fx.dsp).await?;
    let n0 = nonce(&w).await?;
    let r = call_ok(&hub, AGENT, "dodo.add_liquidity", p.clone()).await?["result"].clone();
    assert_eq!(r["status"], "confirmed", "{r}");
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for n in [
        "build", "dry_run", "policy", "reserve", "intent", "send", "receipt", "settle", "outcome",
    ] {
        assert!(names.contains(&n), "step {n} missing: {names:?}");
    }
    let (b1, q1) = reserves(&w).await?;
    let lp1 = lp(&w, w.fx.dsp).await?;
    assert_eq!(
        b1 - b0,
        amount(&quote["result"]["base_input"]),
        "base reserve moved as quoted"
    );
    assert_eq!(
        q1 - q0,
        amount(&quote["result"]["quote_input"]),
        "quote reserve moved as quoted"
    );
    assert_eq!(
        lp1 - lp0,
        amount(&quote["result"]["shares"]),
        "LP shares moved as quoted"
    );
    // Two exact approvals and the deposit: three nonces, none skipped.
    assert_eq!(nonce(&w).await?, n0 + 3);
    // The same key returns the first result and sends nothing.
    let again = call_ok(&hub, AGENT, "dodo.add_liquidity", p).await?["result"].clone();
    assert_eq!(again["tx_hash"], r["tx_hash"]);
    assert_eq!(again["replayed"], true);
    assert_eq!(nonce(&w).await?, n0 + 3);

    // Remove the shares just minted with minimums 1% under the exact outputs.
    let shares = lp1 - lp0;
    let sim = call_ok(
        &hub,
        AGENT,
        "dodo.simulate_action",
        json!({"action": {"action": "remove_liquidity", "pool": w.fx.dsp.to_string(), "shares": shares.to_string(), "min_base": "0", "min_quote": "0", "reason": "t"}}),
    )
    .await?;
    let exp_b = amount(&sim["result"]["dry_run"]["primary_output"]);
    let exp_q = amount(&sim["result"]["dry_run"]["secondary_output"]);
    let (min_b, min_q) = (
        exp_b * U256::from(99) / U256::from(100),
        exp_q * U256::from(99) / U256::from(100),
    );
    let wb0 = w.fx.devnet.balance_of(w.fx.base, w.signer).await?;
    let wq0 = w.fx.devnet.balance_of(w.fx.quote, w.signer).await?;
    let r = call_ok(
        &hub,
        AGENT,
        "dodo.remove_liquidity",
        json!({"pool": w.fx.dsp.to_string(), "shares": shares.to_string(), "min_base": min_b.to_string(), "min_quote": min_q.to_string(), "idempotency_key": "rm-1"}),
    )
    .await?["result"]
        .clone();
    assert_eq!(r["status"], "confirmed", "{r}");
    let got_b = w.fx.devnet.balance_of(w.fx.base, w.signer).await? - wb0;
    let got_q = w.fx.devnet.balance_of(w.fx.quote, w.signer).await? - wq0;
    assert!(
        got_b >= min_b && got_q >= min_q,
        "{got_b} >= {min_b}, {got_q} >= {min_q}"
    );
    assert_eq!(
        (got_b, got_q),
        (exp_b, exp_q),
        "exactly the dry run's outputs"
    );
    // More shares than held: refused before anything is built.
    let (status, body) = call(
        &hub,
        Some(AGENT),
        "dodo.remove_liquidity",
        json!({"pool": w.fx.dsp.to_string(), "shares": (lp(&w, w.fx.dsp).await? + U256::from(1)).to_string(), "min_base": "0", "min_quote": "0"}),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_revert_at_inclusion_refunds_and_records_its_reason() -> anyhow::Result<()> {
    let w = writes(true, true).await?;
    let hub = start(&w.fx.cfg).await?;
    let redis = pmm_store::RedisStore::connect(w.fx.redis.url(), w.fx.redis.namespace())?;
    let chain = pmm_core::schema::ChainName::new("devnet")?;
    let scope = pmm_core::keys::daily_cap_scope(&chain, w.fx.dsp);
    let day = pmm_core::keys::utc_day(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    let used0 = redis.daily_cap_used(&scope, day).await?;
    let ts = w.fx.devnet.block_timestamp().await?;
    anvil(&w, "evm_setAutomine", json!([false])).await?;
    let mut p = add_params(w.fx.dsp, "revert-1");
    p["deadline"] = json!(ts + 30);
    let n0 = nonce(&w).await?;
    let url = format!("http://{}/mcp/call", hub.addr);
    let task = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(AGENT)
            .json(&json!({"tool": "dodo.add_liquidity", "params": p}))
            .send()
            .await?
            .json::<Value>()
            .await
    });
    poll(Duration::from_secs(15), || async {
        Ok((nonce(&w).await? == n0 + 3).then_some(()))
    })
    .await?;
    assert!(
        redis.daily_cap_used(&scope, day).await? > used0,
        "reserved while in flight"
    );
    anvil(&w, "evm_setNextBlockTimestamp", json!([ts + 100])).await?;
    anvil(&w, "evm_mine", json!([])).await?;
    let body = task.await??;
    let r = &body["result"];
    assert_eq!(r["status"], "reverted", "{body}");
    assert!(
        r["revert_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("EXPIRED"),
        "{body}"
    );
    assert_eq!(
        redis.daily_cap_used(&scope, day).await?,
        used0,
        "reservation refunded"
    );
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    let it = pg.intent_by_key("revert-1").await?.expect("intent");
    assert_eq!(it.status, pmm_store::TxStatus::Failed);
    let ledger_refund = pg.refund_notional(it.reservation_id.unwrap()).await;
    assert!(
        matches!(ledger_refund, Err(pmm_store::StoreError::ReservationSettled { ref settlement, .. }) if settlement == "refund"),
        "{ledger_refund:?}"
    );
    anvil(&w, "evm_setAutomine", json!([true])).await?;
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_higher_fees_and_mined_once() -> anyhow::Result<()> {
    let mut w = writes(true, true).await?;
    w.fx.cfg.replace_after_s = 1;
    let hub = start(&w.fx.cfg).await?;
    anvil(&w, "evm_setAutomine", json!([false])).await?;
    let n0 = nonce(&w).await?;
    let url = format!("http://{}/mcp/call", hub.addr);
    let p = add_params(w.fx.dsp, "stuck-1");
    let task = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(AGENT)
            .json(&json!({"tool": "dodo.add_liquidity", "params": p}))
            .send()
            .await?
            .json::<Value>()
            .await
    });
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    let attempts = poll(Duration::from_secs(20), || async {
        let Some(it) = pg.intent_by_key("stuck-1").await? else {
            return Ok(None);
        };
        let a = pg.attempts(it.id).await?;
        Ok((a.len() >= 2).then_some(a))
    })
    .await?;
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first.nonce, second.nonce, "a replacement keeps the nonce");
    assert!(second.max_fee_per_gas * 8 >= first.max_fee_per_gas * 9);
    assert!(second.max_priority_fee_per_gas * 8 >= first.max_priority_fee_per_gas * 9);
    anvil(&w, "evm_setAutomine", json!([true])).await?;
    anvil(&w, "evm_mine", json!([])).await?;
    let body = task.await??;
    assert_eq!(body["result"]["status"], "confirmed", "{body}");
    let all = pg
        .attempts(pg.intent_by_key("stuck-1").await?.unwrap().id)
        .await?;
    let mined: Vec<_> = {
        let mut m = Vec::new();
        for a in &all {
            if w.fx
                .devnet
                .provider()
                .get_transaction_receipt(a.tx_hash.parse()?)
                .await?
                .is_some()
            {
                m.push(a.tx_hash.clone());
            }
        }
        m
    };
    assert_eq!(
        mined.len(),
        1,
        "exactly one attempt of the intent is mined: {mined:?}"
    );
    assert_eq!(body["result"]["tx_hash"].as_str(), Some(mined[0].as_str()));
    assert_eq!(nonce(&w).await?, n0 + 3);
    hub.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn sigkill_between_send_and_receipt_then_restart_completes_the_intent() -> anyhow::Result<()>
{
    let mut w = writes(true, true).await?;
    let port = free_port()?;
    w.fx.cfg.listen = format!("127.0.0.1:{port}").parse()?;
    let log = w.fx.dir.join("hub.log");
    let n0 = nonce(&w).await?;
    anvil(&w, "evm_setAutomine", json!([false])).await?;
    let hub = spawn_hub(&w.fx.cfg, &w.fx.dir, &log)?;
    let client = reqwest::Client::new();
    wait_up(&client, port).await?;
    let p = add_params(w.fx.dsp, "kill-1");
    let first = tokio::spawn({
        let (p, client) = (p.clone(), client.clone());
        async move { http(&client, port, "dodo.add_liquidity", p).await }
    });
    // All three transactions are in the node's pool: the hub sent them and waits for receipts.
    poll(Duration::from_secs(20), || async {
        Ok((nonce(&w).await? == n0 + 3).then_some(()))
    })
    .await?;
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    let sent = poll(Duration::from_secs(10), || async {
        Ok(pg
            .intent_by_key("kill-1")
            .await?
            .filter(|i| i.status == pmm_store::TxStatus::Sent))
    })
    .await?;
    drop(hub); // SIGKILL, no shutdown
    let _ = first.await;
    anvil(&w, "evm_setAutomine", json!([true])).await?;
    anvil(&w, "evm_mine", json!([])).await?;
    let _hub = spawn_hub(&w.fx.cfg, &w.fx.dir, &log)?;
    let (status, body) = poll(Duration::from_secs(30), || async {
        Ok(http(&client, port, "dodo.add_liquidity", p.clone())
            .await
            .ok())
    })
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "confirmed", "{body}");
    assert_eq!(
        body["result"]["tx_hash"].as_str(),
        sent.tx_hash.as_deref(),
        "the same hash"
    );
    assert_eq!(
        nonce(&w).await?,
        n0 + 3,
        "one deposit (and its two approvals) on chain"
    );
    let done = pg.intent_by_key("kill-1").await?.unwrap();
    assert_eq!(done.status, pmm_store::TxStatus::Confirmed);

    // Secrets: the key's hex and the password are nowhere a caller or an operator can look.
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await?
        .text()
        .await?;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    drop(_hub);
    let logs = std::fs::read_to_string(&log)?;
    let rows = serde_json::to_string(&format!("{:?}", tool_calls(&w).await?))?;
    let key = w.key_hex.trim_start_matches("0x").to_lowercase();
    for (what, text) in [
        ("logs", &logs),
        ("health", &health),
        ("metrics", &metrics),
        ("response", &body.to_string()),
        ("tool_calls", &rows),
        ("transactions", &format!("{done:?}")),
    ] {
        let t = text.to_lowercase();
        assert!(!t.contains(&key), "key hex in {what}");
        assert!(!text.contains(PASSWORD), "password in {what}");
    }
    assert!(
        health.contains(&format!("{:#x}", w.signer).to_lowercase())
            || health.to_lowercase().contains(&format!("{:#x}", w.signer))
    );
    Ok(())
}

/// A caller that disconnects while its write waits for the receipt does not stop the write:
/// the hub drives it to its receipt and outcome without a restart, and sends nothing twice.
#[tokio::test]
async fn a_caller_that_disconnects_mid_write_leaves_it_to_finish() -> anyhow::Result<()> {
    let mut w = writes(true, true).await?;
    let port = free_port()?;
    w.fx.cfg.listen = format!("127.0.0.1:{port}").parse()?;
    let log = w.fx.dir.join("hub.log");
    let n0 = nonce(&w).await?;
    let lp0 = lp(&w, w.fx.dsp).await?;
    anvil(&w, "evm_setAutomine", json!([false])).await?;
    let _hub = spawn_hub(&w.fx.cfg, &w.fx.dir, &log)?;
    let client = reqwest::Client::new();
    wait_up(&client, port).await?;
    let caller = tokio::spawn({
        let client = client.clone();
        let p = add_params(w.fx.dsp, "gone-1");
        async move { http(&client, port, "dodo.add_liquidity", p).await }
    });
    // Sent, and waiting for a receipt that cannot come while the node does not mine.
    poll(Duration::from_secs(20), || async {
        Ok((nonce(&w).await? == n0 + 3).then_some(()))
    })
    .await?;
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    poll(Duration::from_secs(10), || async {
        Ok(pg
            .intent_by_key("gone-1")
            .await?
            .filter(|i| i.status == pmm_store::TxStatus::Sent))
    })
    .await?;
    // The caller goes away: its request, and with it its connection, is dropped.
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));
    drop(client);
    anvil(&w, "evm_setAutomine", json!([true])).await?;
    anvil(&w, "evm_mine", json!([])).await?;
    let done = poll(Duration::from_secs(30), || async {
        Ok(pg
            .intent_by_key("gone-1")
            .await?
            .filter(|i| i.status == pmm_store::TxStatus::Confirmed))
    })
    .await
    .map_err(|e| {
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::anyhow!("the abandoned write did not finish: {e}\nhub log:\n{logs}")
    })?;
    assert!(done.tx_hash.is_some());
    assert_eq!(nonce(&w).await?, n0 + 3, "nothing sent twice");
    assert!(
        lp(&w, w.fx.dsp).await? > lp0,
        "the deposit's shares were minted"
    );
    Ok(())
}

#[tokio::test]
async fn doctor_passes_on_a_hardened_stack_and_names_what_breaks() -> anyhow::Result<()> {
    let mut w = writes(true, true).await?;
    // Doctor wants cooldowns: the allowlist of `writes` has none.
    let allowlist_path = w.fx.cfg.allowlist_path.clone();
    let mut allowlist: Value = serde_json::from_str(&std::fs::read_to_string(&allowlist_path)?)?;
    allowlist["pools"][0]["limits"]["cooldown_s"] = json!(60);
    std::fs::write(&allowlist_path, allowlist.to_string())?;
    // Our own Redis with AOF on (the shared one runs without persistence).
    let port = free_port()?;
    let rdir = w.fx.dir.join("redis");
    std::fs::create_dir_all(&rdir)?;
    let _redis = ChildGuard(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&rdir)
            .stdout(Stdio::null())
            .spawn()?,
    );
    w.fx.cfg.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let run = |cfg: &HubConfig| -> anyhow::Result<(bool, String)> {
        let path = w.fx.dir.join("doctor.json");
        std::fs::write(&path, serde_json::to_string(cfg)?)?;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
            .arg("--config")
            .arg(&path)
            .arg("doctor")
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (ok, text) = poll(Duration::from_secs(10), || async {
        let r = run(&w.fx.cfg)?;
        Ok((!r.1.contains("Connection refused")).then_some(r))
    })
    .await?;
    assert!(ok, "{text}");
    for item in [
        "allowlist",
        "limits",
        "cooldown_and_deviation",
        "independent_feed",
        "keys",
        "gates",
        "redis_persistence",
        "postgres",
        "signer_gas",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains(item)),
            "{item}: {text}"
        );
    }
    assert!(
        !text.contains(PASSWORD) && !text.to_lowercase().contains(&w.key_hex[2..].to_lowercase())
    );
    // A world-readable password file fails `keys`, and only that.
    let pass = w.fx.cfg.keystore_password_file.clone().unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let (ok, text) = run(&w.fx.cfg)?;
    assert!(!ok);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{text}");
    assert!(fails[0].contains("keys"), "{text}");
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // Redis without AOF fails `redis_persistence`.
    let mut shared = w.fx.cfg.clone();
    shared.redis_url = Some(w.fx.redis.url().to_owned());
    let (_, text) = run(&shared)?;
    let is_aof_off = text
        .lines()
        .any(|l| l.starts_with("FAIL") && l.contains("redis_persistence"));
    let shared_has_aof = text
        .lines()
        .any(|l| l.starts_with("PASS") && l.contains("redis_persistence"));
    assert!(is_aof_off || shared_has_aof, "{text}");
    Ok(())
}

#[tokio::test]
async fn redis_stopped_mid_run_refuses_writes_serves_reads_and_health_names_redis()
-> anyhow::Result<()> {
    let mut w = writes(true, true).await?;
    let port = free_port()?;
    let rdir = w.fx.dir.join("redis");
    std::fs::create_dir_all(&rdir)?;
    let mut redis = ChildGuard(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&rdir)
            .stdout(Stdio::null())
            .spawn()?,
    );
    w.fx.cfg.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let store = pmm_store::RedisStore::connect(&format!("redis://127.0.0.1:{port}"), "")?;
    poll(Duration::from_secs(10), || async {
        Ok(store.ping().await.ok())
    })
    .await?;
    common::bootstrap(
        w.fx.db.url(),
        &format!("redis://127.0.0.1:{port}"),
        w.fx.redis.namespace(),
    )
    .await?;
    let hub = start(&w.fx.cfg).await?;
    let r = call_ok(
        &hub,
        AGENT,
        "dodo.add_liquidity",
        add_params(w.fx.dsp, "before-stop"),
    )
    .await?;
    assert_eq!(r["result"]["status"], "confirmed", "{r}");
    let n0 = nonce(&w).await?;
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let (status, body) = call(
        &hub,
        Some(AGENT),
        "dodo.add_liquidity",
        add_params(w.fx.dsp, "after-stop"),
    )
    .await?;
    let refused = status == 503 || body["result"]["status"] == "denied";
    assert!(refused, "{status} {body}");
    assert_eq!(nonce(&w).await?, n0, "nothing sent without Redis");
    let (status, _) = call(
        &hub,
        Some(AGENT),
        "dodo.get_pool_state",
        json!({"pool": w.fx.dsp.to_string()}),
    )
    .await?;
    assert_eq!(status, 200, "reads go on");
    let resp = reqwest::get(format!("http://{}/health", hub.addr)).await?;
    assert_eq!(resp.status().as_u16(), 503);
    let health: Value = resp.json().await?;
    assert_eq!(health["redis"]["status"], "down", "{health}");
    hub.shutdown().await;
    Ok(())
}
