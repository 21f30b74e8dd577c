//! The tool-call log keeps rows through a Postgres outage and replays them.

use std::time::{Duration, Instant};

use pmm_hub::toollog::ToolLog;
use pmm_store::{MigrationSet, Migrator, PgStore, ToolCall, ToolOutcome};
use pmm_testkit::db::TestDb;

fn row(i: u32) -> ToolCall {
    ToolCall {
        id: uuid::Uuid::new_v4(),
        called_at: chrono::Utc::now(),
        caller: "agent#0".into(),
        tool: "dodo.get_pool_state".into(),
        params: serde_json::json!({"i": i}),
        outcome: ToolOutcome::Ok(serde_json::json!({})),
        verdict: None,
        matched_rule: None,
        latency_ms: i,
        trace_id: None,
    }
}

async fn wait_for(
    log: &ToolLog,
    what: &str,
    ok: impl Fn(&pmm_hub::toollog::ToolLogStatus) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let st = log.status();
        if ok(&st) {
            return;
        }
        assert!(Instant::now() < end, "{what} not reached: {st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies the embedded migrations to `db`.
async fn migrate(db: &TestDb) -> anyhow::Result<()> {
    let mut m = Migrator::connect(db.url()).await?;
    m.migrate(&MigrationSet::embedded()?, Duration::from_secs(10))
        .await?;
    Ok(())
}

/// A fresh migrated database (dropped with the returned guard) and a store on it.
async fn migrated_store() -> anyhow::Result<(TestDb, PgStore)> {
    let db = TestDb::create().await?;
    migrate(&db).await?;
    let pg = PgStore::connect(db.url(), 2)?;
    Ok((db, pg))
}

#[tokio::test]
async fn rows_survive_an_outage_and_are_replayed_once_postgres_answers() -> anyhow::Result<()> {
    // No migrations yet: every insert fails as it would with Postgres down.
    let db = TestDb::create().await?;
    let pg = PgStore::connect(db.url(), 2)?;
    let log = ToolLog::spawn(pg.clone(), 100);
    for i in 0..3 {
        log.record(row(i));
    }
    wait_for(&log, "retrying", |s| {
        s.state == "retrying" && s.pending == 3 && s.last_error.is_some()
    })
    .await;
    assert!(
        !log.flush(Duration::from_millis(200)).await,
        "nothing can be written while the table is missing"
    );

    migrate(&db).await?;
    wait_for(&log, "replayed", |s| {
        s.state == "ok" && s.pending == 0 && s.written == 3
    })
    .await;
    assert_eq!(pg.count_tool_calls().await?, 3);
    Ok(())
}

#[tokio::test]
async fn flush_returns_once_every_queued_row_is_written() -> anyhow::Result<()> {
    let (_db, pg) = migrated_store().await?;
    let log = ToolLog::spawn(pg.clone(), 100);
    for i in 0..5 {
        log.record(row(i));
    }
    assert!(
        log.flush(Duration::from_secs(15)).await,
        "{:?}",
        log.status()
    );
    assert_eq!(pg.count_tool_calls().await?, 5);
    assert!(ToolLog::disabled().flush(Duration::ZERO).await);
    Ok(())
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let log = ToolLog::spawn(PgStore::connect(db.url(), 1)?, 2);
    for i in 0..5 {
        log.record(row(i));
    }
    let st = log.status();
    assert!(st.pending <= 2, "{st:?}");
    assert!(st.dropped >= 3, "{st:?}");
    assert_eq!(ToolLog::disabled().status().state, "disabled");
    Ok(())
}

#[tokio::test]
async fn a_nul_in_caller_input_cannot_wedge_the_audit_log() -> anyhow::Result<()> {
    let (_db, pg) = migrated_store().await?;
    let log = ToolLog::spawn(pg.clone(), 100);
    let mut poisoned = row(0);
    poisoned.params = serde_json::json!({"pool": "0x\u{0}", "nested": ["a\u{0}b"], "k\u{0}": 1});
    poisoned.outcome = ToolOutcome::Err("bad input \u{0}".into());
    log.record(poisoned);
    log.record(row(1));
    assert!(
        log.flush(Duration::from_secs(15)).await,
        "{:?}",
        log.status()
    );
    assert_eq!(pg.count_tool_calls().await?, 2);
    let stored = pg.recent_tool_calls(None, 10).await?;
    let text = serde_json::to_string(&stored.iter().map(|c| &c.params).collect::<Vec<_>>())?;
    assert!(
        text.contains("0x\u{FFFD}") && !text.contains("\\u0000"),
        "{text}"
    );
    Ok(())
}
