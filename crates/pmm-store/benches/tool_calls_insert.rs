//! Batched versus one-row-at-a-time inserts into `tool_calls`, measured in the same run on a
//! fresh database, printed as rows/s and their ratio.
//!
//! Run: `cargo bench -p pmm-store --bench tool_calls_insert` (needs Postgres on DATABASE_URL or
//! 127.0.0.1:5432). `PMM_BENCH_SINGLE_ROWS` / `PMM_BENCH_BATCH_ROWS` change the sample sizes.

use std::time::Instant;

use chrono::Utc;
use pmm_store::migrate::{MigrationSet, Migrator};
use pmm_store::{PgStore, ToolCall, ToolOutcome};
use pmm_testkit::db::TestDb;
use serde_json::json;
use uuid::Uuid;

fn rows(n: usize) -> Vec<ToolCall> {
    (0..n)
        .map(|i| ToolCall {
            id: Uuid::new_v4(),
            called_at: Utc::now(),
            caller: "bench-agent".into(),
            tool: "dodo.get_pool_state".into(),
            params: json!({"chain_id": 31337, "pool": "0x5fbdb2315678afecb367f032d93f642f64180aa3"}),
            outcome: ToolOutcome::Ok(json!({"base_reserve": "1000000000000000000000", "i": i})),
            verdict: Some("allow".into()),
            matched_rule: Some("default.allow".into()),
            latency_ms: 3,
            trace_id: Some(format!("trace-{}", i / 8)),
        })
        .collect()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let single_rows = env_usize("PMM_BENCH_SINGLE_ROWS", 2_000);
    let batch_rows = env_usize("PMM_BENCH_BATCH_ROWS", 50_000);
    let db = TestDb::create().await?;
    Migrator::connect(db.url())
        .await?
        .migrate(
            &MigrationSet::embedded()?,
            std::time::Duration::from_secs(30),
        )
        .await?;
    let store = PgStore::connect(db.url(), 1)?;
    // Warm the pool and the statement cache so neither run pays for connecting.
    store.insert_tool_calls(&rows(10)).await?;
    store.insert_tool_call(&rows(1)[0]).await?;

    let single = rows(single_rows);
    let started = Instant::now();
    for call in &single {
        store.insert_tool_call(call).await?;
    }
    let single_rate = single_rows as f64 / started.elapsed().as_secs_f64();

    let batch = rows(batch_rows);
    let started = Instant::now();
    let written = store.insert_tool_calls(&batch).await?;
    let batch_rate = written as f64 / started.elapsed().as_secs_f64();

    println!("tool_calls one row per INSERT : {single_rows:>7} rows, {single_rate:>10.0} rows/s");
    println!("tool_calls batched (unnest)   : {written:>7} rows, {batch_rate:>10.0} rows/s");
    println!(
        "batched / one-row ratio       : {:.1}x",
        batch_rate / single_rate
    );
    Ok(())
}
