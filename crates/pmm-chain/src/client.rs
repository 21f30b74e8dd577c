//! The one handle every chain operation goes through: a provider, its scrubbed endpoint,
//! the chain id and the read caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Block;

use crate::batch::rpc_error;
use crate::endpoint::Endpoint;
use crate::error::ChainError;
use crate::types::{BlockRef, PoolRead, TokenInfo};
use crate::watch::AccountHoldings;

/// How many recent blocks of pool reads the cache keeps.
const CACHE_BLOCK_WINDOW: u64 = 8;
/// Upper bound on cached reads, whatever their block.
const CACHE_MAX_ENTRIES: usize = 4096;

/// Values of a pool that never change after `init`: token addresses and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolStatics {
    pub(crate) version: Option<String>,
    pub(crate) base: TokenInfo,
    pub(crate) quote: TokenInfo,
    pub(crate) maintainer: Option<Address>,
    pub(crate) oracle: Option<Address>,
    pub(crate) feed_decimals: Option<u8>,
}

/// Statics cache: pool and feed to the pool's immutable values.
type StaticsCache = Arc<Mutex<HashMap<(Address, Option<Address>), Arc<PoolStatics>>>>;

/// Key of the per-block read cache.
pub(crate) type ReadKey = (Address, u64, Option<Address>, Address);
/// Key of the per-block holdings cache: pool, owner, block.
pub(crate) type HoldingsKey = (Address, Address, u64);

/// Connection to one EVM node.
#[derive(Clone)]
pub struct ChainClient {
    pub(crate) provider: DynProvider,
    pub(crate) endpoint: Endpoint,
    chain_id: u64,
    pub(crate) reads: Arc<Mutex<HashMap<ReadKey, Arc<PoolRead>>>>,
    pub(crate) statics: StaticsCache,
    pub(crate) slots: crate::overrides::SlotCache,
    /// Allowance-mapping slot per token, found by probing like `slots`.
    pub(crate) allowance_slots: crate::overrides::SlotCache,
    /// Per-block account holdings, kept like `reads`.
    pub(crate) holdings: Arc<Mutex<HashMap<HoldingsKey, AccountHoldings>>>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("endpoint", &self.endpoint)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl ChainClient {
    /// Connects over HTTP and asks the node for its chain id.
    pub async fn connect(rpc_url: &str) -> Result<Self, ChainError> {
        let endpoint = Endpoint::parse(rpc_url)?;
        let is_local = endpoint.url().host_str().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let rpc = alloy::rpc::client::RpcClient::new(
            crate::transport::QuietHttp::new(&endpoint),
            is_local,
        );
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(rpc)
            .erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| rpc_error("eth_chainId", &endpoint, &e))?;
        Ok(Self {
            provider,
            endpoint,
            chain_id,
            reads: Arc::default(),
            statics: Arc::default(),
            slots: Arc::default(),
            allowance_slots: Arc::default(),
            holdings: Arc::default(),
        })
    }

    /// Chain id the node reported at connect time.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Endpoint without credentials, for logs and health output.
    pub fn endpoint(&self) -> &str {
        self.endpoint.display()
    }

    /// The underlying provider, for callers that need a raw RPC method.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| rpc_error("eth_blockNumber", &self.endpoint, &e))
    }

    /// Stores a read, dropping reads older than the block window.
    pub(crate) fn cache_read(&self, key: ReadKey, read: Arc<PoolRead>) {
        let Ok(mut reads) = self.reads.lock() else {
            return;
        };
        let floor = key.1.saturating_sub(CACHE_BLOCK_WINDOW);
        reads.retain(|k, _| k.1 >= floor);
        if reads.len() >= CACHE_MAX_ENTRIES {
            reads.clear();
        }
        reads.insert(key, read);
    }

    /// A cached read, if any.
    pub(crate) fn cached_read(&self, key: &ReadKey) -> Option<Arc<PoolRead>> {
        self.reads.lock().ok()?.get(key).cloned()
    }

    /// Stores holdings, dropping those older than the block window.
    pub(crate) fn cache_holdings(&self, key: HoldingsKey, h: AccountHoldings) {
        let Ok(mut held) = self.holdings.lock() else {
            return;
        };
        let floor = key.2.saturating_sub(CACHE_BLOCK_WINDOW);
        held.retain(|k, _| k.2 >= floor);
        if held.len() >= CACHE_MAX_ENTRIES {
            held.clear();
        }
        held.insert(key, h);
    }

    /// Cached holdings, if any.
    pub(crate) fn cached_holdings(&self, key: &HoldingsKey) -> Option<AccountHoldings> {
        self.holdings.lock().ok()?.get(key).copied()
    }
}

/// The parts of a block a read records.
pub(crate) fn block_ref_of(block: &Block) -> BlockRef {
    let hash: B256 = block.header.hash;
    BlockRef {
        number: block.header.number,
        hash,
        timestamp: block.header.timestamp,
    }
}
