//! What the hub's pool monitor and its policy checks read besides a pool's state: the latest
//! block and gas price in one round trip, and an account's holdings in a pool's tokens and
//! shares in one batch pinned to the state's block.

use std::time::{Duration, Instant};

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;

use crate::ChainClient;
use crate::abi::{IDODOV2Shares, IERC20};
use crate::batch::{add_call, rpc_error};
use crate::error::ChainError;

/// The chain head: latest block number and gas price, from one batched request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Latest block number.
    pub number: u64,
    /// `eth_gasPrice`, wei.
    pub gas_price_wei: u128,
}

/// An account's balances in one pool's tokens and shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountHoldings {
    /// Base token balance, raw units.
    pub base: U256,
    /// Quote token balance, raw units.
    pub quote: U256,
    /// LP shares of the pool, when it issues them.
    pub shares: Option<U256>,
}

impl ChainClient {
    /// Publishes `head`, seen at `seen`, as the head readers may use without asking the node
    /// (the hub's pool monitor publishes a block once its pools are cached). A head seen
    /// earlier than the published one never replaces it.
    pub fn publish_head(&self, head: Head, seen: Instant) {
        if let Ok(mut g) = self.published.lock()
            && g.is_none_or(|(_, at)| at <= seen)
        {
            *g = Some((head, seen));
        }
    }

    /// The published head, if it was seen within `max_age`; older, a reader must ask the node.
    pub fn published_head(&self, max_age: Duration) -> Option<Head> {
        let (head, seen) = (*self.published.lock().ok()?)?;
        (seen.elapsed() <= max_age).then_some(head)
    }

    /// Latest block number and gas price in one batched round trip.
    pub async fn head(&self) -> Result<Head, ChainError> {
        let ep = &self.endpoint;
        let mut batch = BatchRequest::new(self.provider.client());
        let number = batch
            .add_call::<_, alloy::primitives::U64>("eth_blockNumber", &())
            .map_err(|e| rpc_error("eth_blockNumber", ep, &e))?;
        let gas = batch
            .add_call::<_, alloy::primitives::U128>("eth_gasPrice", &())
            .map_err(|e| rpc_error("eth_gasPrice", ep, &e))?;
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let number = number
            .await
            .map_err(|e| rpc_error("eth_blockNumber", ep, &e))?;
        let gas = gas.await.map_err(|e| rpc_error("eth_gasPrice", ep, &e))?;
        Ok(Head {
            number: number.to::<u64>(),
            gas_price_wei: gas.to::<u128>(),
        })
    }

    /// `owner`'s balances of `base`, `quote` and (when `shares`) the pool's LP shares at block
    /// `number`, in one batch. A token that does not answer `balanceOf` is an error: holdings
    /// that cannot be read are unknown, never zero.
    pub async fn holdings(
        &self,
        pool: Address,
        base: Address,
        quote: Address,
        shares: bool,
        owner: Address,
        number: u64,
    ) -> Result<AccountHoldings, ChainError> {
        let ep = &self.endpoint;
        let at = BlockId::number(number);
        let mut batch = BatchRequest::new(self.provider.client());
        let b = add_call(&mut batch, ep, base, &IERC20::balanceOfCall { owner }, at)?;
        let q = add_call(&mut batch, ep, quote, &IERC20::balanceOfCall { owner }, at)?;
        let s = if shares {
            Some(add_call(
                &mut batch,
                ep,
                pool,
                &IDODOV2Shares::balanceOfCall { owner },
                at,
            )?)
        } else {
            None
        };
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        Ok(AccountHoldings {
            base: b.resolve(ep).await?.required(base, "balanceOf")?,
            quote: q.resolve(ep).await?.required(quote, "balanceOf")?,
            shares: match s {
                Some(s) => Some(s.resolve(ep).await?.required(pool, "balanceOf")?),
                None => None,
            },
        })
    }
}
