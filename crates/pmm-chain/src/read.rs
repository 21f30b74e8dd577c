//! One batched read per pool per block.
//!
//! Pinning: the latest block number is fetched first (one small request that also serves as
//! the cache key), then every getter goes out in ONE JSON-RPC batch whose `eth_call`s all name
//! that block number, together with `eth_getBlockByNumber` for its hash and timestamp. Pinning
//! by number rather than by the tag `latest` guarantees the getters agree with each other even
//! when a block lands while the node works through the batch. Token addresses, symbols and
//! decimals never change after a pool's `init`, so they are fetched once per pool and kept.
//!
//! The hub's pool monitor reads all allowlisted pools of a new block at once
//! ([`crate::prefetch`]).

use std::sync::Arc;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::client::{BatchRequest, Waiter};
use alloy::rpc::types::Block;

use crate::abi::{
    IChainlinkFeed, IDODOPriceOracle, IDODOV1Pool, IDODOV2Pool, IDODOV2Shares, IDODOV2Targets,
    IDODOV2Twap, IDPPOracle, IERC20,
};
use crate::batch::{CallOutcome, PendingCall, add_call, rpc_error};
use crate::client::{ChainClient, PoolStatics, block_ref_of};
use crate::endpoint::Endpoint;
use crate::error::ChainError;
use crate::types::{
    FeedRead, PoolRead, PoolType, RawPmmState, RawV1State, ReadSpec, TokenInfo, has_shares,
    stores_targets,
};

impl ChainClient {
    /// Reads a pool at the latest block (cached by pool and block number).
    pub async fn read_pool(&self, spec: &ReadSpec) -> Result<Arc<PoolRead>, ChainError> {
        let number = self.block_number().await?;
        self.read_pool_at(spec, number).await
    }

    /// Reads a pool at block `number` in one batched round trip (cached).
    pub async fn read_pool_at(
        &self,
        spec: &ReadSpec,
        number: u64,
    ) -> Result<Arc<PoolRead>, ChainError> {
        let key = read_key(spec, number);
        if let Some(hit) = self.cached_read(&key) {
            return Ok(hit);
        }
        let statics = self.pool_statics(spec).await?;
        let read = Arc::new(self.read_uncached(spec, &statics, number).await?);
        self.cache_read(key, Arc::clone(&read));
        Ok(read)
    }

    async fn read_uncached(
        &self,
        spec: &ReadSpec,
        statics: &PoolStatics,
        number: u64,
    ) -> Result<PoolRead, ChainError> {
        let ep = &self.endpoint;
        let mut batch = BatchRequest::new(self.provider.client());
        let block_w = add_block_call(&mut batch, ep, number)?;
        let pending = queue_pool(&mut batch, ep, spec, statics, BlockId::number(number))?;
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let block = block_w
            .await
            .map_err(|e| rpc_error("eth_getBlockByNumber", ep, &e))?
            .ok_or(ChainError::BlockNotFound(number))?;
        self.resolve_pool(pending, spec, statics, &block).await
    }

    /// Builds a pool's read from its answered getters and the block they are pinned to.
    pub(crate) async fn resolve_pool(
        &self,
        p: PoolPending,
        spec: &ReadSpec,
        statics: &PoolStatics,
        block: &Block,
    ) -> Result<PoolRead, ChainError> {
        let ep = &self.endpoint;
        let pool = spec.pool;
        let PoolPending {
            base_bal,
            quote_bal,
            feed_w,
            oracle_price_w,
            v2,
            v1,
        } = p;
        let base_balance = base_bal
            .resolve(ep)
            .await?
            .required(statics.base.address, "balanceOf")?;
        let quote_balance = quote_bal
            .resolve(ep)
            .await?
            .required(statics.quote.address, "balanceOf")?;
        // A feed that reverts is a missing feed, not an unreadable pool: the state still
        // answers and the policy treats the missing observation as a broken feed.
        let feed = match feed_w {
            Some((feed, w)) => w.resolve(ep).await?.ok().map(|r| FeedRead {
                feed,
                round_id: r.roundId.to::<u128>(),
                answer: r.answer,
                // An `updatedAt` past u64 is no real time: read it as the epoch so the
                // policy sees a stale feed and denies, rather than a fresh one.
                updated_at: u64::try_from(r.updatedAt).unwrap_or(0),
                decimals: statics.feed_decimals.unwrap_or_default(),
            }),
            None => None,
        };
        let mut read = PoolRead {
            pool,
            kind: spec.kind,
            chain_id: self.chain_id(),
            block: block_ref_of(block),
            version: statics.version.clone(),
            base_token: statics.base.clone(),
            quote_token: statics.quote.clone(),
            maintainer: statics.maintainer,
            pmm: None,
            mid_price: None,
            vault_reserve: None,
            fee_rates: (U256::ZERO, U256::ZERO),
            fee_trader: spec.fee_trader,
            stored_targets: None,
            stored_i: None,
            twap_last_update: None,
            total_shares: None,
            base_balance,
            quote_balance,
            oracle_enabled: None,
            oracle: statics.oracle,
            oracle_price: None,
            v1: None,
            feed,
        };
        if let Some(w) = oracle_price_w {
            read.oracle_price = w.resolve(ep).await?.ok();
        }
        if let Some(p) = v2 {
            let s = p
                .state
                .resolve(ep)
                .await?
                .required(pool, "getPMMStateForCall")?;
            read.pmm = Some(RawPmmState {
                i: s.i,
                k: s.K,
                b: s.B,
                q: s.Q,
                b0: s.B0,
                q0: s.Q0,
                r: s.R,
            });
            read.mid_price = p.mid.resolve(ep).await?.ok();
            let r = p
                .reserve
                .resolve(ep)
                .await?
                .required(pool, "getVaultReserve")?;
            read.vault_reserve = Some((r.baseReserve, r.quoteReserve));
            let f = p.fees.resolve(ep).await?.required(pool, "getUserFeeRate")?;
            read.fee_rates = (f.lpFeeRate, f.mtFeeRate);
            if let Some(w) = p.shares {
                read.total_shares = Some(w.resolve(ep).await?.required(pool, "totalSupply")?);
            }
            if let Some((b, q)) = p.targets {
                let b = b.resolve(ep).await?.required(pool, "_BASE_TARGET_")?;
                let q = q.resolve(ep).await?.required(pool, "_QUOTE_TARGET_")?;
                read.stored_targets = Some((b, q));
            }
            read.stored_i = p.stored_i.resolve(ep).await?.ok();
            if let Some((open, last)) = p.twap {
                // Every DVM, DSP and GSP template has the getter: a pool without it is not
                // one, and guessing "no TWAP" could pass a write that reverts.
                if open.resolve(ep).await?.required(pool, "_IS_OPEN_TWAP_")? {
                    let last = last
                        .resolve(ep)
                        .await?
                        .required(pool, "_BLOCK_TIMESTAMP_LAST_")?;
                    read.twap_last_update = Some(last);
                }
            }
            if let Some(w) = p.oracle_enabled {
                read.oracle_enabled = w.resolve(ep).await?.ok();
            }
        }
        if let Some(p) = v1 {
            let expected = p
                .expected
                .resolve(ep)
                .await?
                .required(pool, "getExpectedTarget")?;
            let lp = p.lp.resolve(ep).await?.required(pool, "_LP_FEE_RATE_")?;
            let mt = p.mt.resolve(ep).await?.required(pool, "_MT_FEE_RATE_")?;
            read.fee_rates = (lp, mt);
            read.mid_price = p.mid.resolve(ep).await?.ok();
            read.v1 = Some(RawV1State {
                base_balance: p
                    .base_balance
                    .resolve(ep)
                    .await?
                    .required(pool, "_BASE_BALANCE_")?,
                quote_balance: p
                    .quote_balance
                    .resolve(ep)
                    .await?
                    .required(pool, "_QUOTE_BALANCE_")?,
                target_base: p
                    .target_base
                    .resolve(ep)
                    .await?
                    .required(pool, "_TARGET_BASE_TOKEN_AMOUNT_")?,
                target_quote: p
                    .target_quote
                    .resolve(ep)
                    .await?
                    .required(pool, "_TARGET_QUOTE_TOKEN_AMOUNT_")?,
                expected_target_base: expected.baseTarget,
                expected_target_quote: expected.quoteTarget,
                k: p.k.resolve(ep).await?.required(pool, "_K_")?,
                lp_fee_rate: lp,
                mt_fee_rate: mt,
                r_status: p.r.resolve(ep).await?.required(pool, "_R_STATUS_")?,
                oracle_price: p
                    .oracle_price
                    .resolve(ep)
                    .await?
                    .required(pool, "getOraclePrice")?,
            });
            read.oracle_price = read.v1.map(|v| v.oracle_price);
        }
        Ok(read)
    }

    /// Token addresses and metadata, fetched once per pool (they never change after `init`).
    pub(crate) async fn pool_statics(
        &self,
        spec: &ReadSpec,
    ) -> Result<Arc<PoolStatics>, ChainError> {
        let key = (spec.pool, spec.feed);
        if let Some(hit) = self.statics.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let ep = &self.endpoint;
        let pool = spec.pool;
        let at = BlockId::latest();
        let client = self.provider.client();
        let mut batch = BatchRequest::new(client);
        // V1 and V2 share the `_BASE_TOKEN_()` / `_QUOTE_TOKEN_()` selectors and return types.
        let base_w = add_call(&mut batch, ep, pool, &IDODOV2Pool::_BASE_TOKEN_Call {}, at)?;
        let quote_w = add_call(&mut batch, ep, pool, &IDODOV2Pool::_QUOTE_TOKEN_Call {}, at)?;
        let v2_version = add_call(&mut batch, ep, pool, &IDODOV2Pool::versionCall {}, at)?;
        let v1_version = add_call(&mut batch, ep, pool, &IDODOV1Pool::versionCall {}, at)?;
        // V1 pools have no `_MAINTAINER_`: not asked.
        let maintainer_w = match spec.kind {
            PoolType::V1 => None,
            _ => Some(add_call(
                &mut batch,
                ep,
                pool,
                &IDODOV2Pool::_MAINTAINER_Call {},
                at,
            )?),
        };
        let oracle_w = match spec.kind {
            PoolType::DppOracle => {
                Some(add_call(&mut batch, ep, pool, &IDPPOracle::_O_Call {}, at)?)
            }
            _ => None,
        };
        let v1_oracle_w = match spec.kind {
            PoolType::V1 => Some(add_call(
                &mut batch,
                ep,
                pool,
                &IDODOV1Pool::_ORACLE_Call {},
                at,
            )?),
            _ => None,
        };
        let feed_dec = match spec.feed {
            Some(feed) => Some((
                feed,
                add_call(&mut batch, ep, feed, &IChainlinkFeed::decimalsCall {}, at)?,
            )),
            None => None,
        };
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let base = base_w.resolve(ep).await?.required(pool, "_BASE_TOKEN_")?;
        let quote = quote_w.resolve(ep).await?.required(pool, "_QUOTE_TOKEN_")?;
        let version = match (v2_version.resolve(ep).await?, v1_version.resolve(ep).await?) {
            (_, CallOutcome::Ok(n)) if spec.kind == PoolType::V1 => Some(n.to_string()),
            (CallOutcome::Ok(s), _) => Some(s),
            _ => None,
        };
        let maintainer = match maintainer_w {
            Some(w) => w.resolve(ep).await?.ok(),
            None => None,
        };
        let mut oracle = None;
        if let Some(w) = oracle_w {
            oracle = w.resolve(ep).await?.ok();
        }
        if let Some(w) = v1_oracle_w {
            oracle = w.resolve(ep).await?.ok();
        }
        let feed_decimals = match feed_dec {
            Some((feed, w)) => Some(w.resolve(ep).await?.required(feed, "decimals")?),
            None => None,
        };

        let mut batch = BatchRequest::new(client);
        let bs = add_call(&mut batch, ep, base, &IERC20::symbolCall {}, at)?;
        let bd = add_call(&mut batch, ep, base, &IERC20::decimalsCall {}, at)?;
        let qs = add_call(&mut batch, ep, quote, &IERC20::symbolCall {}, at)?;
        let qd = add_call(&mut batch, ep, quote, &IERC20::decimalsCall {}, at)?;
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;
        let statics = Arc::new(PoolStatics {
            version,
            base: TokenInfo {
                address: base,
                symbol: bs.resolve(ep).await?.ok(),
                decimals: bd.resolve(ep).await?.required(base, "decimals")?,
            },
            quote: TokenInfo {
                address: quote,
                symbol: qs.resolve(ep).await?.ok(),
                decimals: qd.resolve(ep).await?.required(quote, "decimals")?,
            },
            maintainer,
            oracle,
            feed_decimals,
        });
        if let Ok(mut m) = self.statics.lock() {
            m.insert(key, Arc::clone(&statics));
        }
        Ok(statics)
    }
}

/// The block a batch's calls are pinned to, for its hash and timestamp.
pub(crate) fn add_block_call(
    batch: &mut BatchRequest<'_>,
    ep: &Endpoint,
    number: u64,
) -> Result<Waiter<Option<Block>>, ChainError> {
    batch
        .add_call::<_, Option<Block>>(
            "eth_getBlockByNumber",
            &(BlockNumberOrTag::Number(number), false),
        )
        .map_err(|e| rpc_error("eth_getBlockByNumber", ep, &e))
}

/// Queues every getter a read of `spec` needs into `batch`, pinned to `at`.
pub(crate) fn queue_pool(
    batch: &mut BatchRequest<'_>,
    ep: &Endpoint,
    spec: &ReadSpec,
    statics: &PoolStatics,
    at: BlockId,
) -> Result<PoolPending, ChainError> {
    let pool = spec.pool;
    let base_bal = add_call(
        batch,
        ep,
        statics.base.address,
        &IERC20::balanceOfCall { owner: pool },
        at,
    )?;
    let quote_bal = add_call(
        batch,
        ep,
        statics.quote.address,
        &IERC20::balanceOfCall { owner: pool },
        at,
    )?;
    let feed_w = match spec.feed {
        Some(feed) => Some((
            feed,
            add_call(batch, ep, feed, &IChainlinkFeed::latestRoundDataCall {}, at)?,
        )),
        None => None,
    };
    let oracle_price_w = match (spec.kind, statics.oracle) {
        (PoolType::DppOracle, Some(o)) => Some(add_call(
            batch,
            ep,
            o,
            &IDODOPriceOracle::pricesCall {
                base: statics.base.address,
            },
            at,
        )?),
        _ => None,
    };
    let v2 = if spec.kind == PoolType::V1 {
        None
    } else {
        Some(V2Pending {
            state: add_call(batch, ep, pool, &IDODOV2Pool::getPMMStateForCallCall {}, at)?,
            mid: add_call(batch, ep, pool, &IDODOV2Pool::getMidPriceCall {}, at)?,
            reserve: add_call(batch, ep, pool, &IDODOV2Pool::getVaultReserveCall {}, at)?,
            fees: add_call(
                batch,
                ep,
                pool,
                &IDODOV2Pool::getUserFeeRateCall {
                    user: spec.fee_trader,
                },
                at,
            )?,
            shares: if has_shares(spec.kind) {
                Some(add_call(
                    batch,
                    ep,
                    pool,
                    &IDODOV2Shares::totalSupplyCall {},
                    at,
                )?)
            } else {
                None
            },
            targets: if stores_targets(spec.kind) {
                Some((
                    add_call(batch, ep, pool, &IDODOV2Targets::_BASE_TARGET_Call {}, at)?,
                    add_call(batch, ep, pool, &IDODOV2Targets::_QUOTE_TARGET_Call {}, at)?,
                ))
            } else {
                None
            },
            stored_i: add_call(batch, ep, pool, &IDODOV2Pool::_I_Call {}, at)?,
            twap: if has_shares(spec.kind) {
                Some((
                    add_call(batch, ep, pool, &IDODOV2Twap::_IS_OPEN_TWAP_Call {}, at)?,
                    add_call(
                        batch,
                        ep,
                        pool,
                        &IDODOV2Twap::_BLOCK_TIMESTAMP_LAST_Call {},
                        at,
                    )?,
                ))
            } else {
                None
            },
            oracle_enabled: if spec.kind == PoolType::DppOracle {
                Some(add_call(
                    batch,
                    ep,
                    pool,
                    &IDPPOracle::_IS_ORACLE_ENABLEDCall {},
                    at,
                )?)
            } else {
                None
            },
        })
    };
    let v1 = if spec.kind == PoolType::V1 {
        Some(V1Pending {
            base_balance: add_call(batch, ep, pool, &IDODOV1Pool::_BASE_BALANCE_Call {}, at)?,
            quote_balance: add_call(batch, ep, pool, &IDODOV1Pool::_QUOTE_BALANCE_Call {}, at)?,
            target_base: add_call(
                batch,
                ep,
                pool,
                &IDODOV1Pool::_TARGET_BASE_TOKEN_AMOUNT_Call {},
                at,
            )?,
            target_quote: add_call(
                batch,
                ep,
                pool,
                &IDODOV1Pool::_TARGET_QUOTE_TOKEN_AMOUNT_Call {},
                at,
            )?,
            expected: add_call(batch, ep, pool, &IDODOV1Pool::getExpectedTargetCall {}, at)?,
            k: add_call(batch, ep, pool, &IDODOV1Pool::_K_Call {}, at)?,
            lp: add_call(batch, ep, pool, &IDODOV1Pool::_LP_FEE_RATE_Call {}, at)?,
            mt: add_call(batch, ep, pool, &IDODOV1Pool::_MT_FEE_RATE_Call {}, at)?,
            r: add_call(batch, ep, pool, &IDODOV1Pool::_R_STATUS_Call {}, at)?,
            oracle_price: add_call(batch, ep, pool, &IDODOV1Pool::getOraclePriceCall {}, at)?,
            mid: add_call(batch, ep, pool, &IDODOV1Pool::getMidPriceCall {}, at)?,
        })
    } else {
        None
    };
    Ok(PoolPending {
        base_bal,
        quote_bal,
        feed_w,
        oracle_price_w,
        v2,
        v1,
    })
}

/// The getters of one pool read, queued in a batch not yet answered.
pub(crate) struct PoolPending {
    base_bal: PendingCall<IERC20::balanceOfCall>,
    quote_bal: PendingCall<IERC20::balanceOfCall>,
    feed_w: Option<(Address, PendingCall<IChainlinkFeed::latestRoundDataCall>)>,
    oracle_price_w: Option<PendingCall<IDODOPriceOracle::pricesCall>>,
    v2: Option<V2Pending>,
    v1: Option<V1Pending>,
}

/// The per-block cache key of a read.
pub(crate) fn read_key(spec: &ReadSpec, number: u64) -> crate::client::ReadKey {
    (spec.pool, number, spec.feed, spec.fee_trader)
}

struct V2Pending {
    state: PendingCall<IDODOV2Pool::getPMMStateForCallCall>,
    mid: PendingCall<IDODOV2Pool::getMidPriceCall>,
    reserve: PendingCall<IDODOV2Pool::getVaultReserveCall>,
    fees: PendingCall<IDODOV2Pool::getUserFeeRateCall>,
    shares: Option<PendingCall<IDODOV2Shares::totalSupplyCall>>,
    targets: Option<(
        PendingCall<IDODOV2Targets::_BASE_TARGET_Call>,
        PendingCall<IDODOV2Targets::_QUOTE_TARGET_Call>,
    )>,
    stored_i: PendingCall<IDODOV2Pool::_I_Call>,
    twap: Option<(
        PendingCall<IDODOV2Twap::_IS_OPEN_TWAP_Call>,
        PendingCall<IDODOV2Twap::_BLOCK_TIMESTAMP_LAST_Call>,
    )>,
    oracle_enabled: Option<PendingCall<IDPPOracle::_IS_ORACLE_ENABLEDCall>>,
}

struct V1Pending {
    base_balance: PendingCall<IDODOV1Pool::_BASE_BALANCE_Call>,
    quote_balance: PendingCall<IDODOV1Pool::_QUOTE_BALANCE_Call>,
    target_base: PendingCall<IDODOV1Pool::_TARGET_BASE_TOKEN_AMOUNT_Call>,
    target_quote: PendingCall<IDODOV1Pool::_TARGET_QUOTE_TOKEN_AMOUNT_Call>,
    expected: PendingCall<IDODOV1Pool::getExpectedTargetCall>,
    k: PendingCall<IDODOV1Pool::_K_Call>,
    lp: PendingCall<IDODOV1Pool::_LP_FEE_RATE_Call>,
    mt: PendingCall<IDODOV1Pool::_MT_FEE_RATE_Call>,
    r: PendingCall<IDODOV1Pool::_R_STATUS_Call>,
    oracle_price: PendingCall<IDODOV1Pool::getOraclePriceCall>,
    mid: PendingCall<IDODOV1Pool::getMidPriceCall>,
}
