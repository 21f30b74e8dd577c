//! Write intents: the `transactions` row of one idempotency key, its nonce (allocated under a
//! per-signer row lock every replica shares), each signed attempt, and the outcome.
//!
//! Order of durable facts for one write: the intent row (no nonce), then in ONE Postgres
//! transaction the nonce, the signed bytes and their hash, then `sent`, then the outcome. A
//! crash anywhere leaves a row that says what to do next: no nonce = never signed (safe to
//! drop), signed = re-send the stored bytes, sent = look the hashes up.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::{Result, StoreError, from_i64, to_i64};
use crate::pg::PgStore;
use crate::transactions::TxStatus;

/// One signed attempt of an intent.
#[derive(Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 0 for the first signature, then one per replacement.
    pub attempt: u32,
    /// Nonce (the same for every attempt of an intent).
    pub nonce: u64,
    /// `0x` hash.
    pub tx_hash: String,
    /// `0x` EIP-2718 bytes (public once sent; kept so a restart can re-send).
    pub raw_tx: String,
    /// `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`, wei.
    pub max_priority_fee_per_gas: u128,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("attempt", &self.attempt)
            .field("nonce", &self.nonce)
            .field("tx_hash", &self.tx_hash)
            .finish_non_exhaustive()
    }
}

/// The exact call an intent signs, kept for replacements and revert replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentCall {
    /// Contract, `0x` hex.
    pub to: String,
    /// Input, `0x` hex.
    pub input: String,
    /// Gas limit.
    pub gas_limit: u64,
}

/// A new intent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    /// Idempotency key.
    pub key: String,
    /// Chain id.
    pub chain_id: u64,
    /// Pool, lowercase `0x` hex.
    pub pool: Option<String>,
    /// The decoded intent; the same key with another intent is refused.
    pub intent: Value,
    /// Signer address, lowercase `0x` hex.
    pub from_address: String,
    /// The call to sign.
    pub call: IntentCall,
    /// Daily-cap reservation backing it, if any.
    pub reservation_id: Option<Uuid>,
    /// Notional reserved, decimal raw quote units.
    pub notional: Option<String>,
    /// Step log so far.
    pub steps: Value,
}

/// A stored intent.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// Row id.
    pub id: Uuid,
    /// Idempotency key.
    pub key: String,
    /// Chain id.
    pub chain_id: u64,
    /// Pool.
    pub pool: Option<String>,
    /// Decoded intent.
    pub intent: Value,
    /// Signer.
    pub from_address: Option<String>,
    /// Nonce, once signed.
    pub nonce: Option<u64>,
    /// Hash of the latest attempt (the mined one once final).
    pub tx_hash: Option<String>,
    /// Status.
    pub status: TxStatus,
    /// The call.
    pub call: Option<IntentCall>,
    /// Reservation.
    pub reservation_id: Option<Uuid>,
    /// Notional.
    pub notional: Option<String>,
    /// Receipt summary once mined.
    pub receipt: Option<Value>,
    /// Why it reverted.
    pub revert_reason: Option<String>,
    /// Gas used once mined.
    pub gas_used: Option<u64>,
    /// Error text.
    pub error: Option<String>,
    /// Step log.
    pub steps: Option<Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// What [`PgStore::create_intent`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentStart {
    /// A new row: go on and sign.
    New(Intent),
    /// The key was used before with the same intent: the first result stands.
    Existing(Intent),
}

/// The final state of an intent.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `confirmed`, `failed` or `dropped`.
    pub status: TxStatus,
    /// Hash that was mined (or the last attempt's).
    pub tx_hash: Option<String>,
    /// Receipt summary.
    pub receipt: Option<Value>,
    /// Revert reason.
    pub revert_reason: Option<String>,
    /// Gas used.
    pub gas_used: Option<u64>,
    /// Error text.
    pub error: Option<String>,
}

impl Outcome {
    /// An intent ended before anything of it was sent, with why.
    pub fn dropped(error: impl Into<String>) -> Self {
        Self {
            status: TxStatus::Dropped,
            tx_hash: None,
            receipt: None,
            revert_reason: None,
            gas_used: None,
            error: Some(error.into()),
        }
    }
}

const COLS: &str = "id, idempotency_key, chain_id, pool, intent, from_address, nonce, tx_hash, \
    status, call_to, call_input, gas_limit, reservation_id, notional::text AS notional, receipt, \
    revert_reason, gas_used, error, steps, created_at";

fn intent_of(row: &Row) -> Result<Intent> {
    let nonce: Option<i64> = row.try_get("nonce")?;
    let gas_limit: Option<i64> = row.try_get("gas_limit")?;
    let gas_used: Option<i64> = row.try_get("gas_used")?;
    let status: String = row.try_get("status")?;
    let to: Option<String> = row.try_get("call_to")?;
    let input: Option<String> = row.try_get("call_input")?;
    let call = match (to, input, gas_limit) {
        (Some(to), Some(input), Some(g)) => Some(IntentCall {
            to,
            input,
            gas_limit: from_i64("transactions.gas_limit", g)?,
        }),
        _ => None,
    };
    Ok(Intent {
        id: row.try_get("id")?,
        key: row.try_get("idempotency_key")?,
        chain_id: from_i64("transactions.chain_id", row.try_get("chain_id")?)?,
        pool: row.try_get("pool")?,
        intent: row.try_get("intent")?,
        from_address: row.try_get("from_address")?,
        nonce: nonce
            .map(|n| from_i64("transactions.nonce", n))
            .transpose()?,
        tx_hash: row.try_get("tx_hash")?,
        status: status.parse()?,
        call,
        reservation_id: row.try_get("reservation_id")?,
        notional: row.try_get("notional")?,
        receipt: row.try_get("receipt")?,
        revert_reason: row.try_get("revert_reason")?,
        gas_used: gas_used
            .map(|g| from_i64("transactions.gas_used", g))
            .transpose()?,
        error: row.try_get("error")?,
        steps: row.try_get("steps")?,
        created_at: row.try_get("created_at")?,
    })
}

fn attempt_of(row: &Row) -> Result<Attempt> {
    let attempt: i32 = row.try_get("attempt")?;
    let fee = |col: &str| -> Result<u128> {
        let s: String = row.try_get(col)?;
        s.parse().map_err(|e| StoreError::Corrupt {
            location: col.to_owned(),
            reason: format!("{s:?}: {e}"),
        })
    };
    Ok(Attempt {
        attempt: u32::try_from(attempt).map_err(|_| StoreError::Corrupt {
            location: "transaction_attempts.attempt".into(),
            reason: format!("negative {attempt}"),
        })?,
        nonce: from_i64("transaction_attempts.nonce", row.try_get("nonce")?)?,
        tx_hash: row.try_get("tx_hash")?,
        raw_tx: row.try_get("raw_tx")?,
        max_fee_per_gas: fee("max_fee_per_gas")?,
        max_priority_fee_per_gas: fee("max_priority_fee_per_gas")?,
    })
}

impl PgStore {
    /// Records a new intent under its key, or returns the one already stored (same intent);
    /// the same key with another intent is [`StoreError::IdempotencyConflict`].
    pub async fn create_intent(&self, n: &NewIntent) -> Result<IntentStart> {
        let chain_id = to_i64("chain_id", n.chain_id)?;
        let gas = to_i64("gas_limit", n.call.gas_limit)?;
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "INSERT INTO transactions (id, idempotency_key, chain_id, pool, intent, \
                     from_address, status, call_to, call_input, gas_limit, reservation_id, \
                     notional, steps) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, \
                     $10, $11::text::numeric, $12) ON CONFLICT (idempotency_key) DO NOTHING \
                     RETURNING {COLS}"
                ),
                &[
                    &Uuid::new_v4(),
                    &n.key,
                    &chain_id,
                    &n.pool,
                    &n.intent,
                    &n.from_address,
                    &n.call.to,
                    &n.call.input,
                    &gas,
                    &n.reservation_id,
                    &n.notional,
                    &n.steps,
                ],
            )
            .await?;
        if let Some(row) = row {
            return Ok(IntentStart::New(intent_of(&row)?));
        }
        let existing = self
            .intent_by_key(&n.key)
            .await?
            .ok_or_else(|| StoreError::IdempotencyConflict(n.key.clone()))?;
        if existing.intent != n.intent || existing.chain_id != n.chain_id {
            return Err(StoreError::IdempotencyConflict(n.key.clone()));
        }
        Ok(IntentStart::Existing(existing))
    }

    /// The intent stored under a key.
    pub async fn intent_by_key(&self, key: &str) -> Result<Option<Intent>> {
        self.conn()
            .await?
            .query_opt(
                &format!("SELECT {COLS} FROM transactions WHERE idempotency_key = $1"),
                &[&key],
            )
            .await?
            .as_ref()
            .map(intent_of)
            .transpose()
    }

    /// Allocates the next nonce of (`chain_id`, `signer`) and records what `sign` returns for
    /// it, all in one Postgres transaction holding the signer's nonce row lock: no two replicas
    /// can hold the same nonce, and a failed `sign` leaves the counter untouched (no gap).
    ///
    /// The nonce is the larger of the stored counter and `node_pending` (the node's pending
    /// nonce: transactions sent outside the hub move it forward). An intent that already has a
    /// nonce is returned as it is, with its latest attempt.
    pub async fn sign_with_next_nonce<E>(
        &self,
        intent_id: Uuid,
        chain_id: u64,
        signer: &str,
        node_pending: u64,
        sign: impl FnOnce(u64) -> std::result::Result<Attempt, E>,
    ) -> Result<std::result::Result<Attempt, E>> {
        let chain = to_i64("chain_id", chain_id)?;
        let pending = to_i64("node_pending", node_pending)?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "INSERT INTO tx_nonces (chain_id, signer, next_nonce) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&chain, &signer, &pending],
        )
        .await?;
        let stored: i64 = tx
            .query_one(
                "SELECT next_nonce FROM tx_nonces WHERE chain_id = $1 AND signer = $2 FOR UPDATE",
                &[&chain, &signer],
            )
            .await?
            .try_get(0)?;
        let current: Option<i64> = tx
            .query_one(
                "SELECT nonce FROM transactions WHERE id = $1 FOR UPDATE",
                &[&intent_id],
            )
            .await?
            .try_get(0)?;
        if current.is_some() {
            drop(tx);
            let latest =
                self.attempts(intent_id)
                    .await?
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt {
                        location: "transaction_attempts".into(),
                        reason: format!("intent {intent_id} has a nonce but no attempt"),
                    })?;
            return Ok(Ok(latest));
        }
        let nonce = from_i64("tx_nonces.next_nonce", stored.max(pending))?;
        let attempt = match sign(nonce) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let n = to_i64("nonce", nonce)?;
        tx.execute(
            "UPDATE transactions SET nonce = $2, tx_hash = $3, raw_tx = $4, status = 'signed', \
             updated_at = now() WHERE id = $1",
            &[&intent_id, &n, &attempt.tx_hash, &attempt.raw_tx],
        )
        .await?;
        insert_attempt(&tx, intent_id, &attempt).await?;
        tx.execute(
            "UPDATE tx_nonces SET next_nonce = $3, updated_at = now() \
             WHERE chain_id = $1 AND signer = $2",
            &[&chain, &signer, &(n + 1)],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(attempt))
    }

    /// Raises the stored nonce counter of a signer to at least `node_pending` (the reconcile
    /// at start); returns the counter afterwards.
    pub async fn reconcile_nonce(
        &self,
        chain_id: u64,
        signer: &str,
        node_pending: u64,
    ) -> Result<u64> {
        let chain = to_i64("chain_id", chain_id)?;
        let pending = to_i64("node_pending", node_pending)?;
        let row = self
            .conn()
            .await?
            .query_one(
                "INSERT INTO tx_nonces (chain_id, signer, next_nonce) VALUES ($1, $2, $3) \
                 ON CONFLICT (chain_id, signer) DO UPDATE SET \
                   next_nonce = GREATEST(tx_nonces.next_nonce, EXCLUDED.next_nonce), \
                   updated_at = now() RETURNING next_nonce",
                &[&chain, &signer, &pending],
            )
            .await?;
        from_i64("tx_nonces.next_nonce", row.try_get(0)?)
    }

    /// Records a replacement attempt (same nonce, higher fees) as the intent's current one.
    pub async fn record_replacement(&self, intent_id: Uuid, attempt: &Attempt) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        insert_attempt(&tx, intent_id, attempt).await?;
        tx.execute(
            "UPDATE transactions SET tx_hash = $2, raw_tx = $3, updated_at = now() \
             WHERE id = $1 AND pmm_tx_status_rank(status) < 3",
            &[&intent_id, &attempt.tx_hash, &attempt.raw_tx],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every attempt of an intent, oldest first.
    pub async fn attempts(&self, intent_id: Uuid) -> Result<Vec<Attempt>> {
        self.conn()
            .await?
            .query(
                "SELECT attempt, nonce, tx_hash, raw_tx, max_fee_per_gas::text AS max_fee_per_gas, \
                 max_priority_fee_per_gas::text AS max_priority_fee_per_gas \
                 FROM transaction_attempts WHERE transaction_id = $1 ORDER BY attempt",
                &[&intent_id],
            )
            .await?
            .iter()
            .map(attempt_of)
            .collect()
    }

    /// Moves a signed intent to `sent`.
    pub async fn mark_sent(&self, intent_id: Uuid) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE transactions SET status = 'sent', updated_at = now() \
                 WHERE id = $1 AND status IN ('signed', 'sent')",
                &[&intent_id],
            )
            .await?;
        Ok(())
    }

    /// Replaces the step log.
    pub async fn set_steps(&self, intent_id: Uuid, steps: &Value) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE transactions SET steps = $2, updated_at = now() WHERE id = $1",
                &[&intent_id, steps],
            )
            .await?;
        Ok(())
    }

    /// Records the final outcome once; a final row never changes (returns false then).
    pub async fn finish_intent(&self, intent_id: Uuid, o: &Outcome) -> Result<bool> {
        if !o.status.is_final() {
            return Err(StoreError::InvalidInput {
                field: "status",
                reason: format!("{} is not final", o.status),
            });
        }
        let gas_used = o.gas_used.map(|g| to_i64("gas_used", g)).transpose()?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE transactions SET status = $2, tx_hash = COALESCE($3, tx_hash), \
                 receipt = $4, revert_reason = $5, gas_used = $6, error = $7, updated_at = now() \
                 WHERE id = $1 AND pmm_tx_status_rank(status) < 3",
                &[
                    &intent_id,
                    &o.status.as_str(),
                    &o.tx_hash,
                    &o.receipt,
                    &o.revert_reason,
                    &gas_used,
                    &o.error,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Intents of a signer that are not final, oldest first: what a restarted hub finishes.
    pub async fn unfinished_intents(&self, chain_id: u64, signer: &str) -> Result<Vec<Intent>> {
        let chain = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLS} FROM transactions WHERE chain_id = $1 AND from_address = $2 \
                     AND status IN ('pending', 'signed', 'sent') ORDER BY created_at, id"
                ),
                &[&chain, &signer],
            )
            .await?
            .iter()
            .map(intent_of)
            .collect()
    }
}

async fn insert_attempt(
    tx: &deadpool_postgres::Transaction<'_>,
    intent_id: Uuid,
    a: &Attempt,
) -> Result<()> {
    let attempt = i32::try_from(a.attempt).map_err(|_| StoreError::InvalidInput {
        field: "attempt",
        reason: "too many attempts".into(),
    })?;
    let nonce = to_i64("nonce", a.nonce)?;
    let inserted = tx
        .execute(
            "INSERT INTO transaction_attempts (transaction_id, attempt, nonce, tx_hash, raw_tx, \
             max_fee_per_gas, max_priority_fee_per_gas) \
             VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric)",
            &[
                &intent_id,
                &attempt,
                &nonce,
                &a.tx_hash,
                &a.raw_tx,
                &a.max_fee_per_gas.to_string(),
                &a.max_priority_fee_per_gas.to_string(),
            ],
        )
        .await;
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StoreError::InvalidInput {
            field: "attempt",
            reason: format!(
                "attempt {} or hash {} already recorded",
                a.attempt, a.tx_hash
            ),
        }),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Exclusive right to send for one signer, across every replica: a Postgres advisory lock on
/// a dedicated connection. Held from the first approval through the deposit's receipt, so one
/// write's exact approvals can never be spent or overwritten by another's.
pub struct SignerLock {
    conn: Option<deadpool_postgres::Object>,
    key: String,
}

impl std::fmt::Debug for SignerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerLock")
            .field("key", &self.key)
            .finish()
    }
}

impl PgStore {
    /// Waits for the signer's lock.
    pub async fn lock_signer(&self, chain_id: u64, signer: &str) -> Result<SignerLock> {
        let key = format!("pmm-signer:{chain_id}:{signer}");
        let conn = self.conn().await?;
        conn.execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
            .await?;
        Ok(SignerLock {
            conn: Some(conn),
            key,
        })
    }
}

impl SignerLock {
    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take()
            && conn
                .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&self.key])
                .await
                .is_err()
        {
            // Closing the session is what releases the lock when the unlock failed.
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

impl Drop for SignerLock {
    fn drop(&mut self) {
        // Dropped without `release` (an error path or a cancelled call): close the session
        // instead of pooling it, so the server releases the lock.
        if let Some(conn) = self.conn.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

impl PgStore {
    /// Every nonce a signer's intents hold, ascending (each at most once: a unique index).
    pub async fn signer_nonces(&self, chain_id: u64, signer: &str) -> Result<Vec<u64>> {
        let chain = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query(
                "SELECT nonce FROM transactions WHERE chain_id = $1 AND from_address = $2 \
                 AND nonce IS NOT NULL ORDER BY nonce",
                &[&chain, &signer],
            )
            .await?
            .iter()
            .map(|r| from_i64("transactions.nonce", r.try_get(0)?))
            .collect()
    }
}
