//! 200 concurrent `dodo.add_liquidity` calls across two hub processes sharing Redis,
//! Postgres and one signer: the daily cap holds, the ledger equals the chain, and every nonce
//! is used once with none skipped.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/write_fixture.rs"]
mod write_fixture;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use pmm_store::PgStore;
use serde_json::{Value, json};
use write_fixture::*;

#[tokio::test]
async fn two_hub_processes_keep_the_daily_cap_and_gap_free_nonces_under_200_calls()
-> anyhow::Result<()> {
    let mut w = writes(true, true).await?;
    // Room for exactly ten of the 400 USDC deposits today.
    let mut limits = common::limits();
    limits["cooldown_s"] = json!(0);
    limits["max_notional_per_day"] = json!("4000000000");
    limits["max_notional_per_tx"] = json!("1000000000");
    let allowlist_path = w.fx.cfg.allowlist_path.clone();
    let mut allowlist: Value = serde_json::from_str(&std::fs::read_to_string(&allowlist_path)?)?;
    allowlist["pools"][0]["limits"] = limits;
    std::fs::write(&allowlist_path, allowlist.to_string())?;
    let n0 = nonce(&w).await?;
    let block0 = w.fx.devnet.provider().get_block_number().await?;
    let lp0 = lp(&w, w.fx.dsp).await?;
    let (b0, _) = reserves(&w).await?;
    let log = w.fx.dir.join("hubs.log");
    let mut ports = Vec::new();
    let mut hubs = Vec::new();
    for i in 0..2 {
        let port = free_port()?;
        w.fx.cfg.listen = format!("127.0.0.1:{port}").parse()?;
        let dir = w.fx.dir.join(format!("hub{i}"));
        std::fs::create_dir_all(&dir)?;
        hubs.push(spawn_hub(&w.fx.cfg, &dir, &log)?);
        ports.push(port);
    }
    let client = reqwest::Client::new();
    for &port in &ports {
        let up = wait_up(&client, port).await;
        anyhow::ensure!(
            up.is_ok(),
            "hub on {port} did not start: {}",
            std::fs::read_to_string(&log)?
        );
    }
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let port = ports[i % 2];
        let p = add_params(w.fx.dsp, &format!("cap-{i}"));
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            http(&client, port, "dodo.add_liquidity", p).await
        }));
    }
    let (mut confirmed, mut denied, mut unavailable, mut other) = (0u64, 0u64, 0u64, Vec::new());
    let (mut shares, mut base) = (U256::ZERO, U256::ZERO);
    for t in tasks {
        let (status, body) = match t.await? {
            Ok(r) => r,
            Err(e) => anyhow::bail!(
                "a call got no response: {e:#}\nhub log:\n{}",
                std::fs::read_to_string(&log)?
            ),
        };
        match body["result"]["status"].as_str() {
            Some("confirmed") => {
                confirmed += 1;
                shares += amount(&body["result"]["predicted"]["shares"]);
                base += amount(&body["result"]["predicted"]["base"]);
            }
            Some("denied") => denied += 1,
            // Fail closed: a call that got no Postgres slot in time is refused whole.
            _ if body["error"]["code"] == "store_unavailable" => unavailable += 1,
            _ => other.push((status, body)),
        }
    }
    eprintln!(
        "200 calls over 2 hubs: {confirmed} confirmed, {denied} denied, {} other, {:?}",
        other.len(),
        started.elapsed()
    );
    assert!(other.is_empty(), "{other:?}");
    eprintln!("{unavailable} refused with store_unavailable");
    assert!(confirmed <= 10, "never more than the cap holds");
    assert!(
        confirmed == 10 || unavailable > 0,
        "the cap fills unless calls were refused"
    );
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    let chain = pmm_core::schema::ChainName::new("devnet")?;
    let scope = pmm_core::keys::daily_cap_scope(&chain, w.fx.dsp);
    let committed = pg.committed_notional(&scope, chrono::Utc::now()).await?;
    assert!(committed <= U256::from(4_000_000_000u64));
    // Each commit books what its deposit moved, at most the 400 USDC it reserved.
    assert!(
        committed <= U256::from(confirmed * 400_000_000),
        "ledger <= the confirmed writes' reservations"
    );
    // Redis agrees with the ledger, and nothing is left reserved.
    let redis = pmm_store::RedisStore::connect(w.fx.redis.url(), w.fx.redis.namespace())?;
    let day = pmm_core::keys::utc_day(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    assert_eq!(redis.daily_cap_used(&scope, day).await?, committed);
    let usage = pg
        .notional_usage(&scope, chrono::Utc::now().date_naive())
        .await?;
    assert_eq!(usage.reserved, U256::ZERO, "every reservation settled");
    // The ledger equals the chain: every transaction the signer sent since the start, one by
    // one. The deposits that succeeded are exactly the confirmed intents, and what they moved
    // out of the signer into the pool, valued at the feed's 2000 USDC, is the committed notional.
    let mut confirmed_hashes = std::collections::BTreeSet::new();
    for i in 0..200 {
        if let Some(it) = pg.intent_by_key(&format!("cap-{i}")).await?
            && it.status == pmm_store::TxStatus::Confirmed
        {
            confirmed_hashes.insert(it.tx_hash.clone().unwrap_or_default());
        }
    }
    let provider = w.fx.devnet.provider();
    let head = provider.get_block_number().await?;
    let (mut sent, mut deposits, mut chain_notional) =
        (0u64, std::collections::BTreeSet::new(), U256::ZERO);
    for number in block0 + 1..=head {
        let block = provider
            .get_block_by_number(number.into())
            .full()
            .await?
            .expect("block");
        for tx in block.transactions.txns() {
            if tx.inner.signer() != w.signer {
                continue;
            }
            sent += 1;
            let hash = *tx.inner.tx_hash();
            let receipt = provider
                .get_transaction_receipt(hash)
                .await?
                .expect("receipt");
            if alloy::consensus::Transaction::to(tx.inner.inner()) != Some(w.routers.dsp_proxy) {
                continue;
            }
            assert!(receipt.status(), "no deposit reverted: {hash:#x}");
            deposits.insert(format!("{hash:#x}"));
            let moved = |token: Address| {
                receipt
                    .inner
                    .logs()
                    .iter()
                    .filter(|l| {
                        l.address() == token
                            && l.topics().len() == 3
                            && l.topics()[1] == w.signer.into_word()
                            && l.topics()[2] == w.fx.dsp.into_word()
                    })
                    .map(|l| U256::from_be_slice(&l.data().data))
                    .sum::<U256>()
            };
            let (b, q) = (moved(w.fx.base), moved(w.fx.quote));
            chain_notional += pmm_core::policy::notional_of(
                pmm_core::schema::Amount(b),
                pmm_core::schema::Amount(q),
                pmm_core::schema::Amount(U256::from(2_000_000_000u64)),
            )
            .expect("notional fits")
            .0;
        }
    }
    eprintln!(
        "ledger committed {committed}, chain deposits {} moving {chain_notional} notional, {sent} signer transactions",
        deposits.len()
    );
    assert_eq!(
        deposits, confirmed_hashes,
        "the chain's deposits are the confirmed intents"
    );
    // A deposit executing after its predecessors moves a few units less than predicted at its
    // read block; the commit books what the receipt's Transfer logs moved, so they agree.
    assert_eq!(chain_notional, committed, "the ledger equals the chain");
    let minted = lp(&w, w.fx.dsp).await? - lp0;
    assert!(minted <= shares, "{minted} <= {shares}");
    assert!(reserves(&w).await?.0 - b0 <= base);
    // Nonces: each used once, none skipped, and the node agrees.
    let nonces = pg.signer_nonces(31337, &format!("{:#x}", w.signer)).await?;
    let expected: Vec<u64> = (n0..n0 + nonces.len() as u64).collect();
    assert_eq!(nonces, expected);
    assert_eq!(nonce(&w).await?, n0 + nonces.len() as u64);
    assert_eq!(
        sent,
        nonces.len() as u64,
        "every nonce the hubs signed was mined once"
    );
    drop(hubs);
    Ok(())
}
