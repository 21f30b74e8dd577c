//! Exact DODO V2 PMM math on `U256`, reproducing the on-chain results to the wei.
//!
//! Every on-chain revert is a [`MathError`], never a panic. The formulas, their rounding and
//! their revert points follow the deployed DVM 1.0.2 / DSP 1.0.1 contracts as described in the
//! project's DODO notes (`shared/dodo-pmm.md (beside the repository)`):
//!
//! - [`fixed`]: SafeMath / DecimalMath building blocks (checked ops, floor / ceil, sqrt).
//! - [`dodo_math`]: the curve primitives G ([`general_integrate`]), T
//!   ([`solve_quadratic_for_target`]) and S ([`solve_quadratic_for_trade`]).
//! - [`pmm`]: [`adjusted_target`], [`mid_price`], [`query_sell_base`], [`query_sell_quote`]
//!   and the state a swap leaves ([`apply_sell_base`], [`apply_sell_quote`]).
//! - [`shares`]: [`buy_shares`] and [`sell_shares`] for DVM and DSP pools.
//! - [`twap`]: the post-write check a TWAP pool runs ([`twap_update`]).
//!
//! DVM and DSP templates exist in two generations behind one `version()` string
//! ([`Generation`]); every function whose result differs between them takes the generation.
//!
//! Every amount is in raw token units; prices and rates are 1e18 fixed point.

pub mod dodo_math;
pub mod fixed;
pub mod pmm;
pub mod shares;
pub mod twap;

#[cfg(test)]
mod tests;

pub use alloy_primitives::U256;
pub use dodo_math::{general_integrate, solve_quadratic_for_target, solve_quadratic_for_trade};
pub use pmm::{
    SwapQuote, adjusted_target, apply_fees, apply_sell_base, apply_sell_quote, mid_price,
    query_sell_base, query_sell_quote, sell_base_gross, sell_quote_gross,
};
use serde::{Deserialize, Serialize};
pub use shares::{BuyShares, LiquidityState, SellShares, Targets, buy_shares, sell_shares};
pub use twap::twap_update;

/// 1.0 in the 18-decimal fixed point every PMM formula uses.
pub const ONE: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// Which side of its equilibrium the pool stands on (`_RState_` on chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RState {
    /// Reserves equal their targets.
    One = 0,
    /// Base reserve below its target (traders bought base).
    AboveOne = 1,
    /// Quote reserve below its target (traders sold base).
    BelowOne = 2,
}

impl RState {
    /// The on-chain encoding (0, 1, 2).
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for RState {
    type Error = MathError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Self::One),
            1 => Ok(Self::AboveOne),
            2 => Ok(Self::BelowOne),
            other => Err(MathError::InvalidRState(other)),
        }
    }
}

/// The raw PMM state as `getPMMStateForCall()` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmmState {
    /// Guide price: quote per base, 1e18 fixed point on raw token units.
    pub i: U256,
    /// Curvature in [0, 1e18].
    pub k: U256,
    /// Base reserve.
    pub b: U256,
    /// Quote reserve.
    pub q: U256,
    /// Base regression target.
    pub b0: U256,
    /// Quote regression target.
    pub q0: U256,
    /// Side of equilibrium.
    pub r: RState,
}

/// Fee rates charged to one trader, 1e18 fixed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeRates {
    /// LP fee rate: stays in the pool.
    pub lp: U256,
    /// Maintainer fee rate: sent to `_MAINTAINER_`.
    pub mt: U256,
}

/// The pool families whose share math differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// DODO Vending Machine: no stored targets (`Q0 = 0`, `R = ABOVE_ONE` always).
    Dvm,
    /// DODO Stable Pool: stored `uint112` targets and R state.
    Dsp,
}

/// Which template code a DVM or DSP pool runs. DODO changed both templates in January 2024
/// and kept `version()` ("DVM 1.0.2", "DSP 1.0.1"), so only the template a pool is a clone of
/// tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Generation {
    /// Templates deployed before 2024: no first-deposit lock, T checks `V1 = 0` before
    /// `k = 0`, S never reverts "DODOMath: should not be zero", no `SELL_BACK_NOT_ALLOWED`.
    #[serde(rename = "2021")]
    V2021,
    /// The 2024 templates: 1001 shares locked on a first deposit, the stricter checks.
    #[serde(rename = "2024")]
    V2024,
}

impl Generation {
    /// The label used in reports and configuration: "2021" or "2024".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2021 => "2021",
            Self::V2024 => "2024",
        }
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Generation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2021" => Ok(Self::V2021),
            "2024" => Ok(Self::V2024),
            other => Err(format!(
                "unknown generation {other:?}: expected \"2021\" or \"2024\""
            )),
        }
    }
}

/// Why a computation would revert on chain. [`MathError::reason`] gives the revert string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    /// An R state outside 0..=2.
    #[error("invalid R state {0}: expected 0 (ONE), 1 (ABOVE_ONE) or 2 (BELOW_ONE)")]
    InvalidRState(u8),
    /// A product does not fit 256 bits.
    #[error("multiplication overflow (reverts \"MUL_ERROR\")")]
    MulOverflow,
    /// A sum does not fit 256 bits.
    #[error("addition overflow (reverts \"ADD_ERROR\")")]
    AddOverflow,
    /// A subtraction would go below zero.
    #[error("subtraction underflow (reverts \"SUB_ERROR\")")]
    Underflow,
    /// A division by zero.
    #[error("division by zero (reverts \"DIVIDING_ERROR\")")]
    DivisionByZero,
    /// The trade solver found a zero numerator: the trade is too large for the target, or K is tiny.
    #[error("quadratic solution is zero (reverts \"DODOMath: should not be zero\")")]
    RootIsZero,
    /// A curve primitive got a zero target (a DVM sale past its base target, or an empty pool).
    #[error("regression target is zero (reverts \"TARGET_IS_ZERO\")")]
    TargetIsZero,
    /// A DVM mint of 1000 shares or fewer after the first deposit.
    #[error("DVM mint of 1000 shares or fewer (reverts \"MINT_INVALID\")")]
    MintInvalid,
    /// A DSP mint of 1000 shares or fewer, or a first deposit (DVM or DSP) of 2001 shares or fewer.
    #[error(
        "mint of 1000 shares or fewer, or first deposit of 2001 or fewer (reverts \"MINT_AMOUNT_NOT_ENOUGH\")"
    )]
    MintAmountNotEnough,
    /// A 2021 DVM first deposit of fewer than 1000 base units.
    #[error(
        "2021 DVM first deposit below 1000 base units (reverts \"INSUFFICIENT_LIQUIDITY_MINED\")"
    )]
    InsufficientLiquidityMined,
    /// A DSP first deposit without quote.
    #[error("DSP first deposit without quote (reverts \"ZERO_QUOTE_AMOUNT\")")]
    ZeroQuoteAmount,
    /// A DSP first deposit whose quote target `mulFloor(shares, i)` is zero.
    #[error("DSP first deposit gives a zero quote target (reverts \"QUOTE_TARGET_IS_ZERO\")")]
    QuoteTargetIsZero,
    /// `buyShares` without any base transferred in.
    #[error("no base input (reverts \"NO_BASE_INPUT\")")]
    NoBaseInput,
    /// `sellShares` of more shares than the caller holds.
    #[error("selling more shares than held (reverts \"DLP_NOT_ENOUGH\")")]
    DlpNotEnough,
    /// `sellShares` pays out less than the caller's minimum.
    #[error("withdrawal below the minimum amounts (reverts \"WITHDRAW_NOT_ENOUGH\")")]
    WithdrawNotEnough,
    /// A reserve would exceed 2^112 - 1.
    #[error("reserve above 2^112 - 1 (reverts \"OVERFLOW\")")]
    ReserveOverflow,
}

impl MathError {
    /// The `Panic(uint256)` code a Solidity 0.8 re-implementation raises instead of the
    /// SafeMath reason string: 0x11 for an arithmetic overflow or underflow, 0x12 for a
    /// division by zero, `None` for an explicit `require`.
    pub fn solidity_panic_code(&self) -> Option<u8> {
        match self {
            Self::MulOverflow | Self::AddOverflow | Self::Underflow => Some(0x11),
            Self::DivisionByZero => Some(0x12),
            _ => None,
        }
    }

    /// The exact revert reason string the contract uses, or `None` for a decoding error that
    /// has no on-chain counterpart.
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidRState(_) => return None,
            Self::MulOverflow => "MUL_ERROR",
            Self::AddOverflow => "ADD_ERROR",
            Self::Underflow => "SUB_ERROR",
            Self::DivisionByZero => "DIVIDING_ERROR",
            Self::RootIsZero => "DODOMath: should not be zero",
            Self::TargetIsZero => "TARGET_IS_ZERO",
            Self::MintInvalid => "MINT_INVALID",
            Self::MintAmountNotEnough => "MINT_AMOUNT_NOT_ENOUGH",
            Self::InsufficientLiquidityMined => "INSUFFICIENT_LIQUIDITY_MINED",
            Self::ZeroQuoteAmount => "ZERO_QUOTE_AMOUNT",
            Self::QuoteTargetIsZero => "QUOTE_TARGET_IS_ZERO",
            Self::NoBaseInput => "NO_BASE_INPUT",
            Self::DlpNotEnough => "DLP_NOT_ENOUGH",
            Self::WithdrawNotEnough => "WITHDRAW_NOT_ENOUGH",
            Self::ReserveOverflow => "OVERFLOW",
        })
    }
}
