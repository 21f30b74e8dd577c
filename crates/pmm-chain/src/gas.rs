//! EIP-1559 fee caps: what a transaction offers, bounded by the configured gas cap, and the
//! bump a replacement needs.
//!
//! Nodes accept a replacement at the same nonce only when both caps rise by at least 10%
//! (geth's default price bump; anvil and reth follow it). The hub bumps by 12.5% and one wei,
//! so rounding never lands a replacement exactly on the threshold.

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;

use crate::batch::rpc_error;
use crate::client::ChainClient;
use crate::error::ChainError;

/// Wei per gwei.
pub const WEI_PER_GWEI: u128 = 1_000_000_000;
/// Replacement bump numerator / denominator: +12.5%.
const BUMP_NUM: u128 = 9;
const BUMP_DEN: u128 = 8;

/// Both fee caps of an EIP-1559 transaction, wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeCaps {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

/// Why no fee could be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// Even the minimum fee the chain asks for is above the cap.
    #[error("base fee {base_fee} wei plus tip exceeds the gas cap of {cap_gwei} gwei")]
    AboveCap {
        /// Latest base fee, wei.
        base_fee: u128,
        /// Configured cap, gwei.
        cap_gwei: u64,
    },
    /// A bumped replacement would exceed the cap.
    #[error("a replacement needs {needed} wei/gas, above the gas cap of {cap_gwei} gwei")]
    BumpAboveCap {
        /// The bumped max fee.
        needed: u128,
        /// Configured cap, gwei.
        cap_gwei: u64,
    },
}

impl FeeCaps {
    /// Both caps raised by 12.5% plus one wei (see the module docs), refused past `cap_gwei`.
    pub fn bumped(self, cap_gwei: u64) -> Result<Self, FeeError> {
        let up = |v: u128| {
            v.saturating_mul(BUMP_NUM)
                .div_ceil(BUMP_DEN)
                .saturating_add(1)
        };
        let next = Self {
            max_fee_per_gas: up(self.max_fee_per_gas),
            max_priority_fee_per_gas: up(self.max_priority_fee_per_gas),
        };
        let cap = u128::from(cap_gwei).saturating_mul(WEI_PER_GWEI);
        if next.max_fee_per_gas > cap {
            return Err(FeeError::BumpAboveCap {
                needed: next.max_fee_per_gas,
                cap_gwei,
            });
        }
        Ok(next)
    }

    /// Fees from a base fee and a suggested tip: `2 * base + tip` (survives six full blocks
    /// of base-fee growth), clipped to the cap, refused when `base + tip` alone exceeds it.
    pub fn from_base_fee(base_fee: u128, tip: u128, cap_gwei: u64) -> Result<Self, FeeError> {
        let cap = u128::from(cap_gwei).saturating_mul(WEI_PER_GWEI);
        let floor = base_fee.saturating_add(tip);
        if floor > cap {
            return Err(FeeError::AboveCap { base_fee, cap_gwei });
        }
        Ok(Self {
            max_fee_per_gas: base_fee.saturating_mul(2).saturating_add(tip).min(cap),
            max_priority_fee_per_gas: tip,
        })
    }
}

impl ChainClient {
    /// Fee caps for a transaction now: the latest block's base fee and the node's suggested
    /// tip, bounded by `cap_gwei`.
    pub async fn fee_caps(&self, cap_gwei: u64) -> Result<Result<FeeCaps, FeeError>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| rpc_error("eth_getBlockByNumber", &self.endpoint, &e))?
            .ok_or(ChainError::BlockNotFound(0))?;
        let base_fee = u128::from(block.header.base_fee_per_gas.unwrap_or(0));
        let tip = self
            .provider
            .get_max_priority_fee_per_gas()
            .await
            .map_err(|e| rpc_error("eth_maxPriorityFeePerGas", &self.endpoint, &e))?;
        Ok(FeeCaps::from_base_fee(base_fee, tip, cap_gwei))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_raises_both_caps_at_least_an_eighth() {
        let f = FeeCaps {
            max_fee_per_gas: 1_000,
            max_priority_fee_per_gas: 8,
        };
        let b = f.bumped(1).unwrap();
        assert!(b.max_fee_per_gas * 8 >= f.max_fee_per_gas * 9);
        assert!(b.max_priority_fee_per_gas * 8 >= f.max_priority_fee_per_gas * 9);
        assert_eq!(b.max_priority_fee_per_gas, 10);
        let zero = FeeCaps {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
        };
        assert_eq!(zero.bumped(1).unwrap().max_priority_fee_per_gas, 1);
    }

    #[test]
    fn caps_are_bounded() {
        let f = FeeCaps::from_base_fee(10 * WEI_PER_GWEI, WEI_PER_GWEI, 15).unwrap();
        assert_eq!(f.max_fee_per_gas, 15 * WEI_PER_GWEI);
        assert!(FeeCaps::from_base_fee(15 * WEI_PER_GWEI, WEI_PER_GWEI, 15).is_err());
        assert!(f.bumped(15).is_err());
    }
}
