//! `policy_events`: durable history of breaker trips and resets, cooldowns and pauses, and the
//! record Redis' policy state is rebuilt from.
//!
//! A row is written before its change takes effect in Redis, so Redis never holds a trip,
//! resume, pause or cooldown that this table does not. Pools are stored as lowercase hex;
//! `pool IS NULL` is a chain-wide event (the global pause).

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use crate::error::{Result, StoreError, from_i64, to_i64};
use crate::pg::PgStore;

/// What happened to the policy state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyEventKind {
    /// A circuit breaker tripped.
    BreakerTrip,
    /// A circuit breaker was reset.
    BreakerReset,
    /// A cooldown was set.
    CooldownSet,
    /// Actions were paused.
    Pause,
    /// Actions were resumed.
    Resume,
}

impl PolicyEventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BreakerTrip => "breaker_trip",
            Self::BreakerReset => "breaker_reset",
            Self::CooldownSet => "cooldown_set",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

impl fmt::Display for PolicyEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyEventKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "breaker_trip" => Self::BreakerTrip,
            "breaker_reset" => Self::BreakerReset,
            "cooldown_set" => Self::CooldownSet,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            other => {
                return Err(StoreError::Corrupt {
                    location: "policy_events.kind".into(),
                    reason: format!("unknown kind {other:?}"),
                });
            }
        })
    }
}

/// One row of `policy_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEvent {
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Chain id.
    pub chain_id: u64,
    /// Chain short name, as the Redis keys spell it; rows without one are not rebuilt.
    pub chain: Option<String>,
    /// Block the event was decided at, when a block decided it.
    pub block: Option<u64>,
    /// Pool address (lowercase hex, see [`pool_text`]); `None` for a chain-wide event.
    pub pool: Option<String>,
    /// What happened.
    pub kind: PolicyEventKind,
    /// Why.
    pub reason: Option<String>,
    /// Who or what caused it (rule id, operator, daemon).
    pub actor: String,
    /// End of a cooldown or pause, when it has one.
    pub until: Option<DateTime<Utc>>,
    /// Further detail.
    pub details: Value,
    /// Trace id.
    pub trace_id: Option<String>,
}

const COLUMNS: &str = "occurred_at, chain_id, pool, kind, reason, actor, until_at, details, \
     trace_id, chain, block_number";

/// How a pool is spelled in `policy_events.pool`: lowercase `0x` hex.
pub fn pool_text(pool: Address) -> String {
    format!("{pool:#x}")
}

/// A breaker (or the global pause, `pool = None`) that the table says is tripped: the first
/// trip or pause after the last reset or resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveTrip {
    /// Chain short name.
    pub chain: String,
    /// Pool; `None` for the global pause.
    pub pool: Option<Address>,
    /// The first trip's reason.
    pub reason: String,
    /// When it happened, Unix seconds.
    pub ts: u64,
}

/// The latest cooldown of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCooldown {
    /// Chain short name.
    pub chain: String,
    /// Pool.
    pub pool: Address,
    /// Unix seconds before which no write is allowed.
    pub until: u64,
}

fn parse_pool(location: &str, raw: &str) -> Result<Address> {
    raw.parse().map_err(|e| StoreError::Corrupt {
        location: location.to_owned(),
        reason: format!("{raw:?}: {e}"),
    })
}

fn unix(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

impl PolicyEvent {
    fn from_row(row: &Row) -> Result<Self> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            occurred_at: row.try_get("occurred_at")?,
            chain_id: from_i64("policy_events.chain_id", row.try_get("chain_id")?)?,
            pool: row.try_get("pool")?,
            kind: kind.parse()?,
            reason: row.try_get("reason")?,
            actor: row.try_get("actor")?,
            until: row.try_get("until_at")?,
            details: row.try_get("details")?,
            trace_id: row.try_get("trace_id")?,
            chain: row.try_get("chain")?,
            block: row
                .try_get::<_, Option<i64>>("block_number")?
                .map(|b| from_i64("policy_events.block_number", b))
                .transpose()?,
        })
    }
}

impl PgStore {
    /// Records a policy event.
    pub async fn insert_policy_event(&self, e: &PolicyEvent) -> Result<()> {
        let chain_id = to_i64("chain_id", e.chain_id)?;
        let block = e.block.map(|b| to_i64("block", b)).transpose()?;
        self.conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO policy_events ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ),
                &[
                    &e.occurred_at,
                    &chain_id,
                    &e.pool,
                    &e.kind.as_str(),
                    &e.reason,
                    &e.actor,
                    &e.until,
                    &e.details,
                    &e.trace_id,
                    &e.chain,
                    &block,
                ],
            )
            .await?;
        Ok(())
    }

    /// The latest events of one pool (chain-wide events included), newest first.
    pub async fn recent_policy_events(
        &self,
        chain_id: u64,
        pool: &str,
        limit: u32,
    ) -> Result<Vec<PolicyEvent>> {
        let chain_id = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM policy_events WHERE chain_id = $1 \
                     AND (pool = $2 OR pool IS NULL) ORDER BY occurred_at DESC, id DESC LIMIT $3"
                ),
                &[&chain_id, &pool, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(PolicyEvent::from_row)
            .collect()
    }

    /// Every breaker and global pause the table says is tripped: per (chain, pool), the first
    /// `breaker_trip` or `pause` after the last `breaker_reset` or `resume`.
    pub async fn active_trips(&self) -> Result<Vec<ActiveTrip>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT DISTINCT ON (e.chain, e.pool) e.chain, e.pool, e.reason, e.occurred_at \
                 FROM policy_events e \
                 WHERE e.chain IS NOT NULL AND e.kind IN ('breaker_trip', 'pause') \
                 AND e.id > COALESCE((SELECT max(r.id) FROM policy_events r \
                     WHERE r.chain = e.chain AND r.pool IS NOT DISTINCT FROM e.pool \
                     AND r.kind IN ('breaker_reset', 'resume')), 0) \
                 ORDER BY e.chain, e.pool, e.id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let pool: Option<String> = row.try_get(1)?;
                Ok(ActiveTrip {
                    chain: row.try_get(0)?,
                    pool: pool
                        .map(|p| parse_pool("policy_events.pool", &p))
                        .transpose()?,
                    reason: row.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
                    ts: unix(row.try_get(3)?),
                })
            })
            .collect()
    }

    /// The latest cooldown of every pool that still runs at `now` (Unix seconds).
    pub async fn active_cooldowns(&self, now: u64) -> Result<Vec<ActiveCooldown>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT DISTINCT ON (chain, pool) chain, pool, until_at FROM policy_events \
                 WHERE kind = 'cooldown_set' AND chain IS NOT NULL AND pool IS NOT NULL \
                 AND until_at IS NOT NULL ORDER BY chain, pool, id DESC",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let until = unix(row.try_get(2)?);
            if until > now {
                out.push(ActiveCooldown {
                    chain: row.try_get(0)?,
                    pool: parse_pool("policy_events.pool", &row.try_get::<_, String>(1)?)?,
                    until,
                });
            }
        }
        Ok(out)
    }
}
