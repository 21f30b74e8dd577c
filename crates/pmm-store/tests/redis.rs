//! Store-layer tests on a real Redis: one fresh key namespace per test.

use alloy_primitives::{Address, U256, address};
use pmm_core::keys::{BreakerState, DailyCapScope, daily_cap_scope, utc_day};
use pmm_core::schema::ChainName;
use pmm_store::redis::REDIS_SCHEMA_VERSION;
use pmm_store::{BootstrapOutcome, RedisStore, StoreError};
use pmm_testkit::db::TestRedis;

/// Mixed case on purpose: keys must hold the lowercase spelling.
const POOL: Address = address!("00000000000000000000000000000000000000aB");

fn u(n: u128) -> U256 {
    U256::from(n)
}

fn store(ns: &TestRedis) -> RedisStore {
    RedisStore::connect(ns.url(), ns.namespace()).expect("redis pool")
}

fn chain(name: &str) -> ChainName {
    ChainName::new(name).expect("chain name")
}

fn devnet() -> ChainName {
    chain("devnet")
}

fn scope(pool: Address) -> DailyCapScope {
    daily_cap_scope(&devnet(), pool)
}

/// 2027-03-04, UTC day 20881.
fn day() -> u64 {
    utc_day(1_804_150_000)
}

#[tokio::test]
async fn breaker_trip_and_reset_are_seen_by_a_new_client() {
    let ns = TestRedis::new();
    let first = store(&ns);
    assert_eq!(first.breaker(&devnet(), POOL).await.expect("get"), None);
    let (stored, set) = first
        .trip_breaker(&devnet(), Some(POOL), "oracle stale", 1_800_000_000)
        .await
        .expect("trip");
    assert!(set);
    // A second trip keeps the first reason and time.
    let (kept, set) = first
        .trip_breaker(&devnet(), Some(POOL), "oracle deviation", 1_800_000_100)
        .await
        .expect("trip again");
    assert!(!set);
    assert_eq!(kept, stored);

    let second = store(&ns);
    let expected = BreakerState {
        tripped: true,
        reason: "oracle stale".into(),
        ts: 1_800_000_000,
    };
    assert_eq!(stored, expected);
    assert_eq!(
        second.breaker(&devnet(), POOL).await.expect("get"),
        Some(expected)
    );
    assert_eq!(
        ns.keys().expect("keys"),
        vec![format!(
            "{}cb:devnet:0x00000000000000000000000000000000000000ab",
            ns.namespace()
        )]
    );
    assert_eq!(
        second
            .breaker(&chain("ethereum"), POOL)
            .await
            .expect("other chain"),
        None
    );
    assert_eq!(
        second
            .breaker(&devnet(), Address::with_last_byte(1))
            .await
            .expect("other pool"),
        None
    );

    assert!(
        second
            .reset_breaker(&devnet(), Some(POOL))
            .await
            .expect("reset")
    );
    assert!(
        !second
            .reset_breaker(&devnet(), Some(POOL))
            .await
            .expect("reset again")
    );
    assert_eq!(
        store(&ns).breaker(&devnet(), POOL).await.expect("get"),
        None
    );
}

#[tokio::test]
async fn a_corrupt_breaker_value_is_an_error_not_an_open_breaker() {
    let ns = TestRedis::new();
    let s = store(&ns);
    let client = deadpool_redis::redis::Client::open(ns.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let key = format!(
        "{}{}",
        ns.namespace(),
        pmm_core::keys::breaker_key(&devnet(), POOL)
    );
    // Not JSON, an unknown field, and the old signed-timestamp shape: all unreadable.
    for raw in [
        "not json",
        r#"{"tripped":true,"reason":"r","ts":1,"by":"x"}"#,
        r#"{"tripped":true,"reason":"r","ts":-1}"#,
    ] {
        let () = deadpool_redis::redis::cmd("SET")
            .arg(&key)
            .arg(raw)
            .query_async(&mut conn)
            .await
            .expect("set");
        assert!(
            matches!(
                s.breaker(&devnet(), POOL).await,
                Err(StoreError::Corrupt { .. })
            ),
            "{raw}"
        );
    }
}

#[tokio::test]
async fn cooldowns_hold_the_next_allowed_time_and_vanish_once_passed() {
    let ns = TestRedis::new();
    let s = store(&ns);
    let later = u64::try_from(chrono::Utc::now().timestamp()).expect("positive") + 3_600;
    s.set_cooldown(&devnet(), POOL, later).await.expect("set");
    assert_eq!(
        store(&ns).cooldown(&devnet(), POOL).await.expect("get"),
        Some(later)
    );
    assert_eq!(
        ns.keys().expect("keys"),
        vec![format!(
            "{}cooldown:devnet:0x00000000000000000000000000000000000000ab",
            ns.namespace()
        )]
    );
    assert_eq!(
        s.cooldown(&chain("bsc"), POOL).await.expect("other chain"),
        None
    );
    s.set_cooldown(&devnet(), POOL, 1_000)
        .await
        .expect("set past");
    assert_eq!(s.cooldown(&devnet(), POOL).await.expect("get"), None);
    assert_eq!(
        s.cooldown(&devnet(), Address::with_last_byte(2))
            .await
            .expect("get"),
        None
    );
}

#[tokio::test]
async fn daily_cap_reservations_are_atomic_across_clients() {
    let ns = TestRedis::new();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = store(&ns);
            tokio::spawn(
                async move { s.reserve_daily_cap(&scope(POOL), day(), u(7), u(100)).await },
            )
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        let r = t.await.expect("join").expect("reserve");
        if r.granted {
            granted += 1;
        }
        assert!(r.used <= 100);
    }
    assert_eq!(granted, 14);
    let s = store(&ns);
    assert_eq!(
        s.daily_cap_used(&scope(POOL), day()).await.expect("used"),
        98
    );
    let denied = s
        .reserve_daily_cap(&scope(POOL), day(), u(3), u(100))
        .await
        .expect("deny");
    assert!(!denied.granted);
    assert_eq!(denied.used, 98);
    assert_eq!(
        s.release_daily_cap(&scope(POOL), day(), u(8))
            .await
            .expect("release"),
        90
    );
    assert_eq!(
        s.release_daily_cap(&scope(POOL), day(), u(1_000))
            .await
            .expect("floor"),
        0
    );
    assert_eq!(
        s.release_daily_cap(&scope(POOL), day(), u(5))
            .await
            .expect("empty"),
        0
    );
    assert!(
        s.reserve_daily_cap(&scope(POOL), day(), u(100), u(100))
            .await
            .expect("full")
            .granted
    );
    assert_eq!(
        s.daily_cap_used(&scope(Address::with_last_byte(2)), day())
            .await
            .expect("other pool"),
        0
    );
    assert_eq!(
        s.daily_cap_used(&scope(POOL), day() + 1)
            .await
            .expect("next day"),
        0
    );
}

#[tokio::test]
async fn daily_caps_hold_amounts_far_beyond_two_to_the_53() {
    let ns = TestRedis::new();
    let s = store(&ns);
    let one_token: u128 = 10u128.pow(18);
    let cap = 1_000_000 * one_token;
    let a = 999_999 * one_token + 999_999_999_999_999_999;
    let r = s
        .reserve_daily_cap(&scope(POOL), day(), u(a), u(cap))
        .await
        .expect("a");
    assert!(r.granted);
    assert_eq!(r.used, a);
    let r = s
        .reserve_daily_cap(&scope(POOL), day(), u(2), u(cap))
        .await
        .expect("over by 1");
    assert!(!r.granted);
    assert_eq!(r.used, a);
    let r = s
        .reserve_daily_cap(&scope(POOL), day(), u(1), u(cap))
        .await
        .expect("exactly the cap");
    assert!(r.granted);
    assert_eq!(r.used, cap);
    assert_eq!(
        s.release_daily_cap(&scope(POOL), day(), u(one_token + 7))
            .await
            .expect("release"),
        cap - one_token - 7
    );
    let big = u128::MAX / 2;
    let wide = daily_cap_scope(&chain("ethereum"), POOL);
    assert!(
        s.reserve_daily_cap(&wide, day(), u(big), u(u128::MAX))
            .await
            .expect("wide")
            .granted
    );
    assert_eq!(
        s.reserve_daily_cap(&wide, day(), u(big), u(u128::MAX))
            .await
            .expect("wide 2")
            .used,
        big * 2
    );
    // Past u128: the counter is a U256 end to end, never narrowed.
    let huge = U256::from(1u8) << 200;
    let widest = daily_cap_scope(&chain("bsc"), POOL);
    let r = s
        .reserve_daily_cap(&widest, day(), huge, U256::MAX)
        .await
        .expect("huge");
    assert!(r.granted);
    assert_eq!(r.used, huge);
    assert_eq!(
        s.restore_daily_cap(&widest, day(), huge + U256::from(1u8))
            .await
            .expect("restore raises"),
        huge + U256::from(1u8)
    );
    assert_eq!(
        s.restore_daily_cap(&widest, day(), U256::from(1u8))
            .await
            .expect("restore never lowers"),
        huge + U256::from(1u8)
    );
    assert_eq!(
        ns.keys().expect("keys"),
        vec![
            format!(
                "{}notional:bsc:0x00000000000000000000000000000000000000ab:20881",
                ns.namespace()
            ),
            format!(
                "{}notional:devnet:0x00000000000000000000000000000000000000ab:20881",
                ns.namespace()
            ),
            format!(
                "{}notional:ethereum:0x00000000000000000000000000000000000000ab:20881",
                ns.namespace()
            ),
        ]
    );
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_refuses_a_newer_layout() {
    let ns = TestRedis::new();
    let s = store(&ns);
    s.ping().await.expect("ping");
    assert!(!s.server_info().await.expect("info").version.is_empty());
    assert_eq!(s.schema_version().await.expect("none yet"), None);
    assert_eq!(
        s.bootstrap().await.expect("first"),
        BootstrapOutcome::Created
    );
    assert_eq!(
        s.bootstrap().await.expect("second"),
        BootstrapOutcome::Unchanged
    );
    assert_eq!(
        s.schema_version().await.expect("set"),
        Some(REDIS_SCHEMA_VERSION)
    );

    let client = deadpool_redis::redis::Client::open(ns.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let key = format!("{}pmm:schema_version", ns.namespace());
    let () = deadpool_redis::redis::cmd("SET")
        .arg(&key)
        .arg(REDIS_SCHEMA_VERSION + 1)
        .query_async(&mut conn)
        .await
        .expect("set newer");
    assert!(matches!(
        s.bootstrap().await,
        Err(StoreError::RedisSchemaNewer { found, .. }) if found == REDIS_SCHEMA_VERSION + 1
    ));
    let () = deadpool_redis::redis::cmd("SET")
        .arg(&key)
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("set older");
    assert_eq!(
        s.bootstrap().await.expect("upgrade"),
        BootstrapOutcome::Upgraded { from: 0 }
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_typed_error_without_credentials() {
    let s = RedisStore::connect("redis://:hunter2@127.0.0.1:1", "").expect("lazy pool");
    let err = s.ping().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::RedisUnavailable { endpoint, .. } if endpoint == "127.0.0.1:1")
    );
    assert!(!err.to_string().contains("hunter2"));
    assert!(matches!(
        RedisStore::connect("http://nope", ""),
        Err(StoreError::InvalidRedisUrl(_))
    ));
}

#[test]
fn test_namespace_keys_are_removed_on_drop() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ns = TestRedis::new();
    let probe = TestRedis::new();
    let namespace = ns.namespace().to_owned();
    runtime.block_on(async {
        store(&ns)
            .trip_breaker(&devnet(), Some(POOL), "r", 1)
            .await
            .expect("trip");
    });
    assert_eq!(ns.keys().expect("keys").len(), 1);
    drop(ns);
    let client = deadpool_redis::redis::Client::open(probe.url()).expect("client");
    let mut conn = client.get_connection().expect("conn");
    let left: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{namespace}*"))
        .query(&mut conn)
        .expect("keys");
    assert!(left.is_empty());
}

#[tokio::test]
async fn a_committed_write_counts_what_it_spent_and_settles_once() {
    let ns = TestRedis::new();
    let s = store(&ns);
    let reserve = |id: uuid::Uuid, amount: u128| pmm_store::WriteReservation {
        id,
        chain: devnet(),
        pool: POOL,
        scope: scope(POOL),
        day: day(),
        amount: u(amount),
        cap: u(1_000),
        now: 1_804_150_000,
        cooldown_until: 0,
    };
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (id, amount) in [(a, 400), (b, 400)] {
        assert!(matches!(
            s.reserve_write(&reserve(id, amount))
                .await
                .expect("reserve"),
            pmm_store::ReserveResult::Reserved { .. }
        ));
    }
    // The chain moved 393 of the 400 reserved: the window counts 393, never the prediction.
    assert_eq!(
        s.commit_write(a, &scope(POOL), day(), u(393))
            .await
            .expect("commit"),
        pmm_store::Settled::Now
    );
    assert_eq!(
        s.daily_cap_used(&scope(POOL), day()).await.expect("used"),
        793
    );
    assert_eq!(
        s.commit_write(a, &scope(POOL), day(), u(400))
            .await
            .expect("again"),
        pmm_store::Settled::Before
    );
    assert_eq!(
        s.refund_write(a, &scope(POOL), day()).await.expect("late"),
        pmm_store::Settled::Before
    );
    s.refund_write(b, &scope(POOL), day())
        .await
        .expect("refund");
    assert_eq!(
        s.daily_cap_used(&scope(POOL), day()).await.expect("used"),
        393
    );
}
