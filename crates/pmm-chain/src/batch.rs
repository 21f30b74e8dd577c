//! A typed layer over alloy's JSON-RPC batch: every `eth_call` of a batch is pinned to one block.

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes};
use alloy::rpc::client::{BatchRequest, Waiter};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, decode_revert_reason};
use alloy::transports::TransportError;

use crate::endpoint::Endpoint;
use crate::error::ChainError;

/// Outcome of one `eth_call` inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallOutcome<T> {
    /// The call returned and decoded.
    Ok(T),
    /// The node answered with an error (a revert, or a function the contract lacks) or
    /// the bytes did not decode: the getter is absent for our purposes.
    Absent(String),
}

impl<T> CallOutcome<T> {
    /// The value, if present.
    pub(crate) fn ok(self) -> Option<T> {
        match self {
            Self::Ok(v) => Some(v),
            Self::Absent(_) => None,
        }
    }

    /// Whether the call succeeded.
    pub(crate) fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// The value, or [`ChainError::MissingGetter`] for a getter a profile requires.
    pub(crate) fn required(self, pool: Address, getter: &'static str) -> Result<T, ChainError> {
        match self {
            Self::Ok(v) => Ok(v),
            Self::Absent(reason) => Err(ChainError::MissingGetter {
                pool,
                getter,
                reason,
            }),
        }
    }
}

/// A pending typed `eth_call` inside a batch.
pub(crate) struct PendingCall<C: SolCall> {
    waiter: Waiter<Bytes>,
    _call: std::marker::PhantomData<C>,
}

/// Builds the `(tx, block)` params of an `eth_call`.
fn call_params(to: Address, input: Vec<u8>, block: BlockId) -> (TransactionRequest, BlockId) {
    (
        TransactionRequest::default()
            .to(to)
            .input(Bytes::from(input).into()),
        block,
    )
}

/// Queues `call` against `to` at `block`.
pub(crate) fn add_call<C: SolCall>(
    batch: &mut BatchRequest<'_>,
    endpoint: &Endpoint,
    to: Address,
    call: &C,
    block: BlockId,
) -> Result<PendingCall<C>, ChainError> {
    let waiter = batch
        .add_call::<_, Bytes>("eth_call", &call_params(to, call.abi_encode(), block))
        .map_err(|e| rpc_error("eth_call", endpoint, &e))?;
    Ok(PendingCall {
        waiter,
        _call: std::marker::PhantomData,
    })
}

impl<C: SolCall> PendingCall<C> {
    /// Resolves after the batch was sent: node errors become [`CallOutcome::Absent`],
    /// transport failures become [`ChainError::Rpc`].
    pub(crate) async fn resolve(
        self,
        endpoint: &Endpoint,
    ) -> Result<CallOutcome<C::Return>, ChainError> {
        match self.waiter.await {
            Ok(bytes) => Ok(match C::abi_decode_returns(&bytes) {
                Ok(v) => CallOutcome::Ok(v),
                Err(e) if bytes.is_empty() => CallOutcome::Absent(format!("empty return ({e})")),
                Err(e) => CallOutcome::Absent(format!("undecodable return: {e}")),
            }),
            Err(e) => match node_error_reason(&e) {
                Some(reason) => Ok(CallOutcome::Absent(reason)),
                None => Err(rpc_error("eth_call", endpoint, &e)),
            },
        }
    }
}

/// The revert reason when `err` is an answer from the node rather than a transport failure.
pub(crate) fn node_error_reason(err: &TransportError) -> Option<String> {
    let payload = err.as_error_resp()?;
    let decoded = payload
        .as_revert_data()
        .and_then(|d| decode_revert_reason(&d));
    Some(decoded.unwrap_or_else(|| payload.message.to_string()))
}

/// A transport error with the endpoint scrubbed out of its text.
pub(crate) fn rpc_error(
    method: &'static str,
    endpoint: &Endpoint,
    err: &TransportError,
) -> ChainError {
    ChainError::Rpc {
        method,
        message: endpoint.scrub(&err.to_string()),
    }
}
