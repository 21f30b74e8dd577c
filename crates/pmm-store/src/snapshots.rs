//! `pool_snapshots`: normalized pool state as read at one block.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use crate::error::{Result, from_i64, to_i64};
use crate::pg::PgStore;

/// One row of `pool_snapshots`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSnapshot {
    /// When the state was read.
    pub taken_at: DateTime<Utc>,
    /// Chain id.
    pub chain_id: u64,
    /// Pool address.
    pub pool: String,
    /// Block the state was read at.
    pub block_number: u64,
    /// Hash of that block, when known.
    pub block_hash: Option<String>,
    /// Hash of the normalized state (what decisions reference).
    pub state_hash: String,
    /// The normalized state.
    pub state: Value,
}

const COLUMNS: &str = "taken_at, chain_id, pool, block_number, block_hash, state_hash, state";

impl PoolSnapshot {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(Self {
            taken_at: row.try_get("taken_at")?,
            chain_id: from_i64("pool_snapshots.chain_id", row.try_get("chain_id")?)?,
            pool: row.try_get("pool")?,
            block_number: from_i64("pool_snapshots.block_number", row.try_get("block_number")?)?,
            block_hash: row.try_get("block_hash")?,
            state_hash: row.try_get("state_hash")?,
            state: row.try_get("state")?,
        })
    }
}

impl PgStore {
    /// Writes a snapshot; returns false when the same read (pool, block, state hash) was
    /// already stored, which makes retries harmless.
    pub async fn insert_snapshot(&self, s: &PoolSnapshot) -> Result<bool> {
        let chain_id = to_i64("chain_id", s.chain_id)?;
        let block = to_i64("block_number", s.block_number)?;
        let n = self
            .conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO pool_snapshots ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT ON CONSTRAINT pool_snapshots_unique_read DO NOTHING"
                ),
                &[
                    &s.taken_at,
                    &chain_id,
                    &s.pool,
                    &block,
                    &s.block_hash,
                    &s.state_hash,
                    &s.state,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// The snapshot at the highest block of a pool.
    pub async fn latest_snapshot(&self, chain_id: u64, pool: &str) -> Result<Option<PoolSnapshot>> {
        let chain_id = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM pool_snapshots WHERE chain_id = $1 AND pool = $2 \
                     ORDER BY block_number DESC, id DESC LIMIT 1"
                ),
                &[&chain_id, &pool],
            )
            .await?
            .as_ref()
            .map(PoolSnapshot::from_row)
            .transpose()
    }

    /// A snapshot by its state hash (the input a decision was made on).
    pub async fn snapshot_by_hash(&self, state_hash: &str) -> Result<Option<PoolSnapshot>> {
        self.conn()
            .await?
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM pool_snapshots WHERE state_hash = $1 \
                     ORDER BY id LIMIT 1"
                ),
                &[&state_hash],
            )
            .await?
            .as_ref()
            .map(PoolSnapshot::from_row)
            .transpose()
    }
}
