//! EVM I/O with alloy: pool reads, interface identification and dry-run simulation.
//!
//! Every pool read is one batched JSON-RPC round trip pinned to one block number and cached
//! by (pool, block); see [`read`] for the pinning choice. Nothing in this crate signs.

pub mod abi;
mod batch;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod identify;
pub mod overrides;
pub mod raw;
pub mod read;
pub mod simulate;
pub mod types;
pub mod watch;

pub use client::ChainClient;
pub use endpoint::Endpoint;
pub use error::ChainError;
pub use simulate::Simulation;
pub use types::{
    BlockRef, DetectedProfile, FeedRead, InterfaceReport, PoolRead, PoolType, RawPmmState,
    RawV1State, ReadSpec, TokenInfo,
};
pub use watch::{AccountHoldings, Head};
