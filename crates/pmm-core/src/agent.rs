//! The agent's deterministic side: a baseline proposal computed from the pool state and its
//! limits alone, and the checks a model's proposal must pass before the hub simulates it.
//!
//! Both are pure so that a decision can be replayed from its stored state: the same state and
//! limits give the same baseline and the same validation verdict.

use alloy_primitives::U256;

use crate::math::ONE;
use crate::policy::{ActionProposal, Limits, notional_of};
use crate::schema::{Amount, PoolState, PoolType};

/// How the baseline sizes and aims its deposits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselineConfig {
    /// Inventory ratio (share of the pool's value held in base) to steer towards, basis points.
    pub target_ratio_bps: u32,
    /// Half-width of the band around the target inside which the baseline holds, basis points.
    pub band_bps: u32,
    /// Size of one deposit as a share of the pool's `max_notional_per_tx`, basis points.
    pub size_bps: u32,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            target_ratio_bps: 5_000,
            band_bps: 500,
            size_bps: 1_000,
        }
    }
}

/// What the baseline wants this tick. A deposit still needs its `min_shares`, which depends on
/// the pool's total supply (not part of [`PoolState`]): the caller quotes it and calls
/// [`BaselinePlan::into_proposal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselinePlan {
    /// Nothing to do.
    Hold {
        /// Why.
        reason: String,
    },
    /// Deposit sized to the pool's limits. [`baseline`] plans it at the target ratio; the hub's
    /// quote then gives the balanced amounts (what DODO's proxy would transfer) and
    /// [`BaselinePlan::balanced`] adopts them, so the other LPs receive no donation and the
    /// deposit passes `max_donation`.
    Add {
        /// Base to deposit, raw units.
        base_amount: Amount,
        /// Quote to deposit, raw units.
        quote_amount: Amount,
        /// Why.
        reason: String,
    },
}

impl BaselinePlan {
    /// The plan with its deposit replaced by the balanced amounts the hub's quote reports for
    /// it (the over-contributing side scaled down to the pool's own ratio): a deposit off the
    /// pool's ratio gives the excess to the other LPs, which the policy refuses beyond
    /// `max_donation_bps`. A hold stays a hold; a balanced deposit without base holds, since
    /// `buyShares` needs base.
    #[must_use]
    pub fn balanced(self, base_amount: Amount, quote_amount: Amount) -> Self {
        match self {
            Self::Hold { .. } => self,
            Self::Add { .. } if base_amount.is_zero() => Self::Hold {
                reason: "the balanced deposit rounds to zero base".into(),
            },
            Self::Add { reason, .. } => Self::Add {
                base_amount,
                quote_amount,
                reason: format!("{reason}, balanced to the pool's ratio so nothing is donated"),
            },
        }
    }

    /// The finished proposal once the deposit's expected shares are known: `min_shares` allows
    /// half of the pool's slippage limit, so the policy's slippage rule passes it.
    pub fn into_proposal(
        self,
        state: &PoolState,
        limits: &Limits,
        expected_shares: Amount,
    ) -> ActionProposal {
        match self {
            Self::Hold { reason } => ActionProposal::Hold { reason },
            Self::Add {
                base_amount,
                quote_amount,
                reason,
            } => {
                let keep =
                    U256::from(20_000u32.saturating_sub(limits.max_slippage_bps.min(10_000)));
                let min_shares = expected_shares.0.saturating_mul(keep) / U256::from(20_000u32);
                ActionProposal::AddLiquidity {
                    pool: state.pool_address,
                    base_amount,
                    quote_amount,
                    min_shares: Amount(min_shares),
                    reason,
                }
            }
        }
    }
}

/// Whether the agent can add or remove LP shares on this kind of pool.
pub fn has_lp_shares(pool_type: PoolType) -> bool {
    matches!(pool_type, PoolType::Dvm | PoolType::Dsp | PoolType::Gsp)
}

/// The baseline for one tick: hold while the inventory ratio is inside the band, otherwise a
/// deposit worth `size_bps` of `max_notional_per_tx`, planned at the target ratio (to be
/// balanced with the hub's quote, see [`BaselinePlan::balanced`]).
pub fn baseline(state: &PoolState, limits: &Limits, cfg: &BaselineConfig) -> BaselinePlan {
    let hold = |reason: String| BaselinePlan::Hold { reason };
    if !has_lp_shares(state.pool_type) {
        return hold(format!(
            "{} pools are owner-managed: no LP shares to add or remove",
            state.pool_type
        ));
    }
    let Some(ratio) = state.inventory_ratio else {
        return hold("empty pool: no inventory to balance".into());
    };
    let target = f64::from(cfg.target_ratio_bps.min(10_000)) / 10_000.0;
    let band = f64::from(cfg.band_bps.min(10_000)) / 10_000.0;
    if (ratio - target).abs() <= band {
        return hold(format!(
            "inventory ratio {ratio:.4} inside {target:.2} +/- {band:.2}"
        ));
    }
    let Some(Amount(mid)) = state.mid_price_raw.filter(|m| !m.is_zero()) else {
        return hold("no mid price to size a deposit with".into());
    };
    let size = limits
        .max_notional_per_tx
        .0
        .saturating_mul(U256::from(cfg.size_bps.min(10_000)))
        / U256::from(10_000u32);
    let base_value =
        size.saturating_mul(U256::from(cfg.target_ratio_bps.min(10_000))) / U256::from(10_000u32);
    let quote_amount = size - base_value;
    let base_amount = base_value.saturating_mul(ONE) / mid;
    if base_amount.is_zero() {
        return hold("deposit size rounds to zero base".into());
    }
    BaselinePlan::Add {
        base_amount: Amount(base_amount),
        quote_amount: Amount(quote_amount),
        reason: format!("inventory ratio {ratio:.4} outside {target:.2} +/- {band:.2}: deposit"),
    }
}

/// Why a proposal is refused before simulation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProposalError(pub String);

/// Checks a proposal against the tick's pool and the pool's limits: it must target this pool,
/// a pool with LP shares, with raw-unit amounts inside `max_notional_per_tx` and minimums the
/// pool's reserves can pay. The policy engine re-checks everything on the hub; this catches a
/// model's nonsense before it costs a simulation.
pub fn validate_proposal(
    proposal: &ActionProposal,
    state: &PoolState,
    limits: &Limits,
) -> Result<(), ProposalError> {
    let err = |m: String| Err(ProposalError(m));
    let Some(pool) = proposal.pool() else {
        return Ok(());
    };
    if pool != state.pool_address {
        return err(format!(
            "targets pool {pool}, but this tick is for {}",
            state.pool_address
        ));
    }
    if !has_lp_shares(state.pool_type) {
        return err(format!(
            "{} pools have no LP shares to add or remove",
            state.pool_type
        ));
    }
    if let (None, Some(why)) = (state.mid_price_raw, &state.mid_price_undefined) {
        return err(format!("the pool has no mid price to value it with: {why}"));
    }
    let mid = state.mid_price_raw.unwrap_or(Amount::ZERO);
    let cap = limits.max_notional_per_tx;
    let within_cap = |what: &str, base: Amount, quote: Amount| match notional_of(base, quote, mid) {
        Some(n) if n.0 <= cap.0 => Ok(()),
        Some(n) => err(format!(
            "{what} notional {n} exceeds max_notional_per_tx {cap} (raw quote units)"
        )),
        None => err(format!("{what} notional overflows 256 bits")),
    };
    match proposal {
        ActionProposal::Hold { .. } => Ok(()),
        ActionProposal::AddLiquidity {
            base_amount,
            quote_amount,
            ..
        } => {
            if base_amount.is_zero() {
                return err("base_amount must be greater than 0 (buyShares needs base)".into());
            }
            within_cap("deposit", *base_amount, *quote_amount)
        }
        ActionProposal::RemoveLiquidity {
            shares,
            min_base,
            min_quote,
            ..
        } => {
            if shares.is_zero() {
                return err("shares must be greater than 0".into());
            }
            if min_base.0 > state.reserves.base.0 || min_quote.0 > state.reserves.quote.0 {
                return err(format!(
                    "minimums {min_base} base / {min_quote} quote exceed the reserves {} / {}",
                    state.reserves.base, state.reserves.quote
                ));
            }
            within_cap("withdrawal", *min_base, *min_quote)
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, address};

    use super::*;
    use crate::math::{FeeRates, PmmState, RState};
    use crate::schema::{ChainName, RawPoolRead, TokenInfo, normalize};

    const POOL: Address = address!("00000000000000000000000000000000000000a1");

    fn e(n: u8) -> U256 {
        U256::from(10u8).pow(U256::from(n))
    }

    /// A DVM at 2000 USDC per WETH holding `weth` WETH and `usdc` USDC.
    fn state(pool_type: PoolType, weth: u64, usdc: u64) -> PoolState {
        let mid = U256::from(2000u64) * e(6);
        let (b, q) = (U256::from(weth) * e(18), U256::from(usdc) * e(6));
        normalize(RawPoolRead {
            pool_address: POOL,
            chain: ChainName::new("devnet").unwrap(),
            pool_type,
            generation: Some(crate::math::Generation::V2024),
            profile: pool_type.as_str().into(),
            version: "test".into(),
            block_number: 10,
            block_timestamp: 1_700_000_000,
            pmm: PmmState {
                i: mid,
                k: e(17),
                b,
                q,
                b0: b,
                q0: q,
                r: RState::One,
            },
            mid_price: Some(mid),
            base_reserve: b,
            quote_reserve: q,
            fees: FeeRates::default(),
            base_token: TokenInfo {
                address: address!("00000000000000000000000000000000000000b1"),
                symbol: "WETH".into(),
                decimals: 18,
            },
            quote_token: TokenInfo {
                address: address!("00000000000000000000000000000000000000c1"),
                symbol: "USDC".into(),
                decimals: 6,
            },
            oracle: None,
        })
        .unwrap()
    }

    /// 10,000 USDC per transaction, 100 bps slippage.
    fn limits() -> Limits {
        serde_json::from_value(serde_json::json!({
            "max_slippage_bps": 100,
            "max_notional_per_tx": "10000000000",
            "max_notional_per_day": "50000000000",
            "cooldown_s": 60,
            "oracle_deviation_bps": 200,
            "oracle_max_age_s": 3600,
            "gas_cap_gwei": 100
        }))
        .unwrap()
    }

    #[test]
    fn baseline_holds_inside_the_band_and_plans_a_deposit_at_the_target_outside() {
        let cfg = BaselineConfig::default();
        let balanced = state(PoolType::Dvm, 10, 20_000);
        assert!(matches!(
            baseline(&balanced, &limits(), &cfg),
            BaselinePlan::Hold { .. }
        ));
        // 15 WETH (30,000 USDC) against 20,000 USDC: ratio 0.6, outside 0.5 +/- 0.05.
        let heavy = state(PoolType::Dvm, 15, 20_000);
        let BaselinePlan::Add {
            base_amount,
            quote_amount,
            ..
        } = baseline(&heavy, &limits(), &cfg)
        else {
            panic!("expected a deposit");
        };
        // 10% of 10,000 USDC, half in each token: 500 USDC and 0.25 WETH.
        assert_eq!(quote_amount, Amount(U256::from(500u64) * e(6)));
        assert_eq!(base_amount, Amount(U256::from(25u64) * e(16)));
        let p = baseline(&heavy, &limits(), &cfg).into_proposal(
            &heavy,
            &limits(),
            Amount(U256::from(1000u64)),
        );
        match &p {
            // Half of the 100 bps slippage limit off the expected shares.
            ActionProposal::AddLiquidity {
                min_shares, pool, ..
            } => {
                assert_eq!(*min_shares, Amount(U256::from(995u64)));
                assert_eq!(*pool, POOL);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(validate_proposal(&p, &heavy, &limits()), Ok(()));
    }

    /// Donated notional of depositing `base`/`quote` into `s` (a DVM whose LPs hold as many
    /// shares as it holds base units), basis points of the deposit's notional.
    fn donation_bps(s: &PoolState, base: Amount, quote: Amount) -> U256 {
        let liq = crate::math::LiquidityState {
            total_supply: s.reserves.base.0,
            base_reserve: s.reserves.base.0,
            quote_reserve: s.reserves.quote.0,
            i: s.mid_price_raw.expect("a priced pool").0,
            b0: U256::ZERO,
            q0: U256::ZERO,
        };
        let bs = crate::math::buy_shares(
            crate::math::PoolKind::Dvm,
            crate::math::Generation::V2024,
            &liq,
            s.reserves.base.0 + base.0,
            s.reserves.quote.0 + quote.0,
        )
        .unwrap();
        let mid = s.mid_price_raw.expect("a priced pool");
        let donated = notional_of(Amount(bs.donated_base), Amount(bs.donated_quote), mid).unwrap();
        let notional = notional_of(base, quote, mid).unwrap();
        donated.0 * U256::from(10_000u32) / notional.0
    }

    #[test]
    fn baseline_deposit_on_an_off_ratio_pool_is_balanced_and_donates_nothing() {
        // Ratio 0.6: the plan at the target (0.25 WETH + 500 USDC) over-contributes quote.
        let heavy = state(PoolType::Dvm, 15, 20_000);
        let plan = baseline(&heavy, &limits(), &BaselineConfig::default());
        let BaselinePlan::Add {
            base_amount,
            quote_amount,
            ..
        } = plan.clone()
        else {
            panic!("expected a deposit: {plan:?}");
        };
        let max_donation = U256::from(limits().max_donation_bps);
        let unbalanced = donation_bps(&heavy, base_amount, quote_amount);
        assert!(unbalanced > max_donation, "{unbalanced} bps");

        // What the hub's quote reports as the balanced amounts (DODO's proxy would take these).
        let (b, q) = crate::policy::balanced_deposit(
            heavy.reserves.base.0,
            heavy.reserves.quote.0,
            base_amount.0,
            quote_amount.0,
        );
        let p = plan.balanced(Amount(b), Amount(q)).into_proposal(
            &heavy,
            &limits(),
            Amount(U256::from(1000u64)),
        );
        let ActionProposal::AddLiquidity {
            base_amount: pb,
            quote_amount: pq,
            reason,
            ..
        } = &p
        else {
            panic!("{p:?}");
        };
        // The pool's own ratio: all the base, and quote at 20,000 / 15 USDC per WETH.
        assert_eq!(*pb, base_amount);
        assert_eq!(pq.0, U256::from(333_333_333u64));
        assert!(reason.contains("balanced"), "{reason}");
        let balanced = donation_bps(&heavy, *pb, *pq);
        assert!(balanced <= max_donation, "{balanced} bps");
        assert_eq!(balanced, U256::ZERO);
        assert_eq!(validate_proposal(&p, &heavy, &limits()), Ok(()));

        // Balanced to nothing on the base side: nothing to deposit.
        assert!(matches!(
            baseline(&heavy, &limits(), &BaselineConfig::default())
                .balanced(Amount::ZERO, Amount(q)),
            BaselinePlan::Hold { .. }
        ));
    }

    #[test]
    fn baseline_holds_on_owner_managed_and_empty_pools() {
        let cfg = BaselineConfig::default();
        let dpp = state(PoolType::Dpp, 15, 20_000);
        assert!(
            matches!(baseline(&dpp, &limits(), &cfg), BaselinePlan::Hold { reason } if reason.contains("owner-managed"))
        );
        let empty = state(PoolType::Dvm, 0, 0);
        assert!(matches!(
            baseline(&empty, &limits(), &cfg),
            BaselinePlan::Hold { .. }
        ));
    }

    #[test]
    fn validation_refuses_other_pools_oversized_amounts_and_impossible_minimums() {
        let s = state(PoolType::Dvm, 10, 20_000);
        let add = |pool, base: u64, quote: u64| ActionProposal::AddLiquidity {
            pool,
            base_amount: Amount(U256::from(base) * e(15)),
            quote_amount: Amount(U256::from(quote) * e(6)),
            min_shares: Amount::ZERO,
            reason: String::new(),
        };
        assert_eq!(
            validate_proposal(&add(POOL, 1000, 2000), &s, &limits()),
            Ok(())
        );
        let other = address!("00000000000000000000000000000000000000a2");
        assert!(
            validate_proposal(&add(other, 1000, 2000), &s, &limits())
                .unwrap_err()
                .0
                .contains("targets pool")
        );
        // 5 WETH (10,000 USDC) + 1 USDC is above the 10,000 USDC cap.
        let err = validate_proposal(&add(POOL, 5000, 1), &s, &limits()).unwrap_err();
        assert!(err.0.contains("max_notional_per_tx"), "{err}");
        assert!(validate_proposal(&add(POOL, 0, 10), &s, &limits()).is_err());
        let remove = |min_base: u64| ActionProposal::RemoveLiquidity {
            pool: POOL,
            shares: Amount(U256::from(1u64)),
            min_base: Amount(U256::from(min_base) * e(18)),
            min_quote: Amount::ZERO,
            reason: String::new(),
        };
        assert_eq!(validate_proposal(&remove(1), &s, &limits()), Ok(()));
        assert!(
            validate_proposal(&remove(11), &s, &limits())
                .unwrap_err()
                .0
                .contains("reserves")
        );
        let dpp = state(PoolType::Dpp, 10, 20_000);
        assert!(validate_proposal(&add(POOL, 1, 1), &dpp, &limits()).is_err());
        let hold = ActionProposal::Hold { reason: "x".into() };
        assert_eq!(validate_proposal(&hold, &dpp, &limits()), Ok(()));
    }
}
