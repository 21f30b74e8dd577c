//! Execute mode end to end: the agent (the real binary, the baseline proposing) sends an
//! allowed deposit through the hub's MCP write tool with an idempotency key, the chain moves,
//! and the next tick's deposit on the same pool is denied by the cooldown the first one set.
//! Every decision joins its tool calls through the trace id the hub stored.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use common::*;
use pmm_store::Decision;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_mode_sends_an_allowed_deposit_and_records_the_cooldown_denial()
-> anyhow::Result<()> {
    let stack = Stack::start_with(1, true).await?;
    let signer = stack.devnet.deployer();
    // LP shares per pool; a DPP has none (owner-managed), its balanceOf reverts.
    let mut lp_before = Vec::new();
    for pool in &stack.pools {
        lp_before.push(stack.devnet.balance_of(*pool, signer).await.ok());
    }
    let nonce_before = stack
        .devnet
        .provider()
        .get_transaction_count(signer)
        .await?;
    let agent = Agent::spawn(
        &stack,
        AgentSpec {
            worker: "exec",
            // The baseline proposes: no model is asked, so a dead proxy URL is never called.
            inference_url: format!("http://127.0.0.1:{}", free_port()),
            interval_s: 3,
            once: false,
            env: vec![
                ("PMM_MODE", "execute".into()),
                ("PMM_PROPOSER", "baseline".into()),
                // The fixture pools hold half their value in base: outside 80% +/- 5%.
                ("PMM_BASELINE_TARGET_RATIO_BPS", "8000".into()),
                ("PMM_BASELINE_SIZE_BPS", "100".into()),
            ],
        },
    );

    // A pool with an executed deposit and a later tick on the same pool.
    let (executed, later, rows) = poll(
        "an executed deposit and a later tick on its pool",
        Duration::from_secs(90),
        || async {
            let rows = stack.decisions().await?;
            let found = rows.iter().filter(|d| d.tx_hash.is_some()).find_map(|x| {
                rows.iter()
                    .find(|l| l.pool == x.pool && l.tick > x.tick)
                    .map(|l| (x.clone(), l.clone()))
            });
            Ok(found.map(|(x, l)| (x, l, rows)))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_text()))?;

    // The executed one: allowed, confirmed on chain, shares minted to the signer.
    let ctx = format!("{executed:?}");
    assert_eq!(executed.mode, "execute", "{ctx}");
    assert_eq!(executed.model, "baseline", "{ctx}");
    assert_eq!(executed.verdict, "allow", "{ctx}");
    assert_eq!(
        executed.proposal.as_ref().unwrap()["action"],
        "add_liquidity",
        "{ctx}"
    );
    assert_eq!(executed.proposal, executed.baseline_proposal, "{ctx}");
    let execution = &executed.simulation.as_ref().unwrap()["execution"];
    assert_eq!(execution["status"], "confirmed", "{ctx}");
    let hash: B256 = executed.tx_hash.as_deref().unwrap().parse()?;
    let receipt = stack
        .devnet
        .provider()
        .get_transaction_receipt(hash)
        .await?
        .expect("the transaction is mined");
    assert!(receipt.status(), "{receipt:?}");
    let pool: Address = executed.pool.parse()?;
    let i = stack.pools.iter().position(|p| *p == pool).unwrap();
    let lp_before = lp_before[i].expect("a deposit went to a pool with LP shares");
    let lp_after = stack.devnet.balance_of(pool, signer).await?;
    assert!(lp_after > lp_before, "LP shares {lp_before} -> {lp_after}");
    let key = format!("agent:31337:{}:{}", executed.pool, executed.tick);
    assert_eq!(execution["idempotency_key"], key.as_str(), "{ctx}");
    let intent = stack.store.intent_by_key(&key).await?;
    assert!(intent.is_some(), "no write intent under {key}");

    // Its tool calls, joined through the trace id: the whole path, the write with its key.
    let calls = stack.store.tool_calls_of_decision(executed.id).await?;
    let tools: Vec<&str> = calls.iter().map(|c| c.tool.as_str()).collect();
    for t in [
        "dodo.get_pool_state",
        "dodo.risk_check",
        "dodo.quote_add_liquidity",
        "dodo.simulate_action",
        "dodo.add_liquidity",
    ] {
        assert!(tools.contains(&t), "{t} not joined: {tools:?}");
    }
    assert!(calls.iter().all(|c| c.trace_id == executed.trace_id));
    let write = calls
        .iter()
        .find(|c| c.tool == "dodo.add_liquidity")
        .unwrap();
    assert_eq!(write.params["idempotency_key"], key.as_str());
    assert_eq!(write.verdict.as_deref(), Some("allow"), "{write:?}");

    // The next tick on that pool: the same deposit, denied by the cooldown, nothing sent.
    let ctx = format!("{later:?}");
    assert_eq!(later.verdict, "deny", "{ctx}");
    assert_eq!(later.matched_rule.as_deref(), Some("cooldown"), "{ctx}");
    assert!(later.tx_hash.is_none(), "{ctx}");
    let later_tools: BTreeSet<String> = stack
        .store
        .tool_calls_of_decision(later.id)
        .await?
        .into_iter()
        .map(|c| c.tool)
        .collect();
    assert!(
        later_tools.contains("dodo.simulate_action"),
        "{later_tools:?}"
    );
    assert!(
        !later_tools.contains("dodo.add_liquidity"),
        "{later_tools:?}"
    );

    // Only executed decisions sent anything; a tx per deposit, plus its approvals.
    let executed_rows: Vec<&Decision> = rows.iter().filter(|d| d.tx_hash.is_some()).collect();
    assert!(
        rows.iter()
            .all(|d| d.tx_hash.is_none() || d.verdict == "allow")
    );
    let nonce_after = stack
        .devnet
        .provider()
        .get_transaction_count(signer)
        .await?;
    assert!(
        nonce_after >= nonce_before + executed_rows.len() as u64,
        "{nonce_before} -> {nonce_after} for {} deposits",
        executed_rows.len()
    );
    println!(
        "executed {} deposit(s) (tx {hash}), tick {} pool {} denied by cooldown; {} tool calls joined",
        executed_rows.len(),
        later.tick,
        later.pool,
        calls.len()
    );

    let mut agent = agent;
    let status = agent
        .terminate(Duration::from_secs(30))
        .expect("agent exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    Ok(())
}
