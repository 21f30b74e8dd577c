//! A write's daily-cap reservation: one Redis script checks the cooldown and the cap, adds the
//! notional and sets the next cooldown, atomically across every replica; commit and refund
//! settle it once, however often they are retried. Postgres' `notional_ledger` mirrors each
//! step (Redis is the gate, Postgres the durable record `pmm-state bootstrap` rebuilds from).

use std::sync::LazyLock;

use alloy_primitives::{Address, U256};
use chrono::{DateTime, Utc};
use deadpool_redis::redis::Script;
use pmm_core::keys::{self, DailyCapScope};
use pmm_core::schema::ChainName;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::pg::PgStore;
use crate::redis::{DECIMAL_LUA, RedisStore};

/// Daily counters outlive their day by one day (as the plain cap counters do).
const COUNTER_TTL_SECS: u64 = 2 * 24 * 60 * 60;
/// A reservation record lives as long as its day's counter.
const RESERVATION_TTL_SECS: u64 = COUNTER_TTL_SECS;

/// Returns {code, value}: 1 reserved (used after), 0 over the cap (used), 3 cooling down
/// (next allowed time), 2 this id was reserved before (its record).
static RESERVE_WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DECIMAL_LUA}
local prior = redis.call('GET', KEYS[3])
if prior then return {{2, prior}} end
local now = tonumber(ARGV[4])
local cd = redis.call('GET', KEYS[2])
if cd then
  local t = tonumber(cd)
  if t == nil then return redis.error_reply('cooldown is not a number') end
  if t > now then return {{3, cd}} end
end
local amount, cap = norm(ARGV[1]), norm(ARGV[2])
if not valid(amount) or not valid(cap) then return redis.error_reply('amount or cap is not a decimal integer') end
local after = add(used, amount)
if cmp(after, cap) > 0 then return {{0, used}} end
redis.call('SET', KEYS[1], after, 'EX', ARGV[3])
local until_ts = tonumber(ARGV[5])
if until_ts > now then redis.call('SET', KEYS[2], ARGV[5], 'EXAT', ARGV[5]) end
redis.call('SET', KEYS[3], 'reserved:' .. amount, 'EX', ARGV[6])
return {{1, after}}
"
    ))
});

/// Returns {1, 'reserved'} when this call settled it, {0, state} when it was already settled
/// (or is unknown: state 'missing'). A commit replaces the reserved amount in the counter by
/// ARGV[2], what the write really spent.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DECIMAL_LUA}
local v = redis.call('GET', KEYS[2])
if not v then return {{0, 'missing'}} end
local state, amount = string.match(v, '^(%a+):(%d+)$')
if state ~= 'reserved' then return {{0, state or 'corrupt'}} end
if ARGV[1] == 'refund' then
  local after = '0'
  if cmp(amount, used) < 0 then after = sub(used, amount) end
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], after, 'KEEPTTL') end
  redis.call('SET', KEYS[2], 'refunded:' .. amount, 'KEEPTTL')
else
  local spent = norm(ARGV[2])
  if not valid(spent) then return redis.error_reply('spent is not a decimal integer') end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    local rest = '0'
    if cmp(amount, used) < 0 then rest = sub(used, amount) end
    redis.call('SET', KEYS[1], add(rest, spent), 'KEEPTTL')
  end
  redis.call('SET', KEYS[2], 'committed:' .. spent, 'KEEPTTL')
end
return {{1, 'reserved'}}
"
    ))
});

/// One reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReservation {
    /// Id; the commit or refund names it.
    pub id: Uuid,
    /// Chain name (cooldown key).
    pub chain: ChainName,
    /// Pool (cooldown key).
    pub pool: Address,
    /// Cap window.
    pub scope: DailyCapScope,
    /// UTC day number (`pmm_core::keys::utc_day`).
    pub day: u64,
    /// Notional, raw quote units.
    pub amount: U256,
    /// Daily cap, raw quote units.
    pub cap: U256,
    /// Now, unix seconds.
    pub now: u64,
    /// Cooldown to set on success: the next allowed write time (<= now sets none).
    pub cooldown_until: u64,
}

/// How a reservation came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveResult {
    /// Reserved; usage of the window afterwards.
    Reserved {
        /// Used after the reservation.
        used: U256,
    },
    /// The amount does not fit under the cap; nothing changed.
    OverCap {
        /// Used now.
        used: U256,
    },
    /// The pool is cooling down; nothing changed.
    CoolingDown {
        /// Next allowed write, unix seconds.
        until: u64,
    },
    /// This id was reserved before (a retry); its record.
    Exists(String),
}

/// How a settlement came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// This call committed or refunded it.
    Now,
    /// It was already settled or is unknown (a retry, or an expired record).
    Before,
}

fn parse_u256(location: &str, s: &str) -> Result<U256> {
    s.parse().map_err(|e| StoreError::Corrupt {
        location: location.to_owned(),
        reason: format!("{s:?}: {e}"),
    })
}

impl RedisStore {
    /// Checks cooldown and cap and reserves, atomically (see the module docs).
    pub async fn reserve_write(&self, r: &WriteReservation) -> Result<ReserveResult> {
        let counter = self.key(&keys::daily_notional_key(&r.scope, r.day));
        let cooldown = self.key(&keys::cooldown_key(&r.chain, r.pool));
        let record = self.key(&keys::reservation_key(&r.id.to_string()));
        let (code, value): (i64, String) = RESERVE_WRITE
            .key(&counter)
            .key(&cooldown)
            .key(&record)
            .arg(r.amount.to_string())
            .arg(r.cap.to_string())
            .arg(COUNTER_TTL_SECS)
            .arg(r.now)
            .arg(r.cooldown_until)
            .arg(RESERVATION_TTL_SECS)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(match code {
            1 => ReserveResult::Reserved {
                used: parse_u256(&counter, &value)?,
            },
            0 => ReserveResult::OverCap {
                used: parse_u256(&counter, &value)?,
            },
            3 => ReserveResult::CoolingDown {
                until: value.parse().map_err(|_| StoreError::Corrupt {
                    location: cooldown,
                    reason: format!("{value:?} is not a time"),
                })?,
            },
            _ => ReserveResult::Exists(value),
        })
    }

    /// Marks the reservation spent: the window counts `spent` (what the chain moved) in place
    /// of the reserved prediction.
    pub async fn commit_write(
        &self,
        id: Uuid,
        scope: &DailyCapScope,
        day: u64,
        spent: U256,
    ) -> Result<Settled> {
        self.settle_write(id, scope, day, "commit", spent).await
    }

    /// Gives the reservation's notional back to the window.
    pub async fn refund_write(&self, id: Uuid, scope: &DailyCapScope, day: u64) -> Result<Settled> {
        self.settle_write(id, scope, day, "refund", U256::ZERO)
            .await
    }

    async fn settle_write(
        &self,
        id: Uuid,
        scope: &DailyCapScope,
        day: u64,
        how: &str,
        spent: U256,
    ) -> Result<Settled> {
        let counter = self.key(&keys::daily_notional_key(scope, day));
        let record = self.key(&keys::reservation_key(&id.to_string()));
        let (code, _state): (i64, String) = SETTLE
            .key(&counter)
            .key(&record)
            .arg(how)
            .arg(spent.to_string())
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(if code == 1 {
            Settled::Now
        } else {
            Settled::Before
        })
    }
}

impl PgStore {
    /// Mirrors a Redis reservation into `notional_windows` / `notional_ledger` (no cap check
    /// here: the Redis script is the gate). A repeated id is [`StoreError::DuplicateReservation`].
    pub async fn mirror_reservation(
        &self,
        id: Uuid,
        scope: &DailyCapScope,
        at: DateTime<Utc>,
        amount: U256,
        cap: U256,
    ) -> Result<()> {
        let day = at.date_naive();
        let amount = amount.to_string();
        let cap = cap.to_string();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "INSERT INTO notional_windows (scope, window_day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&scope.as_str(), &day],
        )
        .await?;
        tx.execute(
            "UPDATE notional_windows SET reserved = reserved + $3::text::numeric, updated_at = now() \
             WHERE scope = $1 AND window_day = $2",
            &[&scope.as_str(), &day, &amount],
        )
        .await?;
        let inserted = tx
            .execute(
                "INSERT INTO notional_ledger \
                 (reservation_id, scope, window_day, kind, amount, cap, recorded_at) \
                 VALUES ($1, $2, $3, 'reserve', $4::text::numeric, $5::text::numeric, $6)",
                &[&id, &scope.as_str(), &day, &amount, &cap, &at],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::DuplicateReservation(id));
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(())
    }

    /// Committed notional of a window as an exact decimal (U256), for comparing with the chain.
    pub async fn committed_notional(
        &self,
        scope: &DailyCapScope,
        at: DateTime<Utc>,
    ) -> Result<U256> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT committed::text FROM notional_windows WHERE scope = $1 AND window_day = $2",
                &[&scope.as_str(), &at.date_naive()],
            )
            .await?;
        match row {
            Some(r) => parse_u256("notional_windows.committed", &r.try_get::<_, String>(0)?),
            None => Ok(U256::ZERO),
        }
    }
}
