//! Dry runs: `eth_call` and `eth_estimateGas` of an unsigned transaction request.
//!
//! Nothing here signs or sends; a request carries no signature and the node only executes it
//! against a copy of its state.

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::rpc::types::state::StateOverride;
use alloy::sol_types::SolCall;

use crate::batch::{node_error_reason, rpc_error};
use crate::client::ChainClient;
use crate::error::ChainError;

/// What a dry run of one transaction returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// Return data of the `eth_call`.
    pub output: Bytes,
    /// `eth_estimateGas` at the same block.
    pub gas: u64,
    /// Block the dry run was pinned to.
    pub block: u64,
}

impl ChainClient {
    /// `eth_call` of `tx` at `block` (latest when `None`), with optional state overrides.
    /// A revert becomes [`ChainError::Reverted`] with its decoded reason.
    pub async fn call_tx(
        &self,
        tx: &TransactionRequest,
        block: Option<u64>,
        overrides: Option<StateOverride>,
    ) -> Result<Bytes, ChainError> {
        self.provider
            .call(tx.clone())
            .block(block.map_or(BlockId::latest(), BlockId::number))
            .overrides_opt(overrides)
            .await
            .map_err(|e| self.call_error(tx, &e, "eth_call"))
    }

    /// Typed `eth_call` of a contract function from `from`.
    pub async fn call_sol<C: SolCall>(
        &self,
        to: Address,
        from: Address,
        call: &C,
        block: Option<u64>,
        overrides: Option<StateOverride>,
    ) -> Result<C::Return, ChainError> {
        let tx = TransactionRequest::default()
            .from(from)
            .to(to)
            .input(Bytes::from(call.abi_encode()).into());
        let out = self.call_tx(&tx, block, overrides).await?;
        C::abi_decode_returns(&out).map_err(|e| ChainError::Decode {
            what: C::SIGNATURE,
            to,
            message: e.to_string(),
        })
    }

    /// `eth_estimateGas` of `tx` at `block` (latest when `None`), with optional state overrides.
    pub async fn estimate_gas(
        &self,
        tx: &TransactionRequest,
        block: Option<u64>,
        overrides: Option<StateOverride>,
    ) -> Result<u64, ChainError> {
        self.provider
            .estimate_gas(tx.clone())
            .block(block.map_or(BlockId::latest(), BlockId::number))
            .overrides_opt(overrides)
            .await
            .map_err(|e| self.call_error(tx, &e, "eth_estimateGas"))
    }

    /// `eth_call` then `eth_estimateGas` of `tx`, both pinned to the same block and state.
    pub async fn simulate(
        &self,
        tx: &TransactionRequest,
        block: Option<u64>,
        overrides: Option<StateOverride>,
    ) -> Result<Simulation, ChainError> {
        let block = match block {
            Some(b) => b,
            None => self.block_number().await?,
        };
        let output = self.call_tx(tx, Some(block), overrides.clone()).await?;
        let gas = self.estimate_gas(tx, Some(block), overrides).await?;
        Ok(Simulation { output, gas, block })
    }

    fn call_error(
        &self,
        tx: &TransactionRequest,
        err: &alloy::transports::TransportError,
        method: &'static str,
    ) -> ChainError {
        match node_error_reason(err) {
            Some(reason) => ChainError::Reverted {
                to: tx.to.and_then(|t| t.to().copied()).unwrap_or_default(),
                reason,
            },
            None => rpc_error(method, &self.endpoint, err),
        }
    }
}
