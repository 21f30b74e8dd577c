//! The testkit's error type.

use std::path::PathBuf;

/// Everything that can go wrong while starting a devnet or deploying and driving fixtures.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No anvil binary was found at any of the places searched.
    #[error("anvil binary not found (searched: {searched})")]
    AnvilNotFound {
        /// The candidate locations, in search order.
        searched: String,
    },
    /// The anvil process could not be spawned.
    #[error("failed to spawn anvil at {path}: {source}")]
    AnvilSpawn {
        /// The binary that was run.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// anvil exited or stopped printing before it reported a listening address.
    #[error("anvil did not become ready: {0}")]
    AnvilNotReady(String),
    /// A dev private key printed by anvil could not be parsed.
    #[error("bad dev key from anvil: {0}")]
    BadDevKey(String),
    /// An account index outside the ten dev accounts.
    #[error("no dev account with index {0} (anvil funds 10)")]
    NoSuchAccount(usize),
    /// Pool parameters that the fixture contracts would reject.
    #[error("invalid pool parameter {field}: {reason}")]
    InvalidParam {
        /// The offending field.
        field: &'static str,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A contract call or deployment failed at the RPC or ABI level.
    #[error("contract call {what} failed: {source}")]
    Contract {
        /// What was being done.
        what: String,
        /// The underlying alloy error (boxed: it is large and errors should stay cheap to move).
        source: Box<alloy::contract::Error>,
    },
    /// A transaction was mined but reverted.
    #[error("transaction {what} reverted (tx {tx_hash})")]
    Reverted {
        /// What was being done.
        what: String,
        /// Hash of the reverted transaction.
        tx_hash: alloy::primitives::B256,
    },
    /// A deployment receipt carried no contract address.
    #[error("deployment of {0} returned no contract address")]
    NoContractAddress(String),
    /// A provider-level RPC call failed.
    #[error("rpc {what} failed: {source}")]
    Rpc {
        /// What was being done.
        what: String,
        /// The transport error.
        source: Box<alloy::transports::TransportError>,
    },
    /// The RPC URL could not be parsed.
    #[error("bad rpc url: {0}")]
    BadUrl(String),
}

/// Result alias for the testkit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
