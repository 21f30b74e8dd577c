//! The exact transactions the hub signs: router deposits, exact-amount approvals, share burns
//! and DPP resets. Builders only encode; nothing here talks to a node.
//!
//! Deposits go through DODO's proxies (`DODOV2Proxy02.addDVMLiquidity`,
//! `DODODspProxy.addDSPLiquidity`): they pull both tokens through DODOApprove and call
//! `buyShares` in one transaction, taking balanced amounts bounded by base/quote minimums and a
//! deadline. Sending tokens to a pool and calling `buyShares` in a second transaction would
//! leave the tokens to whoever calls `buyShares` first.
#![allow(clippy::too_many_arguments)]

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol;
use alloy::sol_types::SolCall;

use crate::abi::{IDODOV2Shares, IDPPAdmin, IERC20};
use crate::types::PoolType;

sol! {
    /// DODOV2Proxy02's DVM deposit (the only function of it the hub calls).
    #[sol(rpc)]
    interface IDODOV2Proxy02 {
        function addDVMLiquidity(address dvmAddress, uint256 baseInAmount, uint256 quoteInAmount, uint256 baseMinAmount, uint256 quoteMinAmount, uint8 flag, uint256 deadLine) external payable returns (uint256 shares, uint256 baseAdjustedInAmount, uint256 quoteAdjustedInAmount);
    }

    /// DODODspProxy's DSP deposit.
    #[sol(rpc)]
    interface IDODODspProxy {
        function addDSPLiquidity(address dspAddress, uint256 baseInAmount, uint256 quoteInAmount, uint256 baseMinAmount, uint256 quoteMinAmount, uint8 flag, uint256 deadLine) external payable returns (uint256 shares, uint256 baseAdjustedInAmount, uint256 quoteAdjustedInAmount);
    }

    /// ERC20 allowance read.
    #[sol(rpc)]
    interface IERC20Allowance {
        function allowance(address owner, address spender) external view returns (uint256);
    }
}

/// The proxy flag for "both tokens are ERC20s" (1 and 2 wrap native ETH, which the hub never sends).
const FLAG_ERC20: u8 = 0;

/// Where the deposit proxies of a chain live. `None` = not known there: deposits are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Routers {
    /// `DODOV2Proxy02` (DVM deposits).
    pub v2_proxy: Option<Address>,
    /// `DODODspProxy` (DSP deposits).
    pub dsp_proxy: Option<Address>,
    /// `DODOApprove`: the spender both proxies pull through.
    pub approve: Option<Address>,
}

/// One contract call, exactly as it will be signed (minus nonce, gas and fees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// What the call does, for step logs (`approve_base`, `add_liquidity`, ...).
    pub label: &'static str,
    /// Contract called.
    pub to: Address,
    /// ABI-encoded input.
    pub input: Bytes,
}

/// Why a transaction cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No atomic deposit path exists for this pool type.
    #[error("{0} pools have no atomic deposit path through a DODO proxy; refused")]
    NoDepositPath(PoolType),
    /// The chain preset lacks the proxy this deposit needs.
    #[error("no {0} address is known for this chain; deposits are refused here")]
    NoRouter(&'static str),
    /// The pool type mints no shares.
    #[error("{0} pools have no LP shares to burn")]
    NoShares(PoolType),
}

/// `approve(spender, amount)`: always the exact amount, never unlimited.
pub fn approve_exact(label: &'static str, token: Address, spender: Address, amount: U256) -> Call {
    Call {
        label,
        to: token,
        input: IERC20::approveCall { spender, amount }.abi_encode().into(),
    }
}

/// The deposit through the proxy of `kind`: DVM through DODOV2Proxy02, DSP through
/// DODODspProxy. GSP and DPP pools are refused (no atomic path the hub can use).
pub fn add_liquidity(
    kind: PoolType,
    routers: &Routers,
    pool: Address,
    base_in: U256,
    quote_in: U256,
    base_min: U256,
    quote_min: U256,
    deadline: u64,
) -> Result<Call, BuildError> {
    let deadline = U256::from(deadline);
    let (to, input) = match kind {
        PoolType::Dvm => (
            routers
                .v2_proxy
                .ok_or(BuildError::NoRouter("DODOV2Proxy02"))?,
            IDODOV2Proxy02::addDVMLiquidityCall {
                dvmAddress: pool,
                baseInAmount: base_in,
                quoteInAmount: quote_in,
                baseMinAmount: base_min,
                quoteMinAmount: quote_min,
                flag: FLAG_ERC20,
                deadLine: deadline,
            }
            .abi_encode(),
        ),
        PoolType::Dsp => (
            routers
                .dsp_proxy
                .ok_or(BuildError::NoRouter("DODODspProxy"))?,
            IDODODspProxy::addDSPLiquidityCall {
                dspAddress: pool,
                baseInAmount: base_in,
                quoteInAmount: quote_in,
                baseMinAmount: base_min,
                quoteMinAmount: quote_min,
                flag: FLAG_ERC20,
                deadLine: deadline,
            }
            .abi_encode(),
        ),
        other => return Err(BuildError::NoDepositPath(other)),
    };
    if routers.approve.is_none() {
        return Err(BuildError::NoRouter("DODOApprove"));
    }
    Ok(Call {
        label: "add_liquidity",
        to,
        input: input.into(),
    })
}

/// `sellShares(shares, to, minBase, minQuote, "", deadline)` on the pool itself (no proxy
/// removes liquidity). Empty `data`: a non-empty one would call back into `to`.
pub fn sell_shares(
    kind: PoolType,
    pool: Address,
    shares: U256,
    to: Address,
    min_base: U256,
    min_quote: U256,
    deadline: u64,
) -> Result<Call, BuildError> {
    if !crate::types::has_shares(kind) {
        return Err(BuildError::NoShares(kind));
    }
    Ok(Call {
        label: "remove_liquidity",
        to: pool,
        input: IDODOV2Shares::sellSharesCall {
            shareAmount: shares,
            to,
            baseMinAmount: min_base,
            quoteMinAmount: min_quote,
            data: Bytes::new(),
            deadline: U256::from(deadline),
        }
        .abi_encode()
        .into(),
    })
}

/// New parameters of a DPP `reset`; reserves only move out (to `asset_to`), bounded below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DppReset {
    /// Receiver of the withdrawn amounts.
    pub asset_to: Address,
    /// New LP fee rate, 1e18 = 100%.
    pub lp_fee_rate: U256,
    /// New guide price i.
    pub i: U256,
    /// New curvature k.
    pub k: U256,
    /// Base withdrawn.
    pub base_out: U256,
    /// Quote withdrawn.
    pub quote_out: U256,
    /// The reset reverts if the base reserve is below this when it runs.
    pub min_base_reserve: U256,
    /// The reset reverts if the quote reserve is below this when it runs.
    pub min_quote_reserve: U256,
}

/// Owner-only `reset` of a DPP / DPP Oracle pool.
pub fn dpp_reset(kind: PoolType, pool: Address, r: &DppReset) -> Result<Call, BuildError> {
    if !matches!(kind, PoolType::Dpp | PoolType::DppOracle) {
        return Err(BuildError::NoDepositPath(kind));
    }
    Ok(Call {
        label: "reset_pool",
        to: pool,
        input: IDPPAdmin::resetCall {
            assetTo: r.asset_to,
            newLpFeeRate: r.lp_fee_rate,
            newI: r.i,
            newK: r.k,
            baseOutAmount: r.base_out,
            quoteOutAmount: r.quote_out,
            minBaseReserve: r.min_base_reserve,
            minQuoteReserve: r.min_quote_reserve,
        }
        .abi_encode()
        .into(),
    })
}

/// The amounts a DODO proxy takes from `base_in` / `quote_in` for a pool holding
/// `base_reserve` / `quote_reserve`: both as given into an empty pool, base only into a pool
/// without quote, otherwise the side with the smaller growth ratio in full and the other
/// scaled to the same ratio (1e18 fixed point, rounded down).
pub fn balanced_amounts(
    base_in: U256,
    quote_in: U256,
    base_reserve: U256,
    quote_reserve: U256,
) -> (U256, U256) {
    let one = U256::from(10).pow(U256::from(18));
    if base_reserve.is_zero() && quote_reserve.is_zero() {
        return (base_in, quote_in);
    }
    if quote_reserve.is_zero() {
        return (base_in, U256::ZERO);
    }
    if base_reserve.is_zero() {
        return (U256::ZERO, quote_in);
    }
    let div_floor = |a: U256, b: U256| a.saturating_mul(one) / b;
    let mul_floor = |a: U256, b: U256| a.saturating_mul(b) / one;
    let base_ratio = div_floor(base_in, base_reserve);
    let quote_ratio = div_floor(quote_in, quote_reserve);
    if base_ratio <= quote_ratio {
        (base_in, mul_floor(quote_reserve, base_ratio))
    } else {
        (mul_floor(base_reserve, quote_ratio), quote_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: Address = Address::repeat_byte(0x11);

    fn routers() -> Routers {
        Routers {
            v2_proxy: Some(Address::repeat_byte(0xa1)),
            dsp_proxy: Some(Address::repeat_byte(0xa2)),
            approve: Some(Address::repeat_byte(0xa3)),
        }
    }

    #[test]
    fn deposits_go_through_the_matching_proxy() {
        let dvm = add_liquidity(
            PoolType::Dvm,
            &routers(),
            POOL,
            U256::from(5),
            U256::from(7),
            U256::from(4),
            U256::from(6),
            99,
        )
        .unwrap();
        assert_eq!(dvm.to, Address::repeat_byte(0xa1));
        let decoded = IDODOV2Proxy02::addDVMLiquidityCall::abi_decode(&dvm.input).unwrap();
        assert_eq!(
            (decoded.dvmAddress, decoded.baseMinAmount, decoded.deadLine),
            (POOL, U256::from(4), U256::from(99))
        );
        let dsp = add_liquidity(
            PoolType::Dsp,
            &routers(),
            POOL,
            U256::from(5),
            U256::from(7),
            U256::ZERO,
            U256::ZERO,
            1,
        )
        .unwrap();
        assert_eq!(dsp.to, Address::repeat_byte(0xa2));
        assert_eq!(
            add_liquidity(
                PoolType::Gsp,
                &routers(),
                POOL,
                U256::from(1),
                U256::from(1),
                U256::ZERO,
                U256::ZERO,
                1
            ),
            Err(BuildError::NoDepositPath(PoolType::Gsp))
        );
        let none = Routers {
            dsp_proxy: None,
            ..routers()
        };
        assert_eq!(
            add_liquidity(
                PoolType::Dsp,
                &none,
                POOL,
                U256::from(1),
                U256::from(1),
                U256::ZERO,
                U256::ZERO,
                1
            ),
            Err(BuildError::NoRouter("DODODspProxy"))
        );
    }

    #[test]
    fn approvals_are_exact() {
        let c = approve_exact(
            "approve_base",
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            U256::from(42),
        );
        let d = IERC20::approveCall::abi_decode(&c.input).unwrap();
        assert_eq!(d.amount, U256::from(42));
    }

    #[test]
    fn balanced_amounts_follow_the_smaller_ratio() {
        let e18 = U256::from(10).pow(U256::from(18));
        // Pool 100 base : 200 quote; offering 10 base and 50 quote takes 10 and 20.
        let (b, q) = balanced_amounts(
            U256::from(10) * e18,
            U256::from(50) * e18,
            U256::from(100) * e18,
            U256::from(200) * e18,
        );
        assert_eq!((b, q), (U256::from(10) * e18, U256::from(20) * e18));
        let (b, q) = balanced_amounts(
            U256::from(50) * e18,
            U256::from(20) * e18,
            U256::from(100) * e18,
            U256::from(200) * e18,
        );
        assert_eq!((b, q), (U256::from(10) * e18, U256::from(20) * e18));
        assert_eq!(
            balanced_amounts(U256::from(3), U256::from(4), U256::ZERO, U256::ZERO),
            (U256::from(3), U256::from(4))
        );
        assert_eq!(
            balanced_amounts(U256::from(3), U256::from(4), U256::from(9), U256::ZERO),
            (U256::from(3), U256::ZERO)
        );
    }
}
