//! `policy_events`: durable history of breaker trips and resets, cooldowns and pauses.

use std::fmt;
use std::str::FromStr;

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
    /// Pool address; `None` for a chain-wide event.
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

const COLUMNS: &str =
    "occurred_at, chain_id, pool, kind, reason, actor, until_at, details, trace_id";

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
        })
    }
}

impl PgStore {
    /// Records a policy event.
    pub async fn insert_policy_event(&self, e: &PolicyEvent) -> Result<()> {
        let chain_id = to_i64("chain_id", e.chain_id)?;
        self.conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO policy_events ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
}
