//! Signing with a given signer, sending raw, receipts polled with a deadline, and revert
//! reasons of mined failures.
//!
//! Receipts are polled here rather than watched through alloy's block stream, which can miss a
//! block and hang; the caller owns every deadline. The nonce is the caller's: this module never
//! asks a cached nonce manager (alloy's drifts after a send error and across clones).

use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::state::{AccountOverride, StateOverride};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolValue;

use crate::batch::{node_error_reason, rpc_error};
use crate::client::ChainClient;
use crate::error::ChainError;
use crate::gas::FeeCaps;
use crate::tx::{Call, IERC20Allowance};

/// Receipt poll interval.
const POLL: Duration = Duration::from_millis(100);
/// Candidate slots probed for an allowance mapping.
const MAX_SLOT_PROBE: u64 = 12;

/// A transaction ready to sign: the call plus everything the hub fixed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParams {
    /// Chain id (replay protection).
    pub chain_id: u64,
    /// Nonce allocated by the caller.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Fee caps.
    pub fees: FeeCaps,
}

/// A signed transaction: its hash and the bytes `eth_sendRawTransaction` takes.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Transaction hash.
    pub hash: B256,
    /// EIP-2718 encoding.
    pub raw: Bytes,
    /// Nonce it was signed with.
    pub nonce: u64,
    /// Fee caps it was signed with.
    pub fees: FeeCaps,
}

impl std::fmt::Debug for SignedTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedTx")
            .field("hash", &self.hash)
            .field("nonce", &self.nonce)
            .field("fees", &self.fees)
            .finish_non_exhaustive()
    }
}

/// The EIP-1559 transaction of `call` with `p`.
pub fn unsigned(call: &Call, p: &TxParams) -> TxEip1559 {
    TxEip1559 {
        chain_id: p.chain_id,
        nonce: p.nonce,
        gas_limit: p.gas_limit,
        max_fee_per_gas: p.fees.max_fee_per_gas,
        max_priority_fee_per_gas: p.fees.max_priority_fee_per_gas,
        to: TxKind::Call(call.to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: call.input.clone(),
    }
}

/// Signs `call` with `p` by `signer`.
pub fn sign(
    signer: &dyn TxSignerSync<Signature>,
    call: &Call,
    p: &TxParams,
) -> Result<SignedTx, ChainError> {
    let mut tx = unsigned(call, p);
    let sig = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| ChainError::Sign(e.to_string()))?;
    let envelope = TxEnvelope::from(tx.into_signed(sig));
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718().into(),
        nonce: p.nonce,
        fees: p.fees,
    })
}

/// What the node said to a raw transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// In the pool (or the node already had it: a retried send).
    Accepted,
    /// The nonce is already used by a mined transaction (ours or another).
    NonceUsed(String),
    /// Refused for another reason (underpriced, out of funds, ...).
    Rejected(String),
}

/// A mined transaction's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mined {
    /// Hash of the transaction that was mined.
    pub hash: B256,
    /// Block it was mined in.
    pub block_number: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// Gas used.
    pub gas_used: u64,
    /// Effective gas price, wei.
    pub effective_gas_price: u128,
    /// Every ERC-20 `Transfer` the transaction emitted: what it really moved, which the hub
    /// books into the notional ledger instead of the amounts it predicted.
    #[serde(default)]
    pub transfers: Vec<Transfer>,
}

/// One ERC-20 `Transfer(from, to, value)` log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// Token contract that emitted the log.
    pub token: Address,
    /// Sender.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// Amount, raw token units.
    pub value: U256,
}

impl Mined {
    fn of(r: &TransactionReceipt) -> Self {
        let transfer_topic = keccak256("Transfer(address,address,uint256)");
        let transfers = r
            .inner
            .logs()
            .iter()
            .filter(|l| l.topics().len() == 3 && l.topics()[0] == transfer_topic)
            .filter(|l| l.data().data.len() == 32)
            .map(|l| Transfer {
                token: l.address(),
                from: Address::from_word(l.topics()[1]),
                to: Address::from_word(l.topics()[2]),
                value: U256::from_be_slice(&l.data().data),
            })
            .collect();
        Self {
            hash: r.transaction_hash,
            block_number: r.block_number.unwrap_or_default(),
            success: r.status(),
            gas_used: r.gas_used,
            effective_gas_price: r.effective_gas_price,
            transfers,
        }
    }

    /// Sum of `token` moved from `from` to `to` by this transaction.
    pub fn moved(&self, token: Address, from: Address, to: Address) -> U256 {
        self.transfers
            .iter()
            .filter(|t| t.token == token && t.from == from && t.to == to)
            .fold(U256::ZERO, |acc, t| acc.saturating_add(t.value))
    }
}

/// Storage key of `owner`/`spender` in `mapping(address => mapping(address => uint256))` at `slot`.
fn allowance_key(owner: Address, spender: Address, slot: u64) -> B256 {
    let inner = keccak256((owner, U256::from(slot)).abi_encode());
    keccak256((spender, inner).abi_encode())
}

impl ChainClient {
    /// The node's pending nonce of `address` (mined plus queued in its pool).
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(address)
            .pending()
            .await
            .map_err(|e| rpc_error("eth_getTransactionCount", &self.endpoint, &e))
    }

    /// The mined nonce of `address` (transactions in blocks only).
    pub async fn latest_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(address)
            .latest()
            .await
            .map_err(|e| rpc_error("eth_getTransactionCount", &self.endpoint, &e))
    }

    /// Native balance of `address`, wei.
    pub async fn native_balance(&self, address: Address) -> Result<U256, ChainError> {
        self.provider
            .get_balance(address)
            .await
            .map_err(|e| rpc_error("eth_getBalance", &self.endpoint, &e))
    }

    /// `eth_sendRawTransaction`, classified. Transport failures are errors: the caller cannot
    /// tell whether the node got the bytes, so it must look the hash up before trying again.
    pub async fn send_raw(&self, tx: &SignedTx) -> Result<SendOutcome, ChainError> {
        let sent: Result<B256, _> = self
            .provider
            .raw_request("eth_sendRawTransaction".into(), (tx.raw.clone(),))
            .await;
        match sent {
            Ok(_) => Ok(SendOutcome::Accepted),
            Err(e) => match e.as_error_resp() {
                Some(resp) => {
                    let msg = resp.message.to_lowercase();
                    if msg.contains("already known") || msg.contains("already imported") {
                        Ok(SendOutcome::Accepted)
                    } else if msg.contains("nonce too low")
                        || msg.contains("nonce has already been used")
                    {
                        Ok(SendOutcome::NonceUsed(resp.message.to_string()))
                    } else {
                        Ok(SendOutcome::Rejected(self.endpoint.scrub(&resp.message)))
                    }
                }
                None => Err(rpc_error("eth_sendRawTransaction", &self.endpoint, &e)),
            },
        }
    }

    /// The receipt of `hash`, if mined.
    pub async fn receipt(&self, hash: B256) -> Result<Option<Mined>, ChainError> {
        Ok(self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| rpc_error("eth_getTransactionReceipt", &self.endpoint, &e))?
            .as_ref()
            .map(Mined::of))
    }

    /// Whether the node knows `hash` at all (pending or mined).
    pub async fn knows_tx(&self, hash: B256) -> Result<bool, ChainError> {
        Ok(self
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| rpc_error("eth_getTransactionByHash", &self.endpoint, &e))?
            .is_some())
    }

    /// Polls until one of `hashes` is mined with `confirmations` blocks on top (1 = the
    /// inclusion block itself) or `within` passes (`Ok(None)`).
    pub async fn wait_mined(
        &self,
        hashes: &[B256],
        confirmations: u64,
        within: Duration,
    ) -> Result<Option<Mined>, ChainError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            for &h in hashes {
                if let Some(m) = self.receipt(h).await? {
                    let head = self.block_number().await?;
                    if head + 1 >= m.block_number + confirmations.max(1) {
                        return Ok(Some(m));
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Why a mined transaction reverted: the same call replayed at its parent block. The
    /// node's message when the replay does not revert (the state the block saw differs).
    pub async fn revert_reason(
        &self,
        hash: B256,
        from: Address,
        call: &Call,
        gas_limit: u64,
        mined_in: u64,
    ) -> String {
        let tx = TransactionRequest::default()
            .from(from)
            .to(call.to)
            .gas_limit(gas_limit)
            .input(call.input.clone().into());
        // A call trace gives the exact reason where the node offers one.
        let trace: Result<serde_json::Value, _> = self
            .provider
            .raw_request(
                "debug_traceTransaction".into(),
                (hash, serde_json::json!({"tracer": "callTracer"})),
            )
            .await;
        if let Ok(t) = trace {
            if let Some(r) = t.get("revertReason").and_then(|v| v.as_str()) {
                return r.to_owned();
            }
            let decoded = t
                .get("output")
                .and_then(|v| v.as_str())
                .and_then(|h| alloy::hex::decode(h.trim_start_matches("0x")).ok())
                .and_then(|b| alloy::sol_types::decode_revert_reason(&b));
            if let Some(r) = decoded {
                return r;
            }
            if let Some(e) = t.get("error").and_then(|v| v.as_str()) {
                return e.to_owned();
            }
        }
        // Otherwise a replay: at the inclusion block (its timestamp, and the state after the
        // transactions before it that stayed), then at its parent.
        for at in [mined_in, mined_in.saturating_sub(1)] {
            match self.call_tx(&tx, Some(at), None).await {
                Err(ChainError::Reverted { reason, .. }) => return reason,
                Err(e) => return format!("reverted; replay failed: {e}"),
                Ok(_) => {}
            }
        }
        "reverted (out of gas, or state changed inside the block)".to_owned()
    }

    /// ERC20 allowance of `owner` to `spender`.
    pub async fn allowance(
        &self,
        token: Address,
        owner: Address,
        spender: Address,
        block: Option<u64>,
    ) -> Result<U256, ChainError> {
        self.call_sol(
            token,
            Address::ZERO,
            &IERC20Allowance::allowanceCall { owner, spender },
            block,
            None,
        )
        .await
    }

    /// Adds to `overrides` an allowance of `amount` from `owner` to `spender` on `token`, so a
    /// deposit can be dry-run before its approval is mined. The mapping's slot is probed.
    pub async fn add_allowance_override(
        &self,
        overrides: &mut StateOverride,
        token: Address,
        owner: Address,
        spender: Address,
        amount: U256,
    ) -> Result<(), ChainError> {
        let cached = self
            .allowance_slots
            .lock()
            .ok()
            .and_then(|m| m.get(&token).copied().flatten());
        let marker = U256::from(0x5eed_0a11_0e5eu64);
        let candidates: Vec<u64> = match cached {
            Some(slot) => vec![slot],
            None => (0..MAX_SLOT_PROBE).collect(),
        };
        for slot in candidates {
            if cached == Some(slot) {
                overrides
                    .entry(token)
                    .or_default()
                    .state_diff
                    .get_or_insert_with(Default::default)
                    .insert(allowance_key(owner, spender, slot), B256::from(amount));
                return Ok(());
            }
            let mut acct = AccountOverride::default();
            acct.set_state_diff([(allowance_key(owner, spender, slot), B256::from(marker))]);
            let mut probe = StateOverride::default();
            probe.insert(token, acct);
            let got = self
                .call_sol(
                    token,
                    Address::ZERO,
                    &IERC20Allowance::allowanceCall { owner, spender },
                    None,
                    Some(probe),
                )
                .await;
            match got {
                Ok(v) if v == marker => {
                    if let Ok(mut m) = self.allowance_slots.lock() {
                        m.insert(token, Some(slot));
                    }
                    overrides
                        .entry(token)
                        .or_default()
                        .state_diff
                        .get_or_insert_with(Default::default)
                        .insert(allowance_key(owner, spender, slot), B256::from(amount));
                    return Ok(());
                }
                Err(e @ ChainError::Rpc { .. }) => return Err(e),
                _ => {}
            }
        }
        Err(ChainError::NoBalanceSlot(token))
    }
}

/// The node's text for a transport error, if it answered (used by callers that classify).
pub fn node_reason(err: &alloy::transports::TransportError) -> Option<String> {
    node_error_reason(err)
}
