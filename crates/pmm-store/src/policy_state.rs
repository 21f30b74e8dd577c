//! The policy state as one thing: Postgres is the durable record, Redis the fast copy every
//! replica reads, and these functions are the only way to change it.
//!
//! * Every trip, resume, pause and cooldown is written to `policy_events` first, then applied
//!   to Redis, so a flushed or restarted Redis can be rebuilt with [`rebuild`] and a flush can
//!   never reopen a pool. A resume whose row cannot be written does not happen.
//! * An automatic trip or a pause never overwrites a breaker that is already tripped: the
//!   first reason and time are kept, and no second row is written for it.
//! * [`rebuild`] only ever adds: breakers Redis does not hold, cooldowns and daily counters
//!   raised to what Postgres says. It writes the bootstrap marker last; until then (or after a
//!   flush) [`availability`] reports the state as lost and the hub denies every write.
//! * A single key can be lost too, evicted under memory pressure: [`rebuild`] sets
//!   `maxmemory-policy noeviction`, and [`availability`] reports the state as unavailable
//!   whenever the server says otherwise.

use alloy_primitives::Address;
use chrono::{DateTime, Utc};
use pmm_core::keys::{BreakerState, daily_cap_scope, utc_day};
use pmm_core::schema::ChainName;
use serde_json::json;

use crate::error::{Result, StoreError};
use crate::policy_events::{PolicyEvent, PolicyEventKind, pool_text};
use crate::redis::{
    BootstrapOutcome, EvictionOutcome, REDIS_SCHEMA_VERSION, REQUIRED_EVICTION_POLICY,
};
use crate::{PgStore, RedisStore};

/// Who changes a breaker, and at which block the change was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    /// Chain id (the `policy_events.chain_id` column).
    pub chain_id: u64,
    /// Chain short name, as the Redis keys spell it.
    pub chain: &'a ChainName,
    /// The pool; `None` for the global pause of every pool.
    pub pool: Option<Address>,
    /// Operator name, or the daemon (`pool-monitor`).
    pub actor: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Block the decision was made at, when one was.
    pub block: Option<u64>,
    /// When, Unix seconds.
    pub now: u64,
}

fn at(now: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(now).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

fn event(c: &Change<'_>, kind: PolicyEventKind, until: Option<u64>) -> PolicyEvent {
    PolicyEvent {
        occurred_at: at(c.now),
        chain_id: c.chain_id,
        chain: Some(c.chain.to_string()),
        block: c.block,
        pool: c.pool.map(pool_text),
        kind,
        reason: Some(c.reason.to_owned()),
        actor: c.actor.to_owned(),
        until: until.map(at),
        details: json!({}),
        trace_id: None,
    }
}

/// What a trip or pause did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripOutcome {
    /// The breaker as stored afterwards (an earlier trip's when one was kept).
    pub state: BreakerState,
    /// Whether this call tripped it (and wrote its `policy_events` row).
    pub tripped_now: bool,
}

/// Trips a breaker (`kind` = [`PolicyEventKind::BreakerTrip`] for the monitor,
/// [`PolicyEventKind::Pause`] for an operator) unless it is already tripped. Tripping only ever
/// blocks writes, so when Postgres is missing or refuses the row the trip still happens in
/// Redis and the error is returned with it: the caller logs that the trip is not durable.
pub async fn trip(
    pg: Option<&PgStore>,
    redis: &RedisStore,
    kind: PolicyEventKind,
    c: &Change<'_>,
) -> Result<(TripOutcome, Option<StoreError>)> {
    let existing = match c.pool {
        Some(pool) => redis.breaker(c.chain, pool).await?,
        None => redis.global_breaker(c.chain).await?,
    };
    if let Some(state) = existing.filter(|b| b.tripped) {
        return Ok((
            TripOutcome {
                state,
                tripped_now: false,
            },
            None,
        ));
    }
    let recorded = match pg {
        Some(pg) => pg.insert_policy_event(&event(c, kind, None)).await.err(),
        None => Some(StoreError::InvalidInput {
            field: "database_url",
            reason: "no Postgres configured: the trip is not durable".into(),
        }),
    };
    let (state, tripped_now) = redis.trip_breaker(c.chain, c.pool, c.reason, c.now).await?;
    Ok((TripOutcome { state, tripped_now }, recorded))
}

/// Clears a breaker (or the global pause) for an operator: the `resume` row is written first,
/// and without it nothing changes. Returns whether it was tripped.
pub async fn resume(pg: &PgStore, redis: &RedisStore, c: &Change<'_>) -> Result<bool> {
    pg.insert_policy_event(&event(c, PolicyEventKind::Resume, None))
        .await?;
    redis.reset_breaker(c.chain, c.pool).await
}

/// Sets a pool's cooldown until `until` (Unix seconds): the `cooldown_set` row first, then
/// Redis; without the row nothing changes.
pub async fn set_cooldown(
    pg: &PgStore,
    redis: &RedisStore,
    c: &Change<'_>,
    until: u64,
) -> Result<()> {
    let pool = c.pool.ok_or(StoreError::InvalidInput {
        field: "pool",
        reason: "a cooldown belongs to one pool".into(),
    })?;
    pg.insert_policy_event(&event(c, PolicyEventKind::CooldownSet, Some(until)))
        .await?;
    redis.set_cooldown(c.chain, pool, until).await
}

/// Whether Redis' policy state can be trusted: `Err` says why not (no bootstrap marker, one
/// of another version, or a server that may evict keys). A missing key in an untrusted Redis
/// may be a lost one. One round trip, so every policy check can afford it.
pub async fn availability(redis: &RedisStore) -> Result<std::result::Result<(), String>> {
    let (version, eviction) = redis.state_guard().await?;
    let marker = match version {
        Some(v) if v == REDIS_SCHEMA_VERSION => Ok(()),
        Some(v) => Err(format!(
            "bootstrap marker is version {v}, expected {REDIS_SCHEMA_VERSION} (run pmm-state \
             bootstrap)"
        )),
        None => Err(
            "bootstrap marker missing: Redis lost its state or was never bootstrapped (run \
             pmm-state bootstrap)"
                .into(),
        ),
    };
    Ok(marker.and_then(|()| match eviction.as_deref() {
        Some(REQUIRED_EVICTION_POLICY) => Ok(()),
        found => Err(format!(
            "maxmemory-policy is {}: Redis may evict a breaker, cooldown or cap key, which \
             would read as clear (set maxmemory-policy {REQUIRED_EVICTION_POLICY}; pmm-state \
             bootstrap does)",
            found.unwrap_or("unreported")
        )),
    }))
}

/// What [`rebuild`] restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Breakers and global pauses written back.
    pub breakers: usize,
    /// Cooldowns raised.
    pub cooldowns: usize,
    /// Daily counters raised.
    pub counters: usize,
    /// What happened to the server's `maxmemory-policy`.
    pub eviction: EvictionOutcome,
    /// What happened to the marker.
    pub marker: BootstrapOutcome,
}

/// Makes sure Redis cannot evict a key (`maxmemory-policy noeviction`), rebuilds its
/// breakers, pauses, cooldowns and today's (`now`'s UTC day) usage from Postgres, then writes
/// the bootstrap marker. Safe to run any number of times. A server that cannot be set to
/// `noeviction` gets no marker: the hub keeps denying writes.
pub async fn rebuild(pg: &PgStore, redis: &RedisStore, now: u64) -> Result<RebuildReport> {
    let eviction = redis.ensure_noeviction().await?;
    let chain_of = |name: &str| {
        ChainName::new(name).map_err(|e| StoreError::Corrupt {
            location: "policy_events.chain".into(),
            reason: e.to_string(),
        })
    };
    let mut breakers = 0;
    for t in pg.active_trips().await? {
        let chain = chain_of(&t.chain)?;
        let (_, set) = redis.trip_breaker(&chain, t.pool, &t.reason, t.ts).await?;
        breakers += usize::from(set);
    }
    let mut cooldowns = 0;
    for c in pg.active_cooldowns(now).await? {
        let chain = chain_of(&c.chain)?;
        if redis.cooldown(&chain, c.pool).await?.unwrap_or(0) < c.until {
            redis.set_cooldown(&chain, c.pool, c.until).await?;
            cooldowns += 1;
        }
    }
    let mut counters = 0;
    let day = utc_day(now);
    let date = at(now).date_naive();
    for w in pg.windows_of_day(date).await? {
        let parsed = w
            .scope
            .split_once(':')
            .and_then(|(c, p)| Some((ChainName::new(c).ok()?, p.parse::<Address>().ok()?)));
        let Some((chain, pool)) = parsed else {
            return Err(StoreError::Corrupt {
                location: "notional_windows.scope".into(),
                reason: format!("{:?} is not <chain>:<pool>", w.scope),
            });
        };
        let scope = daily_cap_scope(&chain, pool);
        let before = redis.daily_cap_used(&scope, day).await?;
        let used = w.used();
        if used > before {
            redis.restore_daily_cap(&scope, day, used).await?;
            counters += 1;
        }
    }
    let marker = redis.bootstrap().await?;
    Ok(RebuildReport {
        breakers,
        cooldowns,
        counters,
        eviction,
        marker,
    })
}
