//! What the hub's pool monitor and its policy checks read besides a pool's state: the latest
//! block and gas price in one round trip, and an account's holdings in a pool's tokens and
//! shares in one batch pinned to the state's block.

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;

use crate::ChainClient;
use crate::abi::{IDODOV2Shares, IERC20};
use crate::batch::{PendingCall, add_call, rpc_error};
use crate::endpoint::Endpoint;
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
    /// `number`, in one batch (cached per pool, owner and block: the pool monitor's sweep
    /// reads the executor's with the pools). A token that does not answer `balanceOf` is an
    /// error: holdings that cannot be read are unknown, never zero.
    pub async fn holdings(
        &self,
        pool: Address,
        base: Address,
        quote: Address,
        shares: bool,
        owner: Address,
        number: u64,
    ) -> Result<AccountHoldings, ChainError> {
        let key = (pool, owner, number);
        if let Some(hit) = self.cached_holdings(&key) {
            return Ok(hit);
        }
        let ep = &self.endpoint;
        let mut batch = BatchRequest::new(self.provider.client());
        let pending = queue_holdings(
            &mut batch,
            ep,
            HoldingsOf {
                pool,
                base,
                quote,
                shares,
                owner,
            },
            BlockId::number(number),
        )?;
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let h = pending.resolve(ep).await?;
        self.cache_holdings(key, h);
        Ok(h)
    }
}

/// Whose holdings of which pool's tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldingsOf {
    pub(crate) pool: Address,
    pub(crate) base: Address,
    pub(crate) quote: Address,
    /// Whether the pool issues LP shares.
    pub(crate) shares: bool,
    pub(crate) owner: Address,
}

/// The `balanceOf` calls of one account's holdings, queued in a batch not yet answered.
pub(crate) struct HoldingsPending {
    of: HoldingsOf,
    base: PendingCall<IERC20::balanceOfCall>,
    quote: PendingCall<IERC20::balanceOfCall>,
    shares: Option<PendingCall<IDODOV2Shares::balanceOfCall>>,
}

/// Queues `of`'s balance calls into `batch`, pinned to `at`.
pub(crate) fn queue_holdings(
    batch: &mut BatchRequest<'_>,
    ep: &Endpoint,
    of: HoldingsOf,
    at: BlockId,
) -> Result<HoldingsPending, ChainError> {
    let owner = of.owner;
    Ok(HoldingsPending {
        of,
        base: add_call(batch, ep, of.base, &IERC20::balanceOfCall { owner }, at)?,
        quote: add_call(batch, ep, of.quote, &IERC20::balanceOfCall { owner }, at)?,
        shares: if of.shares {
            Some(add_call(
                batch,
                ep,
                of.pool,
                &IDODOV2Shares::balanceOfCall { owner },
                at,
            )?)
        } else {
            None
        },
    })
}

impl HoldingsPending {
    /// The holdings, once the batch was sent.
    pub(crate) async fn resolve(self, ep: &Endpoint) -> Result<AccountHoldings, ChainError> {
        let of = self.of;
        Ok(AccountHoldings {
            base: self
                .base
                .resolve(ep)
                .await?
                .required(of.base, "balanceOf")?,
            quote: self
                .quote
                .resolve(ep)
                .await?
                .required(of.quote, "balanceOf")?,
            shares: match self.shares {
                Some(s) => Some(s.resolve(ep).await?.required(of.pool, "balanceOf")?),
                None => None,
            },
        })
    }
}
