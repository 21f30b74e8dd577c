//! `transactions`: every transaction the hub builds, upserted by idempotency key.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Result, StoreError, from_i64, to_i64};
use crate::pg::PgStore;

/// Lifecycle of a transaction. Statuses only move forward; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxStatus {
    /// Built, not signed.
    Pending,
    /// Signed, not sent.
    Signed,
    /// Sent, no receipt yet.
    Sent,
    /// Mined with success.
    Confirmed,
    /// Mined and reverted, or rejected.
    Failed,
    /// Never mined (replaced or expired).
    Dropped,
}

impl TxStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signed => "signed",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }

    /// Whether no further update is accepted.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed | Self::Dropped)
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TxStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "signed" => Self::Signed,
            "sent" => Self::Sent,
            "confirmed" => Self::Confirmed,
            "failed" => Self::Failed,
            "dropped" => Self::Dropped,
            other => {
                return Err(StoreError::Corrupt {
                    location: "transactions.status".into(),
                    reason: format!("unknown status {other:?}"),
                });
            }
        })
    }
}

/// What a caller writes: the intent and whatever is known so far.
#[derive(Debug, Clone, PartialEq)]
pub struct TxRecord {
    /// Caller-chosen key; the same key always means the same intent.
    pub idempotency_key: String,
    /// Chain id.
    pub chain_id: u64,
    /// Pool the transaction acts on.
    pub pool: Option<String>,
    /// Decoded intent (action, amounts, pool); compared on every upsert.
    pub intent: Value,
    /// Sender address.
    pub from_address: Option<String>,
    /// Nonce, once assigned.
    pub nonce: Option<u64>,
    /// Transaction hash, once signed.
    pub tx_hash: Option<String>,
    /// Status.
    pub status: TxStatus,
    /// Receipt, once mined.
    pub receipt: Option<Value>,
    /// Error text for failed or dropped transactions.
    pub error: Option<String>,
}

/// A stored transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTx {
    /// Row id.
    pub id: Uuid,
    /// The current values.
    pub record: TxRecord,
    /// First write.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub enum TxUpsert {
    /// A new row.
    Inserted(StoredTx),
    /// The existing row moved forward.
    Updated(StoredTx),
    /// The existing row is final or further along; nothing changed. The stored row.
    Unchanged(StoredTx),
}

impl TxUpsert {
    /// The row after the call.
    pub fn stored(&self) -> &StoredTx {
        match self {
            Self::Inserted(t) | Self::Updated(t) | Self::Unchanged(t) => t,
        }
    }
}

const COLUMNS: &str = "id, idempotency_key, chain_id, pool, intent, from_address, nonce, \
    tx_hash, status, receipt, error, created_at, updated_at";

impl StoredTx {
    fn from_row(row: &Row) -> Result<Self> {
        let nonce: Option<i64> = row.try_get("nonce")?;
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            record: TxRecord {
                idempotency_key: row.try_get("idempotency_key")?,
                chain_id: from_i64("transactions.chain_id", row.try_get("chain_id")?)?,
                pool: row.try_get("pool")?,
                intent: row.try_get("intent")?,
                from_address: row.try_get("from_address")?,
                nonce: nonce
                    .map(|n| from_i64("transactions.nonce", n))
                    .transpose()?,
                tx_hash: row.try_get("tx_hash")?,
                status: status.parse()?,
                receipt: row.try_get("receipt")?,
                error: row.try_get("error")?,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl PgStore {
    /// Inserts the transaction or moves the stored one forward. Fields left `None` keep their
    /// stored value; a status never moves backwards and a final row never changes. The same key
    /// with a different intent is refused.
    pub async fn upsert_transaction(&self, t: &TxRecord) -> Result<TxUpsert> {
        let chain_id = to_i64("chain_id", t.chain_id)?;
        let nonce = t.nonce.map(|n| to_i64("nonce", n)).transpose()?;
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "INSERT INTO transactions AS t (id, idempotency_key, chain_id, pool, intent, \
                     from_address, nonce, tx_hash, status, receipt, error) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (idempotency_key) DO UPDATE SET \
                       from_address = COALESCE(EXCLUDED.from_address, t.from_address), \
                       nonce = COALESCE(EXCLUDED.nonce, t.nonce), \
                       tx_hash = COALESCE(EXCLUDED.tx_hash, t.tx_hash), \
                       status = EXCLUDED.status, \
                       receipt = COALESCE(EXCLUDED.receipt, t.receipt), \
                       error = COALESCE(EXCLUDED.error, t.error), \
                       updated_at = now() \
                     WHERE t.intent = EXCLUDED.intent AND t.chain_id = EXCLUDED.chain_id \
                       AND pmm_tx_status_rank(t.status) < 3 \
                       AND pmm_tx_status_rank(EXCLUDED.status) >= pmm_tx_status_rank(t.status) \
                     RETURNING {COLUMNS}, (xmax = 0) AS inserted"
                ),
                &[
                    &Uuid::new_v4(),
                    &t.idempotency_key,
                    &chain_id,
                    &t.pool,
                    &t.intent,
                    &t.from_address,
                    &nonce,
                    &t.tx_hash,
                    &t.status.as_str(),
                    &t.receipt,
                    &t.error,
                ],
            )
            .await?;
        if let Some(row) = row {
            let inserted: bool = row.try_get("inserted")?;
            let stored = StoredTx::from_row(&row)?;
            return Ok(if inserted {
                TxUpsert::Inserted(stored)
            } else {
                TxUpsert::Updated(stored)
            });
        }
        let existing = conn
            .query_one(
                &format!("SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"),
                &[&t.idempotency_key],
            )
            .await?;
        let existing = StoredTx::from_row(&existing)?;
        if existing.record.intent != t.intent || existing.record.chain_id != t.chain_id {
            return Err(StoreError::IdempotencyConflict(t.idempotency_key.clone()));
        }
        Ok(TxUpsert::Unchanged(existing))
    }

    /// The transaction stored under a key.
    pub async fn transaction_by_key(&self, idempotency_key: &str) -> Result<Option<StoredTx>> {
        self.conn()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"),
                &[&idempotency_key],
            )
            .await?
            .as_ref()
            .map(StoredTx::from_row)
            .transpose()
    }

    /// Transactions of a chain that are not final yet, oldest first: the reconciler's work list.
    pub async fn open_transactions(&self, chain_id: u64) -> Result<Vec<StoredTx>> {
        let chain_id = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM transactions WHERE chain_id = $1 \
                     AND status IN ('pending', 'signed', 'sent') ORDER BY created_at, id"
                ),
                &[&chain_id],
            )
            .await?
            .iter()
            .map(StoredTx::from_row)
            .collect()
    }
}
