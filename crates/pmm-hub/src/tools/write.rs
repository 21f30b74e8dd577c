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

    /// `dodo.add_liquidity`.
    pub async fn add_liquidity(&self, p: &AddLiquidityParams) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        if p.base_amount.is_zero() {
            return Err(ToolError::InvalidParams(
                "base_amount: must be greater than 0 (buyShares needs base input)".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let (kind, liq) = liquidity_of(&read)?;
        let (base_reserve, quote_reserve) = read.vault_reserve.unwrap_or_default();
        let (base_in, quote_in) = tx::balanced_amounts(
            p.base_amount.0,
            p.quote_amount.0,
            base_reserve,
            quote_reserve,
        );
        let bs = math::buy_shares(
            kind,
            self.generation_of(&read)?,
            &liq,
            add(read.base_balance, base_in, "base_amount")?,
            add(read.quote_balance, quote_in, "quote_amount")?,
        )?;
        if bs.received < p.min_shares.0 {
            return Err(ToolError::InvalidParams(format!(
                "min_shares: the balanced deposit ({base_in} base, {quote_in} quote) mints {} shares, fewer than {}",
                bs.received, p.min_shares.0
            )));
        }
        // The proxies bound amounts, not shares: scale the share slippage onto each amount.
        let scale = |v: U256| {
            if bs.received.is_zero() {
                v
            } else {
                v.saturating_mul(p.min_shares.0) / bs.received
            }
        };
        let deadline = p
            .deadline
            .unwrap_or_else(|| now_s() + self.writes().tx_deadline_s);
        let routers = self.writes().routers;
        let main = tx::add_liquidity(
            read.kind,
            &routers,
            pool,
            p.base_amount.0,
            p.quote_amount.0,
            scale(base_in),
            scale(quote_in),
            deadline,
        )
        .map_err(|e| ToolError::Unsupported(e.to_string()))?;
        let spender = routers.approve.ok_or_else(|| {
            ToolError::Unsupported("no DODOApprove address for this chain".into())
        })?;
        let mut approvals = Vec::new();
        for (label, token, amount) in [
            ("approve_base", read.base_token.address, base_in),
            ("approve_quote", read.quote_token.address, quote_in),
        ] {
            if amount.is_zero() {
                continue;
            }
            let have = self
                .inner
                .chain
                .allowance(token, signer, spender, Some(read.block.number))
                .await?;
            if have != amount {
                approvals.push((
                    tx::approve_exact(label, token, spender, amount),
                    token,
                    amount,
                ));
            }
        }
        let action = ActionProposal::AddLiquidity {
            pool,
            base_amount: Amount(base_in),
            quote_amount: Amount(quote_in),
            min_shares: p.min_shares,
            reason: "dodo.add_liquidity".into(),
        };
        let intent = json!({
            "tool": super::ADD_LIQUIDITY,
            "pool": format!("{pool:#x}"),
            "base_amount": p.base_amount,
            "quote_amount": p.quote_amount,
            "min_shares": p.min_shares,
            "deadline": p.deadline,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(super::ADD_LIQUIDITY, &intent, read.block.number),
        };
        let decode = if read.kind == PoolType::Dvm {
            Decode::DvmDeposit
        } else {
            Decode::DspDeposit
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals,
            main,
            action: Some(action),
            predicted: Some(WritePrediction {
                shares: Amount(bs.received),
                base: Amount(base_in),
                quote: Amount(quote_in),
            }),
            expected: Some(ExpectedOutcome::Add {
                shares: Amount(bs.received),
            }),
            decode,
            read,
            state,
        })
        .await
    }

    /// `dodo.remove_liquidity`.
    pub async fn remove_liquidity(
        &self,
        p: &RemoveLiquidityParams,
    ) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        if p.shares.is_zero() {
            return Err(ToolError::InvalidParams(
                "shares: must be greater than 0".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let (kind, liq) = liquidity_of(&read)?;
        let held = self
            .inner
            .chain
            .call_sol(
                pool,
                Address::ZERO,
                &pmm_chain::abi::IDODOV2Shares::balanceOfCall { owner: signer },
                Some(read.block.number),
                None,
            )
            .await?;
        if p.shares.0 > held {
            return Err(ToolError::InvalidParams(format!(
                "shares: {} exceeds the {held} shares the signer holds",
                p.shares.0
            )));
        }
        let ss = math::sell_shares(
            kind,
            &liq,
            read.base_balance,
            read.quote_balance,
            p.shares.0,
            held,
        )?;
        let deadline = p
            .deadline
            .unwrap_or_else(|| now_s() + self.writes().tx_deadline_s);
        let main = tx::sell_shares(
            read.kind,
            pool,
            p.shares.0,
            signer,
            p.min_base.0,
            p.min_quote.0,
            deadline,
        )
        .map_err(|e| ToolError::Unsupported(e.to_string()))?;
        let action = ActionProposal::RemoveLiquidity {
            pool,
            shares: p.shares,
            min_base: p.min_base,
            min_quote: p.min_quote,
            reason: "dodo.remove_liquidity".into(),
        };
        let intent = json!({
            "tool": super::REMOVE_LIQUIDITY,
            "pool": format!("{pool:#x}"),
            "shares": p.shares,
            "min_base": p.min_base,
            "min_quote": p.min_quote,
            "deadline": p.deadline,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(super::REMOVE_LIQUIDITY, &intent, read.block.number),
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals: Vec::new(),
            main,
            action: Some(action),
            predicted: Some(WritePrediction {
                shares: p.shares,
                base: Amount(ss.base_amount),
                quote: Amount(ss.quote_amount),
            }),
            expected: Some(ExpectedOutcome::Remove {
                base: Amount(ss.base_amount),
                quote: Amount(ss.quote_amount),
            }),
            decode: Decode::SellShares,
            read,
            state,
        })
        .await
    }

    /// `dodo.reset_pool`: new i, k and fee rate of a DPP the signer owns; reserves move only
    /// out (deposits need an atomic path the hub does not have for DPPs).
    pub async fn reset_pool(&self, p: &ResetPoolParams) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        let one = U256::from(math::ONE);
        if p.new_i.is_zero() || p.new_i.0 > one * one {
            return Err(ToolError::InvalidParams(
                "new_i: must be in (0, 1e36]".into(),
            ));
        }
        if p.new_k.0 > one {
            return Err(ToolError::InvalidParams("new_k: must be <= 1e18".into()));
        }
        if p.new_lp_fee_rate.0 > one {
            return Err(ToolError::InvalidParams(
                "new_lp_fee_rate: must be <= 1e18".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let main = tx::dpp_reset(
            read.kind,
            pool,
            &DppReset {
                asset_to: signer,
                lp_fee_rate: p.new_lp_fee_rate.0,
                i: p.new_i.0,
                k: p.new_k.0,
                base_out: p.base_out.0,
                quote_out: p.quote_out.0,
                min_base_reserve: p.min_base_reserve.0,
                min_quote_reserve: p.min_quote_reserve.0,
            },
        )
        .map_err(|_| {
            ToolError::Unsupported(format!(
                "dodo.reset_pool needs a DPP or DPP Oracle pool, not {}",
                read.kind
            ))
        })?;
        let intent = json!({
            "tool": super::RESET_POOL,
            "pool": format!("{pool:#x}"),
            "new_i": p.new_i, "new_k": p.new_k, "new_lp_fee_rate": p.new_lp_fee_rate,
            "base_out": p.base_out, "quote_out": p.quote_out,
            "min_base_reserve": p.min_base_reserve, "min_quote_reserve": p.min_quote_reserve,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(super::RESET_POOL, &intent, read.block.number),
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals: Vec::new(),
            main,
            action: None,
            predicted: None,
            expected: None,
            decode: Decode::Reset,
            read,
            state,
        })
        .await
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

    /// The named steps after `build` (see the module docs).
    async fn execute(&self, plan: Plan) -> Result<WriteResult, ToolError> {
        let (signer, pg) = self.gate()?;
        let signer = signer.clone();
        let pg = pg.clone();
        let chain = &self.inner.chain;
        let mut steps = Vec::new();
        step(
            &mut steps,
            "build",
            true,
            format!(
                "{} to {:#x}{}",
                plan.main.label,
                plan.main.to,
                if plan.approvals.is_empty() {
                    String::new()
                } else {
                    format!(
                        " after {}",
                        plan.approvals
                            .iter()
                            .map(|a| a.0.label)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        );
        // dry run: exactly the call that will be signed, from the signer, at the pinned block,
        // with the approvals it depends on as state overrides.
        let block = plan.read.block.number;
        let mut overrides = StateOverride::default();
        if let Some(spender) = self.writes().routers.approve {
            for (_, token, amount) in &plan.approvals {
                chain
                    .add_allowance_override(
                        &mut overrides,
                        *token,
                        signer.address(),
                        spender,
                        *amount,
                    )
                    .await?;
            }
        }
        let req = TransactionRequest::default()
            .from(signer.address())
            .to(plan.main.to)
            .input(plan.main.input.clone().into());
        let sim = chain
            .simulate(
                &req,
                Some(block),
                (!overrides.is_empty()).then_some(overrides),
            )
            .await;
        let sim = match sim.map_err(|e| e.to_string()).and_then(|s| {
            check_dry_run(plan.decode, &s.output, plan.predicted.as_ref()).map(|()| s)
        }) {
            Ok(s) => s,
            Err(why) => {
                step(&mut steps, "dry_run", false, why);
                // A failing dry run is refused whatever the policy says, but a rule that
                // explains it (a deposit beyond the signer's balance fails both) is the
                // named reason.
                let report = self.policy_report(&plan).await?;
                return Ok(match (report.verdict, report.decided_by) {
                    (Verdict::Deny, Some(rule)) => {
                        step(&mut steps, "policy", false, format!("denied by {}", rule.as_str()));
                        denied(&plan.key, rule.as_str(), steps, Some(report), plan.predicted)
                    }
                    _ => denied(&plan.key, "simulation", steps, Some(report), plan.predicted),
                });
            }
        };
        step(
            &mut steps,
            "dry_run",
            true,
            format!("block {block}, gas {}", sim.gas),
        );
        // policy
        let report = self.policy_report(&plan).await?;
        if report.verdict == Verdict::Deny {
            let by = report
                .decided_by
                .map_or("policy", |r| r.as_str())
                .to_owned();
            step(&mut steps, "policy", false, format!("denied by {by}"));
            return Ok(denied(&plan.key, &by, steps, Some(report), plan.predicted));
        }
        step(&mut steps, "policy", true, "allowed");
        let entry = self
            .inner
            .allowlist
            .pool(plan.pool)
            .ok_or_else(|| ToolError::Unsupported("pool is not allowlisted".into()))?;
        let limits = entry.effective_limits();
        let fees = match chain.fee_caps(limits.gas_cap_gwei).await? {
            Ok(f) => f,
            Err(e) => {
                step(&mut steps, "policy", false, e.to_string());
                return Ok(denied(
                    &plan.key,
                    "gas_cap",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
        };
        // reserve
        let redis = self.redis_required()?;
        let now = now_s();
        let scope = daily_cap_scope(&self.inner.chain_name, plan.pool);
        let day = utc_day(now);
        let notional = report.notional.map_or(U256::ZERO, |n| n.0);
        let reservation = Uuid::new_v4();
        let reserved = redis
            .reserve_write(&WriteReservation {
                id: reservation,
                chain: self.inner.chain_name.clone(),
                pool: plan.pool,
                scope: scope.clone(),
                day,
                amount: notional,
                cap: limits.max_notional_per_day.0,
                now,
                cooldown_until: now.saturating_add(limits.cooldown_s),
            })
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        match reserved {
            ReserveResult::Reserved { used } => step(
                &mut steps,
                "reserve",
                true,
                format!(
                    "{notional} reserved, {used} used today; cooldown {} s",
                    limits.cooldown_s
                ),
            ),
            ReserveResult::OverCap { used } => {
                step(
                    &mut steps,
                    "reserve",
                    false,
                    format!("{notional} over the daily cap ({used} used)"),
                );
                return Ok(denied(
                    &plan.key,
                    "max_notional_per_day",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
            ReserveResult::CoolingDown { until } => {
                step(
                    &mut steps,
                    "reserve",
                    false,
                    format!("cooling down until {until}"),
                );
                return Ok(denied(
                    &plan.key,
                    "cooldown",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
            ReserveResult::Exists(v) => {
                return Err(ToolError::Store(format!("reservation id reused ({v})")));
            }
        }
        if let Err(e) = pg
            .mirror_reservation(
                reservation,
                &scope,
                chrono::Utc::now(),
                notional,
                limits.max_notional_per_day.0,
            )
            .await
        {
            let _ = redis.refund_write(reservation, &scope, day).await;
            return Err(ToolError::Store(e.to_string()));
        }
        // intent: approvals first (their nonces precede the deposit's), under the signer lock.
        let _local = self.writes().local.clone().lock_owned().await;
        let lock = self.lock_signer().await?;
        let from = format!("{:#x}", signer.address());
        let gas_limit = sim.gas.saturating_mul(100 + GAS_MARGIN_PCT) / 100;
        let mut reservation_json = json!({"id": reservation, "scope": scope.as_str(), "day": day});
        let created = pg
            .create_intent(&NewIntent {
                key: plan.key.clone(),
                chain_id: chain.chain_id(),
                pool: Some(format!("{:#x}", plan.pool)),
                intent: plan.intent.clone(),
                from_address: from.clone(),
                call: IntentCall {
                    to: format!("{:#x}", plan.main.to),
                    input: hex_of(&plan.main.input),
                    gas_limit,
                },
                reservation_id: Some(reservation),
                notional: Some(notional.to_string()),
                steps: saved_steps(&steps, reservation_json.take(), &plan, &report),
            })
            .await;
        let main = match created {
            Ok(IntentStart::New(it)) => it,
            Ok(IntentStart::Existing(it)) => {
                // Another call with this key got here first: its intent stands, ours is void.
                let _ = redis.refund_write(reservation, &scope, day).await;
                let _ = pg.refund_notional(reservation).await;
                let r = self.drive_family(&it).await;
                lock.release().await;
                r?;
                return self
                    .replay(&plan.key)
                    .await?
                    .ok_or_else(|| ToolError::Store("intent vanished".into()));
            }
            Err(e) => {
                lock.release().await;
                let _ = redis.refund_write(reservation, &scope, day).await;
                let _ = pg.refund_notional(reservation).await;
                return Err(store_err(e));
            }
        };
        for (call, _, _) in &plan.approvals {
            let approve_gas = chain
                .estimate_gas(
                    &TransactionRequest::default()
                        .from(signer.address())
                        .to(call.to)
                        .input(call.input.clone().into()),
                    None,
                    None,
                )
                .await?;
            let created = pg
                .create_intent(&NewIntent {
                    key: format!("{}#{}", plan.key, call.label),
                    chain_id: chain.chain_id(),
                    pool: Some(format!("{:#x}", plan.pool)),
                    intent: json!({"of": plan.key, "call": call.label, "to": format!("{:#x}", call.to), "input": hex_of(&call.input)}),
                    from_address: from.clone(),
                    call: IntentCall {
                        to: format!("{:#x}", call.to),
                        input: hex_of(&call.input),
                        gas_limit: approve_gas.saturating_mul(100 + GAS_MARGIN_PCT) / 100,
                    },
                    reservation_id: None,
                    notional: None,
                    steps: json!({}),
                })
                .await
                .map_err(store_err)?;
            let it = match created {
                IntentStart::New(it) | IntentStart::Existing(it) => it,
            };
            if let Err(e) = self.sign_intent(&it, fees).await {
                lock.release().await;
                self.settle(&main, false).await;
                pg.finish_intent(
                    main.id,
                    &Outcome {
                        status: TxStatus::Dropped,
                        tx_hash: None,
                        receipt: None,
                        revert_reason: None,
                        gas_used: None,
                        error: Some(e.to_string()),
                    },
                )
                .await
                .ok();
                return Err(e);
            }
        }
        let attempt = match self.sign_intent(&main, fees).await {
            Ok(a) => a,
            Err(e) => {
                lock.release().await;
                self.settle(&main, false).await;
                pg.finish_intent(
                    main.id,
                    &Outcome {
                        status: TxStatus::Dropped,
                        tx_hash: None,
                        receipt: None,
                        revert_reason: None,
                        gas_used: None,
                        error: Some(e.to_string()),
                    },
                )
                .await
                .ok();
                return Err(e);
            }
        };
        step(
            &mut steps,
            "intent",
            true,
            format!("nonce {}, tx {}", attempt.nonce, attempt.tx_hash),
        );
        let saved = saved_steps(
            &steps,
            json!({"id": reservation, "scope": scope.as_str(), "day": day}),
            &plan,
            &report,
        );
        pg.set_steps(main.id, &saved)
            .await
            .map_err(store_err)?;
        let r = self.drive_family(&main).await;
        lock.release().await;
        r?;
        let it = pg
            .intent_by_key(&plan.key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ToolError::Store("intent vanished".into()))?;
        Ok(stored_result(&it))
    }

    /// The policy's verdict on a planned write, at the pinned read and the current head.
    async fn policy_report(&self, plan: &Plan) -> Result<RiskReport, ToolError> {
        let head = self.inner.chain.head().await?;
        Ok(match &plan.action {
            Some(action) => {
                // The policy's own view of the outputs (and any donation) at the pinned read.
                let expected = self
                    .expected_outcome(&plan.read, action)
                    .ok()
                    .filter(|(e, _)| Some(*e) == plan.expected);
                self.evaluate_policy(&plan.read, &plan.state, action, expected, head)
                    .await?
            }
            None => {
                let hold = ActionProposal::Hold {
                    reason: "dodo.reset_pool".into(),
                };
                let mut r = self
                    .evaluate_policy(&plan.read, &plan.state, &hold, None, head)
                    .await?;
                // A reset moves no notional, but every state rule must pass for it.
                if let Some(c) = r.rules.iter().find(|c| c.outcome == RuleOutcome::Warn) {
                    r.verdict = Verdict::Deny;
                    r.decided_by = Some(c.rule);
                }
                r
            }
        })
    }

    /// Signs an unsigned intent at the signer's next nonce (no-op when already signed).
    async fn sign_intent(&self, it: &Intent, fees: FeeCaps) -> Result<Attempt, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let call = intent_call(it)?;
        let gas_limit = it.call.as_ref().map_or(0, |c| c.gas_limit);
        let pending = chain.pending_nonce(signer.address()).await?;
        let chain_id = chain.chain_id();
        let signed = pg
            .sign_with_next_nonce(
                it.id,
                chain_id,
                &format!("{:#x}", signer.address()),
                pending,
                |nonce| {
                    pmm_chain::send::sign(
                        signer.tx_signer(),
                        &call,
                        &TxParams {
                            chain_id,
                            nonce,
                            gas_limit,
                            fees,
                        },
                    )
                    .map(|s| attempt_of(&s, 0))
                },
            )
            .await
            .map_err(store_err)?;
        signed.map_err(ToolError::Chain)
    }

    /// Sends and awaits the open intents of one write (approvals, then the deposit), then
    /// settles the deposit's reservation and records every outcome.
    async fn drive_family(&self, main: &Intent) -> Result<(), ToolError> {
        let (_, pg) = self.gate()?;
        let mut family = Vec::new();
        for label in ["approve_base", "approve_quote"] {
            if let Some(it) = pg
                .intent_by_key(&format!("{}#{label}", main.key))
                .await
                .map_err(store_err)?
            {
                family.push(it);
            }
        }
        for it in &family {
            if !it.status.is_final() {
                self.send_intent(it).await?;
            }
        }
        let finished = self.drive_intent(main).await?;
        for it in &family {
            if !it.status.is_final() {
                self.drive_intent(it).await?;
            }
        }
        if let Some(success) = finished {
            self.settle(main, success).await;
        }
        Ok(())
    }

    /// Sends the latest attempt of an intent (signing it first if it never was).
    async fn send_intent(&self, it: &Intent) -> Result<Option<Attempt>, ToolError> {
        let (_, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let mut attempts = pg.attempts(it.id).await.map_err(store_err)?;
        if attempts.is_empty() {
            if it.status != TxStatus::Pending {
                return Err(ToolError::Store(format!(
                    "intent {} lost its attempts",
                    it.key
                )));
            }
            let entry_cap = self.gas_cap_of(it);
            let fees = chain
                .fee_caps(entry_cap)
                .await?
                .map_err(|e| ToolError::Unsupported(e.to_string()))?;
            attempts.push(self.sign_intent(it, fees).await?);
        }
        let Some(latest) = attempts.last().cloned() else {
            return Ok(None);
        };
        match chain.send_raw(&signed_of(&latest)?).await? {
            SendOutcome::Accepted | SendOutcome::NonceUsed(_) => {
                pg.mark_sent(it.id).await.map_err(store_err)?;
            }
            SendOutcome::Rejected(reason) => {
                tracing::warn!(key = %it.key, %reason, "transaction rejected by the node");
                return Err(ToolError::Unsupported(format!(
                    "node rejected the transaction: {reason}"
                )));
            }
        }
        Ok(Some(latest))
    }

    /// Sends, waits, replaces when stuck; records the outcome. `Some(success)` once mined (or
    /// failed for good), `None` while still pending after the receipt timeout.
    async fn drive_intent(&self, it: &Intent) -> Result<Option<bool>, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let w = self.writes();
        let Some(mut latest) = self.send_intent(it).await? else {
            return Ok(None);
        };
        let started = Instant::now();
        loop {
            let hashes: Vec<B256> = pg
                .attempts(it.id)
                .await
                .map_err(store_err)?
                .iter()
                .filter_map(|a| a.tx_hash.parse().ok())
                .collect();
            let remaining = w.receipt_timeout.saturating_sub(started.elapsed());
            let wait = w.replace_after.min(remaining);
            if let Some(m) = chain.wait_mined(&hashes, w.confirmations, wait).await? {
                return self.record_mined(it, &m).await.map(Some);
            }
            if started.elapsed() >= w.receipt_timeout {
                return Ok(None);
            }
            // Still not mined: replace at the same nonce with both caps raised.
            let cap = self.gas_cap_of(it);
            let fees = FeeCaps {
                max_fee_per_gas: latest.max_fee_per_gas,
                max_priority_fee_per_gas: latest.max_priority_fee_per_gas,
            };
            let bumped = match fees.bumped(cap) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(key = %it.key, error = %e, "replacement refused by the gas cap");
                    continue;
                }
            };
            let call = intent_call(it)?;
            let gas_limit = it.call.as_ref().map_or(0, |c| c.gas_limit);
            let signed = pmm_chain::send::sign(
                signer.tx_signer(),
                &call,
                &TxParams {
                    chain_id: chain.chain_id(),
                    nonce: latest.nonce,
                    gas_limit,
                    fees: bumped,
                },
            )?;
            let next = attempt_of(&signed, latest.attempt + 1);
            pg.record_replacement(it.id, &next)
                .await
                .map_err(store_err)?;
            match chain.send_raw(&signed).await? {
                SendOutcome::Accepted | SendOutcome::NonceUsed(_) => {}
                SendOutcome::Rejected(reason) => {
                    tracing::warn!(key = %it.key, %reason, "replacement rejected");
                }
            }
            metrics::counter!("pmm_hub_tx_replacements_total").increment(1);
            tracing::info!(key = %it.key, nonce = latest.nonce, tx = %next.tx_hash, "replaced a stuck transaction");
            latest = next;
        }
    }

    async fn record_mined(&self, it: &Intent, m: &Mined) -> Result<bool, ToolError> {
        let (signer, pg) = self.gate()?;
        let revert_reason = if m.success {
            None
        } else {
            let call = intent_call(it)?;
            let gas = it.call.as_ref().map_or(0, |c| c.gas_limit);
            Some(
                self.inner
                    .chain
                    .revert_reason(m.hash, signer.address(), &call, gas, m.block_number)
                    .await,
            )
        };
        pg.finish_intent(
            it.id,
            &Outcome {
                status: if m.success {
                    TxStatus::Confirmed
                } else {
                    TxStatus::Failed
                },
                tx_hash: Some(format!("{:#x}", m.hash)),
                receipt: serde_json::to_value(m).ok(),
                revert_reason,
                gas_used: Some(m.gas_used),
                error: None,
            },
        )
        .await
        .map_err(store_err)?;
        metrics::counter!("pmm_hub_writes_total", "status" => if m.success { "confirmed" } else { "reverted" }).increment(1);
        Ok(m.success)
    }

    /// Commits (success) or refunds the reservation of a write, in Redis and the ledger.
    async fn settle(&self, main: &Intent, success: bool) {
        let (Some(redis), Some(pg)) = (&self.inner.redis, &self.inner.pg) else {
            return;
        };
        let Some(id) = main.reservation_id else {
            return;
        };
        let Some((scope, day)) = reservation_of(main) else {
            tracing::error!(key = %main.key, "intent without its reservation window");
            return;
        };
        let spent = if success {
            Some(self.spent_notional(main).await)
        } else {
            None
        };
        let r = if let Some(spent) = spent {
            redis.commit_write(id, &scope, day, spent).await.map(drop)
        } else {
            redis.refund_write(id, &scope, day).await.map(drop)
        };
        if let Err(e) = r {
            tracing::error!(key = %main.key, error = %e, "could not settle the Redis reservation");
        }
        let l = if let Some(spent) = spent {
            pg.commit_notional(id, spent).await
        } else {
            pg.refund_notional(id).await
        };
        match l {
            Ok(_) | Err(pmm_store::StoreError::ReservationSettled { .. }) => {}
            Err(e) => tracing::error!(key = %main.key, error = %e, "could not settle the ledger"),
        }
    }

    /// What a confirmed write really moved, valued at the mid price its policy check used: the
    /// tokens its receipt's `Transfer` logs carried between the signer and the pool (into the
    /// pool for a deposit, out of it for a removal). Later state can round a deposit a few units
    /// below its prediction, and the ledger must equal the chain. Falls back to the reserved
    /// notional when the receipt or the saved valuation is missing (over-counting fails closed).
    async fn spent_notional(&self, main: &Intent) -> U256 {
        let reserved = main
            .notional
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(U256::ZERO);
        let Some(pg) = &self.inner.pg else {
            return reserved;
        };
        let it = match pg.intent_by_key(&main.key).await {
            Ok(Some(it)) => it,
            _ => return reserved,
        };
        let (Some(signer), Some(saved)) = (&self.writes().signer, it.steps.as_ref()) else {
            return reserved;
        };
        let mined: Option<Mined> = it
            .receipt
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        let valuation = saved.get("valuation").and_then(|v| {
            Some((
                v.get("mid")?.as_str()?.parse::<U256>().ok()?,
                v.get("base")?.as_str()?.parse::<Address>().ok()?,
                v.get("quote")?.as_str()?.parse::<Address>().ok()?,
            ))
        });
        let (Some(mined), Some((mid, base, quote)), Some(pool)) = (
            mined,
            valuation,
            it.pool.as_deref().and_then(|p| p.parse::<Address>().ok()),
        ) else {
            return reserved;
        };
        let me = signer.address();
        let (from, to) = match it.intent.get("tool").and_then(Value::as_str) {
            Some(super::ADD_LIQUIDITY) => (me, pool),
            Some(super::REMOVE_LIQUIDITY) => (pool, me),
            _ => return reserved,
        };
        pmm_core::policy::notional_of(
            Amount(mined.moved(base, from, to)),
            Amount(mined.moved(quote, from, to)),
            Amount(mid),
        )
        .map_or(reserved, |n| n.0)
    }

    fn gas_cap_of(&self, it: &Intent) -> u64 {
        it.pool
            .as_deref()
            .and_then(|p| p.parse::<Address>().ok())
            .and_then(|p| self.inner.allowlist.pool(p))
            .map_or(0, |e| e.effective_limits().gas_cap_gwei)
    }

    /// Finishes every open intent of the signer (approvals and deposits alike): run at start,
    /// so a hub killed between send and receipt completes what it sent.
    pub async fn recover_intents(&self) -> Result<usize, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain_id = self.inner.chain.chain_id();
        let from = format!("{:#x}", signer.address());
        let pending = self.inner.chain.pending_nonce(signer.address()).await?;
        pg.reconcile_nonce(chain_id, &from, pending)
            .await
            .map_err(store_err)?;
        let _local = self.writes().local.clone().lock_owned().await;
        let lock = self.lock_signer().await?;
        let open = pg
            .unfinished_intents(chain_id, &from)
            .await
            .map_err(store_err)?;
        let mut done = 0;
        let mut result = Ok(());
        for it in open.iter().filter(|i| !i.key.contains('#')) {
            if it.status == TxStatus::Pending && it.nonce.is_none() {
                // Never signed: nothing left the hub. Void it and give the notional back.
                self.settle(it, false).await;
                let _ = pg
                    .finish_intent(
                        it.id,
                        &Outcome {
                            status: TxStatus::Dropped,
                            tx_hash: None,
                            receipt: None,
                            revert_reason: None,
                            gas_used: None,
                            error: Some("never signed before a restart".into()),
                        },
                    )
                    .await;
                done += 1;
                continue;
            }
            match self.drive_family(it).await {
                Ok(()) => done += 1,
                Err(e) => result = Err(e),
            }
        }
        lock.release().await;
        result.map(|()| done)
    }
}

/// What an intent row keeps of its write: the steps so far, its reservation, the prediction,
/// the risk report, and how its spend is valued at settlement (mid price and tokens).
fn saved_steps(steps: &[Step], reservation: Value, plan: &Plan, report: &RiskReport) -> Value {
    json!({
        "steps": steps,
        "reservation": reservation,
        "predicted": plan.predicted,
        "risk": report,
        "valuation": plan.state.mid_price_raw.map(|mid| json!({
            "mid": mid.0.to_string(),
            "base": format!("{:#x}", plan.read.base_token.address),
            "quote": format!("{:#x}", plan.read.quote_token.address),
        })),
    })
}

fn reservation_of(it: &Intent) -> Option<(DailyCapScope, u64)> {
    let r = it.steps.as_ref()?.get("reservation")?;
    let scope = r.get("scope")?.as_str()?;
    let day = r.get("day")?.as_u64()?;
    let (chain, pool) = scope.split_once(':')?;
    let chain = pmm_core::schema::ChainName::new(chain).ok()?;
    Some((daily_cap_scope(&chain, pool.parse().ok()?), day))
}

fn intent_call(it: &Intent) -> Result<Call, ToolError> {
    let c = it
        .call
        .as_ref()
        .ok_or_else(|| ToolError::Store(format!("intent {} has no call", it.key)))?;
    Ok(Call {
        label: "stored",
        to: c
            .to
            .parse()
            .map_err(|_| ToolError::Store("stored call target is not an address".into()))?,
        input: parse_hex("call_input", &c.input)?,
    })
}

fn attempt_of(s: &SignedTx, attempt: u32) -> Attempt {
    Attempt {
        attempt,
        nonce: s.nonce,
        tx_hash: format!("{:#x}", s.hash),
        raw_tx: hex_of(&s.raw),
        max_fee_per_gas: s.fees.max_fee_per_gas,
        max_priority_fee_per_gas: s.fees.max_priority_fee_per_gas,
    }
}

fn signed_of(a: &Attempt) -> Result<SignedTx, ToolError> {
    Ok(SignedTx {
        hash: a
            .tx_hash
            .parse()
            .map_err(|_| ToolError::Store("stored hash is not 32 bytes".into()))?,
        raw: parse_hex("raw_tx", &a.raw_tx)?,
        nonce: a.nonce,
        fees: FeeCaps {
            max_fee_per_gas: a.max_fee_per_gas,
            max_priority_fee_per_gas: a.max_priority_fee_per_gas,
        },
    })
}

/// Whether the node's dry-run return equals the exact prediction.
fn check_dry_run(
    decode: Decode,
    out: &Bytes,
    predicted: Option<&WritePrediction>,
) -> Result<(), String> {
    let Some(p) = predicted else {
        return match decode {
            Decode::Reset => Ok(()),
            _ => Err("no prediction to compare".into()),
        };
    };
    let (shares, base, quote) = match decode {
        Decode::DvmDeposit => IDODOV2Proxy02::addDVMLiquidityCall::abi_decode_returns(out)
            .map(|r| (r.shares, r.baseAdjustedInAmount, r.quoteAdjustedInAmount))
            .map_err(|e| format!("undecodable addDVMLiquidity return: {e}"))?,
        Decode::DspDeposit => IDODODspProxy::addDSPLiquidityCall::abi_decode_returns(out)
            .map(|r| (r.shares, r.baseAdjustedInAmount, r.quoteAdjustedInAmount))
            .map_err(|e| format!("undecodable addDSPLiquidity return: {e}"))?,
        Decode::SellShares => {
            pmm_chain::abi::IDODOV2Shares::sellSharesCall::abi_decode_returns(out)
                .map(|r| (p.shares.0, r.baseAmount, r.quoteAmount))
                .map_err(|e| format!("undecodable sellShares return: {e}"))?
        }
        Decode::Reset => return Ok(()),
    };
    if (shares, base, quote) != (p.shares.0, p.base.0, p.quote.0) {
        return Err(format!(
            "the node's dry run ({shares} shares, {base} base, {quote} quote) differs from the exact math ({}, {}, {})",
            p.shares.0, p.base.0, p.quote.0
        ));
    }
    Ok(())
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
