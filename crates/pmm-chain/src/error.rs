//! Typed errors of every chain operation.
//!
//! Messages never carry the RPC URL: transport errors are rewritten through
//! [`crate::endpoint::Endpoint::scrub`] before they are stored here.

use alloy::primitives::Address;

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC URL does not parse.
    #[error("invalid RPC URL: {0}")]
    InvalidUrl(String),
    /// The node could not be reached or answered with a transport-level error.
    #[error("RPC {method} failed: {message}")]
    Rpc {
        /// JSON-RPC method that failed.
        method: &'static str,
        /// Scrubbed error text.
        message: String,
    },
    /// The node answered, but the call reverted.
    #[error("call to {to} reverted: {reason}")]
    Reverted {
        /// Contract called.
        to: Address,
        /// Decoded revert reason, or the raw error text.
        reason: String,
    },
    /// Returned bytes do not decode as the declared return type.
    #[error("cannot decode {what} from {to}: {message}")]
    Decode {
        /// Function whose return failed to decode.
        what: &'static str,
        /// Contract called.
        to: Address,
        /// Decoder message.
        message: String,
    },
    /// A getter the pool profile requires is missing or reverted.
    #[error("pool {pool} does not answer {getter}: {reason}")]
    MissingGetter {
        /// Pool read.
        pool: Address,
        /// Getter that failed.
        getter: &'static str,
        /// Revert reason or decode error.
        reason: String,
    },
    /// The chain disagrees with the allowlist entry.
    #[error("pool {pool}: {what} is {found} on chain, the allowlist says {expected}")]
    Mismatch {
        /// Pool read.
        pool: Address,
        /// Field compared.
        what: &'static str,
        /// Allowlisted value.
        expected: String,
        /// On-chain value.
        found: String,
    },
    /// No probed storage slot holds the token's balances.
    #[error("cannot locate the balance mapping of token {0}: non-standard storage")]
    NoBalanceSlot(Address),
    /// The address holds no code.
    #[error("{0} has no code (an EOA or an undeployed address)")]
    NoCode(Address),
    /// The node returned no block for a number it just reported.
    #[error("block {0} not found")]
    BlockNotFound(u64),
    /// The signer refused to sign (the message never carries key material).
    #[error("signing failed: {0}")]
    Sign(String),
}
