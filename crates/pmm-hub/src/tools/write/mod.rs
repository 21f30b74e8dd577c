//! Write tools: `dodo.add_liquidity`, `dodo.remove_liquidity`, `dodo.reset_pool`.
//!
//! Every write runs the same named steps, each recorded in the result and the `tool_calls` row:
//! `build` (the exact transaction that will be signed) -> `dry_run` (exactly that call from the
//! signer at the pinned block) -> `policy` -> `reserve` (notional and cooldown, one Redis
//! script) -> `intent` (the Postgres row, then nonce + signed hash in one transaction) ->
//! `send` -> `receipt` (replaced at the same nonce with higher fees when stuck) -> `settle`
//! (commit or refund) -> `outcome`.
//!
//! Nothing is built unless both gates (`allow_write`, `execution_armed`) are open. A key that
//! was seen before returns its first result and never sends again; unfinished intents are
//! finished by the next call with the key, or by the recovery a starting hub runs.

mod build;
mod drive;
mod pipeline;
mod record;
mod recover;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::TransactionRequest;
use alloy::rpc::types::state::StateOverride;
use alloy::sol_types::SolCall;
use pmm_chain::gas::FeeCaps;
use pmm_chain::send::{Mined, SendOutcome, SignedTx, TxParams};
use pmm_chain::tx::{self, Call, DppReset, IDODODspProxy, IDODOV2Proxy02, Routers};
use pmm_chain::{PoolRead, PoolType};
use pmm_core::keys::{DailyCapScope, daily_cap_scope, utc_day};
use pmm_core::math;
use pmm_core::policy::{ActionProposal, ExpectedOutcome, RiskReport, RuleOutcome, Verdict};
use pmm_core::schema::{Amount, PoolState};
use pmm_store::{
    Attempt, Intent, IntentCall, IntentStart, NewIntent, Outcome, ReserveResult, TxStatus,
    WriteReservation,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;

use super::read::{add, liquidity_of};
use super::{address_schema, parse_address};
use crate::error::ToolError;
use crate::hub::{Hub, now_s};
use crate::signer::HubSigner;

/// Extra gas over the node's estimate (the state may move a little before inclusion).
const GAS_MARGIN_PCT: u64 = 25;
/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 128;

/// What the hub needs to write; fixed at start.
#[derive(Debug, Clone)]
pub struct WriteSetup {
    /// `allow_write`.
    pub allow_write: bool,
    /// `execution_armed`.
    pub execution_armed: bool,
    /// The signer, when configured.
    pub signer: Option<HubSigner>,
    /// Deposit routers of the chain.
    pub routers: Routers,
    /// Confirmations a write waits for.
    pub confirmations: u64,
    /// How long one call waits for a receipt.
    pub receipt_timeout: Duration,
    /// How long before a stuck transaction is replaced.
    pub replace_after: Duration,
    /// Default on-chain deadline, seconds from now.
    pub tx_deadline_s: u64,
    /// Serializes this process's writers before they queue on the shared Postgres lock, so
    /// waiting callers do not each hold a pooled connection.
    pub local: Arc<tokio::sync::Mutex<()>>,
}

impl WriteSetup {
    fn open(&self) -> bool {
        self.allow_write && self.execution_armed
    }
}

/// `{pool, base_amount, quote_amount, min_shares, idempotency_key?, deadline?}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLiquidityParams {
    /// Pool (DVM or DSP).
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
    /// Base offered, raw units. The proxy takes the balanced part.
    pub base_amount: Amount,
    /// Quote offered, raw units.
    pub quote_amount: Amount,
    /// Fewest shares accepted.
    pub min_shares: Amount,
    /// Same key = same write: a retry returns the first result. Default: derived from the
    /// parameters and the state block.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub idempotency_key: Option<String>,
    /// On-chain deadline, unix seconds (default: now + `tx_deadline_s`).
    #[serde(default)]
    pub deadline: Option<u64>,
}

/// `{pool, shares, min_base, min_quote, idempotency_key?, deadline?}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveLiquidityParams {
    /// Pool (DVM, DSP or GSP).
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
    /// Shares to burn.
    pub shares: Amount,
    /// Least base accepted.
    pub min_base: Amount,
    /// Least quote accepted.
    pub min_quote: Amount,
    /// See [`AddLiquidityParams::idempotency_key`].
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub idempotency_key: Option<String>,
    /// On-chain deadline, unix seconds.
    #[serde(default)]
    pub deadline: Option<u64>,
}

/// `{pool, new_i, new_k, new_lp_fee_rate, base_out, quote_out, min_base_reserve, min_quote_reserve}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPoolParams {
    /// DPP or DPP Oracle pool the signer owns.
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
    /// New guide price, 1e18 fixed point on raw units, 0 < i <= 1e36.
    pub new_i: Amount,
    /// New k, <= 1e18.
    pub new_k: Amount,
    /// New LP fee rate, <= 1e18.
    pub new_lp_fee_rate: Amount,
    /// Base withdrawn to the signer.
    pub base_out: Amount,
    /// Quote withdrawn to the signer.
    pub quote_out: Amount,
    /// The reset reverts if the base reserve is lower when it runs.
    pub min_base_reserve: Amount,
    /// The reset reverts if the quote reserve is lower when it runs.
    pub min_quote_reserve: Amount,
    /// See [`AddLiquidityParams::idempotency_key`].
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub idempotency_key: Option<String>,
}

/// One named step of a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// `build`, `dry_run`, `policy`, `reserve`, `intent`, `send`, `receipt`, `settle`, `outcome`.
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did or why it stopped.
    pub detail: String,
}

/// Where a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteStatus {
    /// Refused before anything was signed.
    Denied,
    /// Mined and succeeded.
    Confirmed,
    /// Mined and reverted; the reservation was refunded.
    Reverted,
    /// Sent, no receipt yet; a retry with the same key (or the next start) finishes it.
    Pending,
    /// Never mined (rejected or dropped); the reservation was refunded.
    Failed,
}

/// What the deposit or burn was predicted to do (exact math at the pinned block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WritePrediction {
    /// Shares received (add) or burned (remove).
    pub shares: Amount,
    /// Base into the pool (add) or out of it (remove).
    pub base: Amount,
    /// Quote into the pool (add) or out of it (remove).
    pub quote: Amount,
}

/// Result of a write tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteResult {
    /// `allow` once the policy passed and the notional was reserved, else `deny`.
    pub verdict: Verdict,
    /// Where the write ended.
    pub status: WriteStatus,
    /// The rule (or step) that refused it.
    pub denied_by: Option<String>,
    /// The key the write is stored under.
    pub idempotency_key: String,
    /// Hash of the transaction that carries the write (the mined one once mined).
    pub tx_hash: Option<String>,
    /// Its nonce.
    pub nonce: Option<u64>,
    /// True when this call returned a stored result instead of running the write.
    pub replayed: bool,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The policy report.
    pub risk: Option<RiskReport>,
    /// The exact prediction.
    pub predicted: Option<WritePrediction>,
    /// Why it reverted.
    pub revert_reason: Option<String>,
    /// Gas used once mined.
    pub gas_used: Option<u64>,
}

/// A write ready to run: everything `build` decided.
struct Plan {
    key: String,
    pool: Address,
    intent: Value,
    approvals: Vec<(Call, Address, U256)>,
    main: Call,
    action: Option<ActionProposal>,
    predicted: Option<WritePrediction>,
    expected: Option<ExpectedOutcome>,
    decode: Decode,
    read: Arc<PoolRead>,
    state: PoolState,
}

/// How the dry run's return data is checked against the prediction.
#[derive(Clone, Copy)]
enum Decode {
    DvmDeposit,
    DspDeposit,
    SellShares,
    Reset,
}

fn step(steps: &mut Vec<Step>, name: &str, ok: bool, detail: impl Into<String>) {
    steps.push(Step {
        name: name.to_owned(),
        ok,
        detail: detail.into(),
    });
}

fn denied(
    key: &str,
    by: &str,
    steps: Vec<Step>,
    risk: Option<RiskReport>,
    predicted: Option<WritePrediction>,
) -> WriteResult {
    metrics::counter!("pmm_hub_writes_total", "status" => "denied").increment(1);
    WriteResult {
        verdict: Verdict::Deny,
        status: WriteStatus::Denied,
        denied_by: Some(by.to_owned()),
        idempotency_key: key.to_owned(),
        tx_hash: None,
        nonce: None,
        replayed: false,
        steps,
        risk,
        predicted,
        revert_reason: None,
        gas_used: None,
    }
}

fn hex_of(b: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(b))
}

fn parse_hex(field: &'static str, s: &str) -> Result<Bytes, ToolError> {
    alloy::hex::decode(s.trim_start_matches("0x"))
        .map(Bytes::from)
        .map_err(|e| ToolError::Store(format!("stored {field} is not hex: {e}")))
}

fn store_err(e: pmm_store::StoreError) -> ToolError {
    match e {
        pmm_store::StoreError::IdempotencyConflict(k) => ToolError::Conflict(format!(
            "idempotency key {k:?} is already used by a different write"
        )),
        other => ToolError::Store(other.to_string()),
    }
}

fn check_key(key: &str) -> Result<(), ToolError> {
    if key.is_empty()
        || key.len() > MAX_KEY_LEN
        || key.contains('#')
        || key.chars().any(char::is_control)
    {
        return Err(ToolError::InvalidParams(format!(
            "idempotency_key: 1 to {MAX_KEY_LEN} printable characters without '#'"
        )));
    }
    Ok(())
}

/// A key derived from what the write does and the block its state was read at.
fn derived_key(tool: &str, intent: &Value, block: u64) -> String {
    let digest = sha2::Sha256::digest(format!("{tool}|{intent}|{block}").as_bytes());
    format!("derived:{}", alloy::hex::encode(&digest[..16]))
}

impl Hub {
    /// The write setup (gates, signer, routers).
    pub(crate) fn writes(&self) -> &WriteSetup {
        &self.inner.writes
    }

    /// Refuses with `gate_closed` unless both gates are open; nothing is read or built.
    fn gate(&self) -> Result<(&HubSigner, &pmm_store::PgStore), ToolError> {
        let w = self.writes();
        if !w.open() {
            metrics::counter!("pmm_hub_writes_total", "status" => "gate_closed").increment(1);
            return Err(ToolError::GateClosed {
                allow_write: w.allow_write,
                execution_armed: w.execution_armed,
            });
        }
        let signer = w
            .signer
            .as_ref()
            .ok_or_else(|| ToolError::Unsupported("no signer is configured".into()))?;
        let pg = self
            .inner
            .pg
            .as_ref()
            .ok_or_else(|| ToolError::Store("writes need Postgres (database_url)".into()))?;
        Ok((signer, pg))
    }

    /// The stored result of a key, finishing its intent first when it is still open.
    async fn replay(&self, key: &str) -> Result<Option<WriteResult>, ToolError> {
        let (_, pg) = self.gate()?;
        let Some(it) = pg.intent_by_key(key).await.map_err(store_err)? else {
            return Ok(None);
        };
        let it = if it.status.is_final() {
            it
        } else {
            let _local = self.writes().local.clone().lock_owned().await;
            let lock = self.lock_signer().await?;
            let r = self.drive_family(&it).await;
            lock.release().await;
            r?;
            pg.intent_by_key(key)
                .await
                .map_err(store_err)?
                .ok_or_else(|| ToolError::Store(format!("intent {key} vanished")))?
        };
        let mut result = stored_result(&it);
        result.replayed = true;
        Ok(Some(result))
    }

    async fn lock_signer(&self) -> Result<pmm_store::SignerLock, ToolError> {
        let (signer, pg) = self.gate()?;
        pg.lock_signer(
            self.inner.chain.chain_id(),
            &format!("{:#x}", signer.address()),
        )
        .await
        .map_err(store_err)
    }
}

fn reservation_of(it: &Intent) -> Option<(DailyCapScope, u64)> {
    let r = it.steps.as_ref()?.get("reservation")?;
    let scope = r.get("scope")?.as_str()?;
    let day = r.get("day")?.as_u64()?;
    let (chain, pool) = scope.split_once(':')?;
    let chain = pmm_core::schema::ChainName::new(chain).ok()?;
    Some((daily_cap_scope(&chain, pool.parse().ok()?), day))
}

/// The result a stored intent stands for.
fn stored_result(it: &Intent) -> WriteResult {
    let saved = it.steps.clone().unwrap_or(Value::Null);
    let mut steps: Vec<Step> = saved
        .get("steps")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let status = match it.status {
        TxStatus::Confirmed => WriteStatus::Confirmed,
        TxStatus::Failed if it.revert_reason.is_some() => WriteStatus::Reverted,
        TxStatus::Failed | TxStatus::Dropped => WriteStatus::Failed,
        _ => WriteStatus::Pending,
    };
    let hash = it.tx_hash.clone().unwrap_or_default();
    step(
        &mut steps,
        "send",
        it.status >= TxStatus::Sent,
        format!("tx {hash}"),
    );
    match status {
        WriteStatus::Pending => step(&mut steps, "receipt", false, "not mined yet"),
        _ => step(
            &mut steps,
            "receipt",
            it.status == TxStatus::Confirmed || it.status == TxStatus::Failed,
            it.receipt.as_ref().map_or_else(
                || it.error.clone().unwrap_or_default(),
                |r| {
                    format!(
                        "block {}",
                        r.get("block_number").cloned().unwrap_or(Value::Null)
                    )
                },
            ),
        ),
    }
    if status != WriteStatus::Pending {
        step(
            &mut steps,
            "settle",
            true,
            if status == WriteStatus::Confirmed {
                "committed"
            } else {
                "refunded"
            },
        );
        step(
            &mut steps,
            "outcome",
            status == WriteStatus::Confirmed,
            format!("{status:?}").to_lowercase(),
        );
    }
    WriteResult {
        verdict: Verdict::Allow,
        status,
        denied_by: None,
        idempotency_key: it.key.clone(),
        tx_hash: it.tx_hash.clone(),
        nonce: it.nonce,
        replayed: false,
        steps,
        risk: saved
            .get("risk")
            .and_then(|r| serde_json::from_value(r.clone()).ok()),
        predicted: saved
            .get("predicted")
            .and_then(|r| serde_json::from_value(r.clone()).ok()),
        revert_reason: it.revert_reason.clone(),
        gas_used: it.gas_used,
    }
}
