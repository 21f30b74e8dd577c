//! EVM I/O with alloy: pool reads, interface identification, dry-run simulation and sending.
//!
//! Every pool read is one batched JSON-RPC round trip pinned to one block number and cached
//! by (pool, block); see [`read`] for the pinning choice. Transactions are built in [`tx`],
//! priced in [`gas`] and signed (with a signer the caller holds), sent and awaited in [`send`].

pub mod abi;
mod batch;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod gas;
pub mod heads;
pub mod identify;
pub mod overrides;
pub mod prefetch;
pub mod raw;
pub mod read;
pub mod send;
pub mod simulate;
mod transport;
pub mod tx;
pub mod types;
pub mod watch;

pub use client::ChainClient;
pub use endpoint::Endpoint;
pub use error::ChainError;
pub use heads::{HeadMode, HeadSource, HeadUpdate};
pub use simulate::Simulation;
pub use types::{
    BlockRef, DetectedProfile, FeedRead, InterfaceReport, PoolRead, PoolType, RawPmmState,
    RawV1State, ReadSpec, TokenInfo,
};
pub use watch::{AccountHoldings, Head};
