//! The agent worker end to end: real devnet, Postgres, Redis, hub, inference proxy and
//! llama-server; workers are processes of the real binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::providers::Provider;
use common::*;
use pmm_store::Decision;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Every field a finished tick must fill, whatever the model did.
fn assert_complete(d: &Decision) {
    let ctx = format!("tick {} pool {}: {d:?}", d.tick, d.pool);
    assert!(d.state.is_object(), "{ctx}");
    assert!(d.input_hash.starts_with("sha256:"), "{ctx}");
    assert!(d.block_number.is_some(), "{ctx}");
    assert!(
        d.prompt_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{ctx}"
    );
    assert!(d.seed.is_some() && d.temperature.is_some(), "{ctx}");
    assert!(!d.model.is_empty(), "{ctx}");
    assert!(d.baseline_proposal.is_some(), "{ctx}");
    assert!(
        d.risk.as_ref().is_some_and(|r| r["verdict"].is_string()),
        "{ctx}"
    );
    assert!(
        d.trace_id.as_deref().is_some_and(|t| t.len() == 32),
        "{ctx}"
    );
    assert!(d.worker.is_some() && d.lease_fence.is_some(), "{ctx}");
    assert_eq!(d.mode, "observe", "{ctx}");
    assert!(d.tx_hash.is_none(), "observe mode executed: {ctx}");
    let lat = d.latencies_ms.as_ref().expect("latencies");
    for step in ["get_pool_state", "risk_check", "inference", "total"] {
        assert!(lat[step].is_u64(), "{step} latency missing: {ctx}");
    }
    match d.verdict.as_str() {
        "allow" | "deny" => {
            let p = d.proposal.as_ref().expect("proposal");
            // A write is simulated; a hold is judged by the tick's risk report.
            assert_eq!(d.simulation.is_some(), p["action"] != "hold", "{ctx}");
            assert!(d.raw_output.is_some() && d.parse_error.is_none(), "{ctx}");
        }
        "no_proposal" => {
            assert!(d.matched_rule.is_some(), "{ctx}");
            // Either the model answered something unusable (kept, with the reason) or nothing
            // came back (the reason is the error).
            match &d.raw_output {
                Some(_) => assert!(d.parse_error.is_some(), "{ctx}"),
                None => assert!(d.error.is_some(), "{ctx}"),
            }
        }
        other => panic!("unexpected verdict {other}: {ctx}"),
    }
}

fn by_tick(rows: &[Decision]) -> BTreeMap<u64, Vec<&Decision>> {
    let mut m: BTreeMap<u64, Vec<&Decision>> = BTreeMap::new();
    for d in rows {
        m.entry(d.tick).or_default().push(d);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_over_three_pools_with_llama_killed_and_restarted() -> anyhow::Result<()> {
    let stack = Stack::start(1).await?;
    let mut llama = Llama::start(free_port(), &stack.dir.0).await;
    let proxy = Proxy::start(&llama.url()).await?;
    let executor = stack.devnet.deployer();
    let nonce_before = stack
        .devnet
        .provider()
        .get_transaction_count(executor)
        .await?;
    let started = Instant::now();
    let interval = 5;
    let agent = Agent::spawn(
        &stack,
        AgentSpec {
            worker: "solo",
            inference_url: proxy.url.clone(),
            interval_s: interval,
            once: false,
            env: Vec::new(),
        },
    );

    // Phase 1: at least 20 model outputs, from at least 3 whole ticks.
    let rows = poll("20 model outputs", Duration::from_secs(300), || async {
        let rows = stack.decisions().await?;
        let answered = rows.iter().filter(|d| d.raw_output.is_some()).count();
        Ok((answered >= 20 && by_tick(&rows).len() >= 4).then_some(rows))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_text()))?;
    let ticks = by_tick(&rows);
    let last = *ticks.keys().last().unwrap();
    let whole: Vec<_> = ticks.iter().filter(|(t, _)| **t < last).collect();
    assert!(whole.len() >= 3, "{ticks:?}");
    for (tick, ds) in &whole {
        assert_eq!(ds.len(), 3, "tick {tick} must have one row per pool");
        let pools: BTreeSet<_> = ds.iter().map(|d| d.pool.to_lowercase()).collect();
        assert_eq!(pools.len(), 3);
    }
    for d in &rows {
        assert_complete(d);
    }
    let outputs: Vec<&Decision> = rows.iter().filter(|d| d.raw_output.is_some()).collect();
    let valid = outputs.iter().filter(|d| d.parse_error.is_none()).count();
    let invalid = outputs.len() - valid;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for d in outputs.iter().filter(|d| d.parse_error.is_some()) {
        let why = d.parse_error.as_deref().unwrap_or_default();
        *reasons
            .entry(why.split(':').next().unwrap_or(why).to_owned())
            .or_default() += 1;
    }
    println!("phase 1: invalid outputs by reason: {reasons:?}");
    println!(
        "phase 1: {} ticks x 3 pools, {} model outputs: {valid} parsed and validated, {invalid} recorded invalid",
        whole.len(),
        outputs.len()
    );
    let (code, body) = agent.get("/health").await?;
    assert_eq!(code, 200, "{body}");

    // Phase 2: llama-server dies; ticks go on with no_proposal and the baseline.
    llama.kill();
    let killed_at = now_ms();
    let first_dead_tick = u64::try_from(killed_at / u128::from(interval * 1000))? + 1;
    let dead = poll(
        "two ticks without the model",
        Duration::from_secs(40),
        || async {
            let rows = stack.decisions().await?;
            let after: Vec<Decision> = rows
                .into_iter()
                .filter(|d| d.tick >= first_dead_tick)
                .collect();
            Ok((by_tick(&after).len() >= 2 && after.len() >= 6).then_some(after))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_text()))?;
    for d in &dead {
        assert_complete(d);
        assert_eq!(d.verdict, "no_proposal", "{d:?}");
        assert!(
            d.matched_rule
                .as_deref()
                .is_some_and(|r| r.starts_with("inference_")),
            "{d:?}"
        );
        assert!(d.baseline_proposal.is_some());
    }
    let (code, body) = agent.get("/health").await?;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("inference"), "{body}");

    // Phase 3: restarted on the same port, proposals resume in the same agent process.
    llama.restart().await;
    let back_from = u64::try_from(now_ms() / u128::from(interval * 1000))? + 1;
    // A restarted server loads the model and the proxy's breaker half-opens first; under load
    // the first answers take a while.
    poll("model outputs again", Duration::from_secs(90), || async {
        let rows = stack.decisions().await?;
        Ok(rows
            .iter()
            .any(|d| d.tick >= back_from && d.raw_output.is_some())
            .then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_text()))?;

    let (_, metrics) = agent.get("/metrics").await?;
    assert!(
        metric(
            &metrics,
            "pmm_agent_ticks_total",
            Some(("outcome", "decided"))
        ) >= 9.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "pmm_agent_leases_held", None) == 3.0,
        "{metrics}"
    );
    assert!(metrics.contains("pmm_agent_step_seconds"), "{metrics}");

    // Observe mode: the executor never sent anything.
    let nonce_after = stack
        .devnet
        .provider()
        .get_transaction_count(executor)
        .await?;
    assert_eq!(nonce_before, nonce_after, "observe mode sent a transaction");
    let mut agent = agent;
    let status = agent
        .terminate(Duration::from_secs(30))
        .expect("agent exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    println!("observe/llama test took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_six_pools_and_take_over_a_killed_one() -> anyhow::Result<()> {
    let stack = Stack::start(2).await?;
    // No model: every tick is a fast `no_proposal` with the baseline, so the lease logic alone
    // decides who processes what.
    let dead_inference = format!("http://127.0.0.1:{}", free_port());
    let interval: u64 = 2;
    let spec = |worker| AgentSpec {
        worker,
        inference_url: dead_inference.clone(),
        interval_s: interval,
        once: false,
        env: Vec::new(),
    };
    let mut a = Agent::spawn(&stack, spec("worker-a"));
    let b = Agent::spawn(&stack, spec("worker-b"));
    let logs = |a: &Agent, b: &Agent| format!("A:\n{}\nB:\n{}", a.log_text(), b.log_text());

    // Five ticks in which both workers are live and every pool is processed exactly once.
    let rows = poll("5 shared ticks", Duration::from_secs(40), || async {
        let rows = stack.decisions().await?;
        let ticks = by_tick(&rows);
        let shared: Vec<u64> = ticks
            .iter()
            .filter(|(_, ds)| {
                let workers: BTreeSet<_> = ds.iter().filter_map(|d| d.worker.clone()).collect();
                workers.len() == 2 && ds.len() == 6
            })
            .map(|(t, _)| *t)
            .collect();
        Ok((shared.len() >= 5).then_some(rows))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&a, &b)))?;
    let ticks = by_tick(&rows);
    let first = *ticks.keys().next().unwrap();
    let last = *ticks
        .iter()
        .filter(|(_, ds)| ds.len() == 6)
        .map(|(t, _)| t)
        .next_back()
        .unwrap();
    // Every tick from the first to the last complete one: each pool exactly once.
    for t in first..=last {
        let ds = ticks.get(&t).map(Vec::as_slice).unwrap_or(&[]);
        let pools: Vec<String> = ds.iter().map(|d| d.pool.to_lowercase()).collect();
        let unique: BTreeSet<_> = pools.iter().cloned().collect();
        assert_eq!(
            pools.len(),
            unique.len(),
            "tick {t}: a pool processed twice"
        );
        assert_eq!(unique.len(), 6, "tick {t}: a pool skipped: {pools:?}");
    }
    let consecutive = last - first + 1;
    println!("{consecutive} consecutive ticks, 6 pools each, exactly once");
    assert!(consecutive >= 5, "{consecutive} ticks");

    // SIGKILL A: B processes all six within two intervals.
    let a_pools: BTreeSet<String> = rows
        .iter()
        .filter(|d| d.tick == last && d.worker.as_deref() == Some("worker-a"))
        .map(|d| d.pool.to_lowercase())
        .collect();
    assert!(!a_pools.is_empty(), "A held no pools");
    a.kill();
    let killed_at = now_ms();
    // Only ticks that started after the SIGKILL count: a tick in which B happened to hold
    // all six earlier (A late renewing under load) says nothing about the takeover.
    let first_after_kill = u64::try_from(killed_at / u128::from(interval * 1000))? + 1;
    let takeover = poll("B takes A's pools", Duration::from_secs(20), || async {
        let rows = stack.decisions().await?;
        let t = by_tick(&rows)
            .into_iter()
            .filter(|(t, _)| *t >= first_after_kill)
            .find(|(_, ds)| {
                ds.len() == 6 && ds.iter().all(|d| d.worker.as_deref() == Some("worker-b"))
            })
            .map(|(t, _)| t);
        Ok(t)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&a, &b)))?;
    let tick_start = u128::from(takeover) * u128::from(interval * 1000);
    let after_ms = tick_start.saturating_sub(killed_at);
    println!(
        "A held {} pools; B processed all 6 at tick {takeover}, {after_ms} ms after the SIGKILL (interval {} ms)",
        a_pools.len(),
        interval * 1000
    );
    assert!(
        after_ms <= u128::from(2 * interval * 1000),
        "takeover after {after_ms} ms"
    );
    // The gauge is B's own view, set as it takes and renews leases: polled, not read once.
    let metrics = poll("B reports six leases", Duration::from_secs(10), || async {
        let (_, m) = b.get("/metrics").await?;
        Ok((metric(&m, "pmm_agent_leases_held", None) == 6.0).then_some(m))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&a, &b)))?;
    assert_eq!(
        metric(&metrics, "pmm_agent_decisions_duplicate_total", None),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "pmm_agent_leases_lost_total", None),
        0.0,
        "B lost a lease it held: {metrics}\n{}",
        logs(&a, &b)
    );

    // SIGTERM: B finishes its tick, releases its leases and exits 0.
    let mut b = b;
    let status = b
        .terminate(Duration::from_secs(15))
        .expect("B exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", b.log_text());
    for pool in &stack.pools {
        let name = format!("agent:31337:{}", pool.to_string().to_lowercase());
        let got = stack
            .store
            .acquire_lease(&name, "probe", Duration::from_secs(1))
            .await?;
        assert!(got.is_some(), "{name} still held after SIGTERM");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_ticks_every_pool_once_and_exits_zero() -> anyhow::Result<()> {
    let stack = Stack::start(1).await?;
    let mut agent = Agent::spawn(
        &stack,
        AgentSpec {
            worker: "once",
            inference_url: format!("http://127.0.0.1:{}", free_port()),
            interval_s: 30,
            once: true,
            env: Vec::new(),
        },
    );
    let status = agent
        .wait_exit(Duration::from_secs(30))
        .expect("--once exits");
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    let rows = stack.decisions().await?;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let pools: BTreeSet<_> = rows.iter().map(|d| d.pool.to_lowercase()).collect();
    assert_eq!(pools.len(), 3);
    for d in &rows {
        assert_complete(d);
    }
    // One printed line per decision.
    let lines = agent
        .log_text()
        .lines()
        .filter(|l| l.starts_with("tick "))
        .count();
    assert_eq!(lines, 3, "{}", agent.log_text());
    Ok(())
}
