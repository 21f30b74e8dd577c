//! One batched read of every allowlisted pool per block, for the hub's pool monitor: one
//! request holding one `eth_getBlockByNumber`, `eth_gasPrice`, every pool's getters and the
//! executor's holdings, cached per pool, so the tool calls of that block are served from the
//! cache. With heads pushed by a subscription it is the only request of a block.

use std::sync::Arc;

use alloy::eips::BlockId;
use alloy::primitives::{Address, U128};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;

use crate::batch::rpc_error;
use crate::client::{ChainClient, PoolStatics};
use crate::error::ChainError;
use crate::read::{add_block_call, queue_pool, read_key};
use crate::types::{ReadSpec, has_shares};
use crate::watch::{HoldingsOf, queue_holdings};

/// Pools per batch of [`ChainClient::prefetch_pools_at`]: about fifteen calls each, so a batch
/// stays under the ~1000-call limit common RPC providers set.
const POOLS_PER_BATCH: usize = 64;

impl ChainClient {
    /// Reads every pool of `specs` not yet cached at block `number` in ONE batched round trip
    /// (one `eth_getBlockByNumber` shared by all, then each pool's getters, and `holder`'s
    /// holdings in each pool's tokens and shares) and caches them, so the reads of that block
    /// that follow, [`ChainClient::holdings`] included, cost no RPC. A pool whose statics or
    /// getters fail is left uncached: its own read reports why. Returns the node's gas price,
    /// asked in the same round trip (with the head on its own when no pool needed reading).
    pub async fn prefetch_pools_at(
        &self,
        specs: &[ReadSpec],
        holder: Option<Address>,
        number: u64,
    ) -> Result<u128, ChainError> {
        let misses: Vec<&ReadSpec> = specs
            .iter()
            .filter(|s| {
                self.cached_read(&read_key(s, number)).is_none()
                    || holder.is_some_and(|h| self.cached_holdings(&(s.pool, h, number)).is_none())
            })
            .collect();
        // Statics are fetched once per pool, so only a first sweep pays these round trips.
        let mut ready: Vec<(&ReadSpec, Arc<PoolStatics>)> = Vec::with_capacity(misses.len());
        for spec in misses {
            match self.pool_statics(spec).await {
                Ok(st) => ready.push((spec, st)),
                Err(e) => tracing::debug!(pool = %spec.pool, error = %e, "pool statics unreadable"),
            }
        }
        let mut gas_price = None;
        for chunk in ready.chunks(POOLS_PER_BATCH) {
            let with_gas = gas_price.is_none();
            let gas = self.prefetch_chunk(chunk, holder, number, with_gas).await?;
            gas_price = gas_price.or(gas);
        }
        match gas_price {
            Some(g) => Ok(g),
            None => Ok(self.head().await?.gas_price_wei),
        }
    }

    /// One batch of `pools`, with `eth_gasPrice` when `with_gas`.
    async fn prefetch_chunk(
        &self,
        pools: &[(&ReadSpec, Arc<PoolStatics>)],
        holder: Option<Address>,
        number: u64,
        with_gas: bool,
    ) -> Result<Option<u128>, ChainError> {
        let ep = &self.endpoint;
        let mut batch = BatchRequest::new(self.provider.client());
        let block_w = add_block_call(&mut batch, ep, number)?;
        let gas_w = if with_gas {
            Some(
                batch
                    .add_call::<_, U128>("eth_gasPrice", &())
                    .map_err(|e| rpc_error("eth_gasPrice", ep, &e))?,
            )
        } else {
            None
        };
        let at = BlockId::number(number);
        let mut pending = Vec::with_capacity(pools.len());
        for (spec, statics) in pools {
            let held = match holder {
                Some(owner) => Some(queue_holdings(
                    &mut batch,
                    ep,
                    HoldingsOf {
                        pool: spec.pool,
                        base: statics.base.address,
                        quote: statics.quote.address,
                        shares: has_shares(spec.kind),
                        owner,
                    },
                    at,
                )?),
                None => None,
            };
            pending.push((queue_pool(&mut batch, ep, spec, statics, at)?, held));
        }
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let block = block_w
            .await
            .map_err(|e| rpc_error("eth_getBlockByNumber", ep, &e))?
            .ok_or(ChainError::BlockNotFound(number))?;
        let gas = match gas_w {
            Some(w) => Some(
                w.await
                    .map_err(|e| rpc_error("eth_gasPrice", ep, &e))?
                    .to::<u128>(),
            ),
            None => None,
        };
        for ((spec, statics), (p, held)) in pools.iter().zip(pending) {
            match self.resolve_pool(p, spec, statics, &block).await {
                Ok(read) => self.cache_read(read_key(spec, number), Arc::new(read)),
                Err(e) => {
                    tracing::debug!(pool = %spec.pool, error = %e, "batched pool read failed")
                }
            }
            if let (Some(h), Some(owner)) = (held, holder) {
                match h.resolve(ep).await {
                    Ok(h) => self.cache_holdings((spec.pool, owner, number), h),
                    Err(e) => {
                        tracing::debug!(pool = %spec.pool, error = %e, "batched holdings read failed")
                    }
                }
            }
        }
        Ok(gas)
    }
}
