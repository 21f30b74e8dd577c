//! Exact DODO V2 PMM math on `U256`, reproducing the on-chain results to the wei.
//!
//! Every on-chain revert is a [`MathError`], never a panic.

pub use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

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

/// Why a computation would revert on chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    /// An R state outside 0..=2.
    #[error("invalid R state {0}: expected 0 (ONE), 1 (ABOVE_ONE) or 2 (BELOW_ONE)")]
    InvalidRState(u8),
}
