//! Store-layer tests on a real Postgres: one fresh database per test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::{Address, U256};
use chrono::{TimeZone, Utc};
use pmm_core::keys::{DailyCapScope, daily_cap_scope};
use pmm_core::schema::ChainName;
use pmm_store::migrate::{MIGRATION_LOCK_KEY, MigrateError, MigrationSet, Migrator};
use pmm_store::{
    Attempt, Decision, IntentCall, IntentStart, NewIntent, NotionalReservation, Outcome, PgStore,
    PolicyEvent, PolicyEventKind, PoolSnapshot, ReserveOutcome, StoreError, ToolCall, ToolOutcome,
    TxStatus,
};
use pmm_testkit::db::TestDb;
use serde_json::json;
use uuid::Uuid;

const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A copy of the repository's migrations that is removed on drop.
struct TempMigrations(PathBuf);

impl TempMigrations {
    fn copy() -> Self {
        let dir = std::env::temp_dir().join(format!("pmm-migrations-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        for entry in std::fs::read_dir(repo_migrations()).expect("read migrations") {
            let path = entry.expect("dir entry").path();
            std::fs::copy(&path, dir.join(path.file_name().expect("file name"))).expect("copy");
        }
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempMigrations {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn migrated() -> (TestDb, PgStore) {
    let db = TestDb::create().await.expect("test database");
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    let set = MigrationSet::embedded().expect("embedded migrations");
    migrator.migrate(&set, LOCK_TIMEOUT).await.expect("migrate");
    let store = PgStore::connect(db.url(), 4).expect("pool");
    (db, store)
}

#[tokio::test]
async fn fresh_migrate_applies_everything_and_a_second_run_is_a_no_op() {
    let db = TestDb::create().await.expect("test database");
    let set = MigrationSet::embedded().expect("embedded");
    let files: Vec<String> = set.migrations().iter().map(|m| m.file()).collect();
    assert_eq!(
        files.first().map(String::as_str),
        Some("V1__tool_calls.sql")
    );

    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    let first = migrator
        .migrate(&set, LOCK_TIMEOUT)
        .await
        .expect("first run");
    let applied: Vec<String> = first.applied.iter().map(|m| m.file()).collect();
    assert_eq!(applied, files);
    assert_eq!(
        first.schema_version,
        set.migrations().last().map(|m| m.version)
    );

    let second = migrator
        .migrate(&set, LOCK_TIMEOUT)
        .await
        .expect("second run");
    assert!(second.applied.is_empty());
    assert_eq!(second.schema_version, first.schema_version);

    let status = migrator.status(&set).await.expect("status");
    assert!(status.is_current());
    assert_eq!(status.applied.len(), files.len());
    assert!(status.applied.iter().all(|m| m.applied_on.is_some()));

    let store = PgStore::connect(db.url(), 2).expect("pool");
    assert_eq!(store.count_tool_calls().await.expect("count"), 0);
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused_by_file_name() {
    let db = TestDb::create().await.expect("test database");
    let dir = TempMigrations::copy();
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    let set = MigrationSet::from_dir(&dir.0).expect("load");
    migrator.migrate(&set, LOCK_TIMEOUT).await.expect("migrate");

    let path = dir.file("V2__agent_decisions.sql");
    let sql = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        sql.replace("error                   TEXT", "error TEXT NOT NULL"),
    )
    .expect("write");
    let edited = MigrationSet::from_dir(&dir.0).expect("load edited");
    let err = migrator.migrate(&edited, LOCK_TIMEOUT).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Changed { file } if file == "V2__agent_decisions.sql"),
        "{err}"
    );
    assert!(err.to_string().contains("V2__agent_decisions.sql"));
    let status = migrator.status(&edited).await.expect("status");
    assert_eq!(status.changed, vec!["V2__agent_decisions.sql".to_owned()]);
    assert!(!status.is_current());
}

#[tokio::test]
async fn a_missing_applied_migration_is_refused_by_file_name() {
    let db = TestDb::create().await.expect("test database");
    let dir = TempMigrations::copy();
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    migrator
        .migrate(&MigrationSet::from_dir(&dir.0).expect("load"), LOCK_TIMEOUT)
        .await
        .expect("migrate");
    std::fs::remove_file(dir.file("V7__worker_leases.sql")).expect("remove");
    let err = migrator
        .migrate(&MigrationSet::from_dir(&dir.0).expect("load"), LOCK_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::Missing { file } if file == "V7__worker_leases.sql"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_of_itself_behind() {
    let db = TestDb::create().await.expect("test database");
    let dir = TempMigrations::copy();
    std::fs::write(
        dir.file("V99__half.sql"),
        "CREATE TABLE half_applied (id INT);\nSELECT 1 / 0;\n",
    )
    .expect("write");
    let set = MigrationSet::from_dir(&dir.0).expect("load");
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    let err = migrator.migrate(&set, LOCK_TIMEOUT).await.unwrap_err();
    assert!(matches!(err, MigrateError::Database { .. }), "{err}");
    let status = migrator.status(&set).await.expect("status");
    assert_eq!(
        status.pending.iter().map(|m| m.file()).collect::<Vec<_>>(),
        ["V99__half.sql"]
    );
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let conn_task = tokio::spawn(connection);
    let exists: bool = client
        .query_one("SELECT to_regclass('half_applied') IS NOT NULL", &[])
        .await
        .expect("query")
        .get(0);
    assert!(!exists, "the failed migration's first statement was kept");
    drop(client);
    conn_task.abort();
}

#[tokio::test]
async fn crlf_line_endings_do_not_change_checksums() {
    let db = TestDb::create().await.expect("test database");
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    migrator
        .migrate(&MigrationSet::embedded().expect("embedded"), LOCK_TIMEOUT)
        .await
        .expect("migrate");
    let dir = TempMigrations::copy();
    for entry in std::fs::read_dir(&dir.0).expect("read") {
        let path = entry.expect("entry").path();
        let sql = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, sql.replace('\n', "\r\n")).expect("write");
    }
    let crlf = MigrationSet::from_dir(&dir.0).expect("load");
    let report = migrator
        .migrate(&crlf, LOCK_TIMEOUT)
        .await
        .expect("no drift");
    assert!(report.applied.is_empty());
}

#[tokio::test]
async fn migrate_gives_up_when_the_lock_is_held_past_the_timeout() {
    let db = TestDb::create().await.expect("test database");
    let (holder, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect holder");
    let conn_task = tokio::spawn(connection);
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .expect("take lock");
    let mut migrator = Migrator::connect(db.url()).await.expect("connect");
    let set = MigrationSet::embedded().expect("embedded");
    let err = migrator
        .migrate(&set, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::LockTimeout(_)), "{err}");
    assert!(
        migrator
            .status(&set)
            .await
            .expect("status")
            .applied
            .is_empty()
    );
    drop(holder);
    conn_task.abort();
}

#[tokio::test]
async fn a_bad_url_and_a_refused_connection_are_clear_errors() {
    let err = Migrator::connect("postgres://x@127.0.0.1:notaport/db")
        .await
        .err()
        .expect("bad url");
    assert!(matches!(err, MigrateError::InvalidUrl(_)), "{err}");
    let err = Migrator::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, MigrateError::Connect { endpoint, .. } if endpoint == "127.0.0.1:1"),
        "{err}"
    );
    let store = PgStore::connect("postgres://postgres:secret@127.0.0.1:1/x", 1).expect("lazy");
    let err = store.ping().await.unwrap_err();
    assert!(
        matches!(err, StoreError::PostgresUnavailable { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("secret"));
}

fn tool_call(i: u32, trace: &str) -> ToolCall {
    ToolCall {
        id: Uuid::new_v4(),
        called_at: Utc.timestamp_opt(1_800_000_000 + i64::from(i), 0).unwrap(),
        caller: "agent-1".into(),
        tool: if i.is_multiple_of(2) {
            "dodo.get_pool_state"
        } else {
            "dodo.risk_check"
        }
        .into(),
        params: json!({"pool": "0xabc", "i": i}),
        outcome: if i % 5 == 4 {
            ToolOutcome::Err(format!("boom {i}"))
        } else {
            ToolOutcome::Ok(json!({"ok": i}))
        },
        verdict: (i % 2 == 1).then(|| "allow".to_owned()),
        matched_rule: (i % 2 == 1).then(|| "caps.daily".to_owned()),
        latency_ms: i * 3,
        trace_id: Some(trace.to_owned()),
    }
}

#[tokio::test]
async fn tool_calls_are_written_single_and_batched_and_read_back() {
    let (_db, store) = migrated().await;
    let single = tool_call(0, "trace-a");
    store.insert_tool_call(&single).await.expect("insert one");
    let batch: Vec<ToolCall> = (1..=12_000).map(|i| tool_call(i, "trace-b")).collect();
    assert_eq!(
        store.insert_tool_calls(&batch).await.expect("batch"),
        12_000
    );
    assert_eq!(store.insert_tool_calls(&[]).await.expect("empty"), 0);
    assert_eq!(store.count_tool_calls().await.expect("count"), 12_001);

    assert_eq!(
        store.tool_calls_by_trace("trace-a").await.expect("a"),
        vec![single]
    );
    let b = store.tool_calls_by_trace("trace-b").await.expect("b");
    assert_eq!(b.len(), 12_000);
    assert_eq!(b[0], batch[0]);
    assert_eq!(b[3], batch[3]);
    assert_eq!(b[11_999], batch[11_999]);
    let recent = store
        .recent_tool_calls(Some("dodo.risk_check"), 2)
        .await
        .expect("recent");
    assert_eq!(recent, vec![batch[11_998].clone(), batch[11_996].clone()]);

    // A batch with one bad row (Postgres text cannot hold NUL) writes nothing.
    let mut bad = tool_call(2, "trace-c");
    bad.caller = "agent\0".into();
    let rejected = vec![tool_call(1, "trace-c"), bad];
    assert!(store.insert_tool_calls(&rejected).await.is_err());
    assert!(
        store
            .tool_calls_by_trace("trace-c")
            .await
            .expect("c")
            .is_empty()
    );
    assert_eq!(store.count_tool_calls().await.expect("count"), 12_001);
}

#[tokio::test]
async fn replaying_a_tool_call_batch_stores_each_row_once_without_error() {
    let (_db, store) = migrated().await;
    let batch: Vec<ToolCall> = (0..50).map(|i| tool_call(i, "trace-r")).collect();
    assert_eq!(store.insert_tool_calls(&batch).await.expect("first"), 50);
    // The same batch again, as a writer replays it after losing the commit reply.
    assert_eq!(store.insert_tool_calls(&batch).await.expect("replay"), 0);
    store
        .insert_tool_call(&batch[7])
        .await
        .expect("single replay");
    // A batch mixing stored rows, a new row and an id repeated within itself: only the new
    // row is written, once.
    let fresh = tool_call(50, "trace-r");
    let mixed = vec![
        batch[0].clone(),
        fresh.clone(),
        batch[49].clone(),
        fresh.clone(),
    ];
    assert_eq!(store.insert_tool_calls(&mixed).await.expect("mixed"), 1);
    assert_eq!(store.count_tool_calls().await.expect("count"), 51);
    let mut expected = batch.clone();
    expected.push(fresh);
    assert_eq!(
        store.tool_calls_by_trace("trace-r").await.expect("read"),
        expected
    );
    // A replayed id never overwrites what was stored first.
    let mut altered = batch[3].clone();
    altered.caller = "mallory".into();
    assert_eq!(
        store.insert_tool_calls(&[altered]).await.expect("same id"),
        0
    );
    let stored = store.tool_calls_by_trace("trace-r").await.expect("read");
    assert_eq!(stored[3], batch[3]);
}

#[tokio::test]
async fn audit_tables_refuse_update_delete_and_truncate() {
    let (db, store) = migrated().await;
    store
        .insert_tool_call(&tool_call(1, "t"))
        .await
        .expect("insert");
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    for sql in [
        "UPDATE tool_calls SET caller = 'mallory'",
        "DELETE FROM tool_calls",
        "TRUNCATE tool_calls",
        "DELETE FROM agent_decisions",
        "TRUNCATE policy_events",
        "DELETE FROM notional_ledger",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        let db_err = err.as_db_error().expect("server error");
        assert_eq!(
            db_err.code(),
            &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
            "{sql}"
        );
        assert!(db_err.message().contains("append-only"), "{sql}");
    }
    assert_eq!(store.count_tool_calls().await.expect("count"), 1);
    drop(client);
    task.abort();
}

#[tokio::test]
async fn decisions_snapshots_and_policy_events_round_trip() {
    let (_db, store) = migrated().await;
    let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let decision = Decision {
        id: Uuid::new_v4(),
        decided_at: at,
        tick: 42,
        chain_id: 31337,
        pool: "0xpool".into(),
        input_hash: "0xhash".into(),
        state: json!({"B": "100", "Q": "200"}),
        model: "smollm2".into(),
        prompt_version: "p1".into(),
        tool_surface_version: "t1".into(),
        proposal: Some(json!({"action": "hold"})),
        baseline_proposal: Some(json!({"action": "hold"})),
        action_matches_baseline: Some(true),
        drift_bps: Some(0),
        drift: None,
        verdict: "allow".into(),
        matched_rule: Some("default".into()),
        simulation: None,
        tx_hash: None,
        mode: "observe".into(),
        trace_id: Some("tr".into()),
        error: None,
        block_number: Some(7),
        prompt_hash: Some("0xprompt".into()),
        model_digest: None,
        seed: Some(3),
        temperature: Some(0.5),
        raw_output: Some("{\"action\":\"hold\"}".into()),
        parse_error: None,
        risk: Some(json!({"verdict": "allow"})),
        latencies_ms: Some(json!({"total": 12})),
        worker: Some("w1".into()),
        lease_fence: Some(2),
    };
    assert!(store.insert_decision(&decision).await.expect("decision"));
    let again = Decision {
        id: Uuid::new_v4(),
        ..decision.clone()
    };
    assert!(
        !store.insert_decision(&again).await.expect("duplicate tick"),
        "a second decision for the same pool and tick must be refused"
    );
    assert_eq!(
        store
            .decisions_in_ticks(31337, 42, 42)
            .await
            .expect("ticks"),
        vec![decision.clone()]
    );
    assert_eq!(
        store
            .recent_decisions(31337, "0xpool", 10)
            .await
            .expect("recent"),
        vec![decision.clone()]
    );
    let window = store
        .decisions_between(at, at + chrono::Duration::seconds(1), 10)
        .await
        .expect("between");
    assert_eq!(window, vec![decision]);

    let snap = PoolSnapshot {
        taken_at: at,
        chain_id: 31337,
        pool: "0xpool".into(),
        block_number: 7,
        block_hash: Some("0xblock".into()),
        state_hash: "0xstate".into(),
        state: json!({"i": "1"}),
    };
    assert!(store.insert_snapshot(&snap).await.expect("snapshot"));
    assert!(
        !store
            .insert_snapshot(&snap)
            .await
            .expect("retry is a no-op")
    );
    let newer = PoolSnapshot {
        block_number: 8,
        state_hash: "0xstate8".into(),
        ..snap.clone()
    };
    assert!(store.insert_snapshot(&newer).await.expect("newer"));
    assert_eq!(
        store
            .latest_snapshot(31337, "0xpool")
            .await
            .expect("latest"),
        Some(newer)
    );
    assert_eq!(
        store.snapshot_by_hash("0xstate").await.expect("by hash"),
        Some(snap)
    );
    assert_eq!(
        store.latest_snapshot(1, "0xpool").await.expect("none"),
        None
    );

    let trip = PolicyEvent {
        occurred_at: at,
        chain_id: 31337,
        chain: Some("devnet".into()),
        block: Some(12),
        pool: Some("0xpool".into()),
        kind: PolicyEventKind::BreakerTrip,
        reason: Some("price moved 9%".into()),
        actor: "rule:breaker.price_move".into(),
        until: None,
        details: json!({"move_bps": 900}),
        trace_id: None,
    };
    let pause = PolicyEvent {
        occurred_at: at + chrono::Duration::seconds(5),
        pool: None,
        kind: PolicyEventKind::Pause,
        until: Some(at + chrono::Duration::hours(1)),
        ..trip.clone()
    };
    store.insert_policy_event(&trip).await.expect("trip");
    store.insert_policy_event(&pause).await.expect("pause");
    assert_eq!(
        store
            .recent_policy_events(31337, "0xpool", 10)
            .await
            .expect("events"),
        vec![pause, trip]
    );
}

fn scope(pool: u8) -> DailyCapScope {
    daily_cap_scope(
        &ChainName::new("devnet").expect("chain name"),
        Address::with_last_byte(pool),
    )
}

fn reservation(scope: &DailyCapScope, amount: U256, cap: U256) -> NotionalReservation {
    NotionalReservation {
        id: Uuid::new_v4(),
        scope: scope.clone(),
        at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        amount,
        cap,
    }
}

fn u(n: u64) -> U256 {
    U256::from(n)
}

#[tokio::test]
async fn ledger_reserves_within_the_cap_and_settles_once() {
    let (_db, store) = migrated().await;
    let day = Utc.timestamp_opt(1_800_000_000, 0).unwrap().date_naive();
    // Far beyond u128: the notional is a U256 from the policy to the NUMERIC column.
    let big = U256::from(10u8).pow(U256::from(60u8));
    let a = reservation(&scope(1), u(60) * big, u(100) * big);
    let ReserveOutcome::Reserved(usage) = store.reserve_notional(&a).await.expect("a") else {
        panic!("a should fit");
    };
    assert_eq!((usage.reserved, usage.committed), (u(60) * big, U256::ZERO));
    assert_eq!(
        usage.scope,
        format!("devnet:{:#x}", Address::with_last_byte(1))
    );

    let b = reservation(&scope(1), u(50) * big, u(100) * big);
    let ReserveOutcome::Denied(usage) = store.reserve_notional(&b).await.expect("b") else {
        panic!("b should be denied");
    };
    assert_eq!(usage.used(), u(60) * big);
    assert!(matches!(
        store.reserve_notional(&a).await,
        Err(StoreError::DuplicateReservation(id)) if id == a.id
    ));

    let usage = store.refund_notional(a.id).await.expect("refund");
    assert_eq!(usage.used(), U256::ZERO);
    assert!(matches!(
        store.commit_notional(a.id, u(60) * big).await,
        Err(StoreError::ReservationSettled { settlement, .. }) if settlement == "refund"
    ));
    assert!(matches!(
        store.commit_notional(b.id, u(50) * big).await,
        Err(StoreError::UnknownReservation(_))
    ));

    let c = reservation(&scope(1), u(40) * big, u(100) * big);
    assert!(matches!(
        store.reserve_notional(&c).await,
        Ok(ReserveOutcome::Reserved(_))
    ));
    // The chain moved a little less than reserved: the window books what it moved.
    let usage = store
        .commit_notional(c.id, u(40) * big - u(7))
        .await
        .expect("commit");
    assert_eq!(
        (usage.reserved, usage.committed),
        (U256::ZERO, u(40) * big - u(7))
    );
    assert_eq!(
        store.notional_usage(&scope(1), day).await.expect("usage"),
        usage
    );
    assert_eq!(
        store
            .notional_usage(&scope(3), day)
            .await
            .expect("empty")
            .used(),
        U256::ZERO
    );
}

#[tokio::test]
async fn concurrent_reservations_never_exceed_the_cap() {
    let (_db, store) = migrated().await;
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .reserve_notional(&reservation(&scope(2), u(10), u(100)))
                    .await
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if let ReserveOutcome::Reserved(_) = task.await.expect("join").expect("reserve") {
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
    let day = Utc.timestamp_opt(1_800_000_000, 0).unwrap().date_naive();
    assert_eq!(
        store
            .notional_usage(&scope(2), day)
            .await
            .expect("usage")
            .reserved,
        u(100)
    );
}

fn new_intent(key: &str, intent: serde_json::Value) -> NewIntent {
    NewIntent {
        key: key.into(),
        chain_id: 31337,
        pool: Some("0xpool".into()),
        intent,
        from_address: "0xfrom".into(),
        call: IntentCall {
            to: "0xto".into(),
            input: "0x".into(),
            gas_limit: 100_000,
        },
        reservation_id: None,
        notional: Some("400".into()),
        steps: json!({}),
    }
}

fn attempt(nonce: u64) -> Attempt {
    Attempt {
        attempt: 0,
        nonce,
        tx_hash: format!("0x{nonce:064x}"),
        raw_tx: "0x02".into(),
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
    }
}

#[tokio::test]
async fn intents_are_one_row_per_key_signed_once_at_gap_free_nonces_and_finish_once() {
    let (_db, store) = migrated().await;
    let add = json!({"tool": "dodo.add_liquidity", "base_amount": "1000"});
    let IntentStart::New(first) = store
        .create_intent(&new_intent("k1", add.clone()))
        .await
        .expect("insert")
    else {
        panic!("the first write of a key inserts");
    };
    let IntentStart::Existing(again) = store
        .create_intent(&new_intent("k1", add.clone()))
        .await
        .expect("retry")
    else {
        panic!("a retry finds the first row");
    };
    assert_eq!(again.id, first.id);
    assert!(matches!(
        store
            .create_intent(&new_intent("k1", json!({"tool": "dodo.remove_liquidity"})))
            .await,
        Err(StoreError::IdempotencyConflict(k)) if k == "k1"
    ));
    // Nonces: the node's pending count seeds the counter, each intent takes the next, and a
    // signed intent keeps its first signature.
    let signed = store
        .sign_with_next_nonce(first.id, 31337, "0xfrom", 7, |n| {
            Ok::<_, String>(attempt(n))
        })
        .await
        .expect("sign")
        .expect("signer");
    assert_eq!(signed.nonce, 7);
    let resigned = store
        .sign_with_next_nonce(first.id, 31337, "0xfrom", 7, |n| {
            Ok::<_, String>(attempt(n + 100))
        })
        .await
        .expect("sign again")
        .expect("signer");
    assert_eq!(resigned, signed, "never signed twice");
    let IntentStart::New(second) = store
        .create_intent(&new_intent("k2", add))
        .await
        .expect("second")
    else {
        panic!("a new key inserts");
    };
    let failed = store
        .sign_with_next_nonce(second.id, 31337, "0xfrom", 7, |_| Err("no key".to_owned()))
        .await
        .expect("store");
    assert_eq!(
        failed,
        Err("no key".to_owned()),
        "a signer error allocates nothing"
    );
    let n2 = store
        .sign_with_next_nonce(second.id, 31337, "0xfrom", 7, |n| {
            Ok::<_, String>(attempt(n))
        })
        .await
        .expect("sign")
        .expect("signer");
    assert_eq!(n2.nonce, 8);
    assert_eq!(
        store.signer_nonces(31337, "0xfrom").await.expect("nonces"),
        vec![7, 8]
    );
    assert_eq!(
        store
            .unfinished_intents(31337, "0xfrom")
            .await
            .expect("open")
            .len(),
        2
    );
    store.mark_sent(first.id).await.expect("sent");
    let done = Outcome {
        status: TxStatus::Confirmed,
        tx_hash: Some(signed.tx_hash.clone()),
        receipt: Some(json!({"status": 1})),
        revert_reason: None,
        gas_used: Some(90_000),
        error: None,
    };
    assert!(store.finish_intent(first.id, &done).await.expect("finish"));
    let late = Outcome {
        status: TxStatus::Failed,
        ..done.clone()
    };
    assert!(
        !store.finish_intent(first.id, &late).await.expect("late"),
        "a final outcome is never overwritten"
    );
    let row = store.intent_by_key("k1").await.expect("get").expect("row");
    assert_eq!(row.status, TxStatus::Confirmed);
    assert_eq!(row.gas_used, Some(90_000));
    assert_eq!(store.intent_by_key("nope").await.expect("none"), None);
    assert_eq!(
        store
            .unfinished_intents(31337, "0xfrom")
            .await
            .expect("open")
            .len(),
        1
    );
}

#[tokio::test]
async fn leases_have_one_holder_and_fence_changes_of_holder() {
    let (_db, store) = migrated().await;
    let ttl = Duration::from_secs(60);
    let a = store
        .acquire_lease("agent:1", "host-a", ttl)
        .await
        .expect("acquire")
        .expect("free lease");
    assert_eq!(a.fence, 1);
    assert_eq!(
        store
            .acquire_lease("agent:1", "host-b", ttl)
            .await
            .expect("busy"),
        None
    );
    let renewed = store.renew_lease(&a, ttl).await.expect("renew");
    assert_eq!(renewed.fence, 1);
    assert!(renewed.expires_at >= a.expires_at);
    let again = store
        .acquire_lease("agent:1", "host-a", ttl)
        .await
        .expect("reacquire")
        .expect("own lease");
    assert_eq!(again.fence, 1);

    assert!(store.release_lease(&a).await.expect("release"));
    let b = store
        .acquire_lease("agent:1", "host-b", ttl)
        .await
        .expect("acquire b")
        .expect("released lease is free");
    assert_eq!(b.fence, 2);
    assert!(matches!(
        store.renew_lease(&a, ttl).await,
        Err(StoreError::LeaseLost { holder, .. }) if holder == "host-a"
    ));
    assert!(!store.release_lease(&a).await.expect("stale release"));
    assert!(matches!(
        store.acquire_lease("x", "h", Duration::ZERO).await,
        Err(StoreError::InvalidInput { field: "ttl", .. })
    ));
}

#[tokio::test]
async fn leases_renew_together_and_a_lost_one_is_left_out() {
    let (_db, store) = migrated().await;
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    let mut held = Vec::new();
    for name in ["pool:a", "pool:b", "pool:c"] {
        held.push(
            store
                .acquire_lease(name, "host-a", short)
                .await
                .expect("acquire")
                .expect("free lease"),
        );
    }
    // pool:b is released and taken by host-b: its renewal must not steal it back.
    assert!(store.release_lease(&held[1]).await.expect("release"));
    let b = store
        .acquire_lease("pool:b", "host-b", long)
        .await
        .expect("acquire b")
        .expect("released lease is free");
    let renewed = store.renew_leases(&held, long).await.expect("renew");
    let names: Vec<&str> = renewed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(renewed.len(), 2, "{renewed:?}");
    assert!(
        names.contains(&"pool:a") && names.contains(&"pool:c"),
        "{names:?}"
    );
    for l in &renewed {
        assert_eq!(l.holder, "host-a");
        assert!(l.expires_at > held[0].expires_at + chrono::Duration::seconds(30));
    }
    // Renewed for a minute: past the short TTL, nobody else can take them.
    tokio::time::sleep(short * 2).await;
    assert_eq!(
        store
            .acquire_lease("pool:a", "host-b", long)
            .await
            .expect("busy"),
        None
    );
    assert_eq!(
        store
            .renew_lease(&b, long)
            .await
            .expect("b keeps it")
            .holder,
        "host-b"
    );
    assert!(
        store
            .renew_leases(&[], long)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(matches!(
        store.renew_leases(&renewed, Duration::ZERO).await,
        Err(StoreError::InvalidInput { field: "ttl", .. })
    ));
}
