//! Pool health: the oracle and liquidity checks the pool monitor trips breakers on, shared with
//! [`super::evaluate`] so a risk report and the monitor can never disagree.
//!
//! * A reference price is independent only when it comes from a Chainlink-style feed the
//!   allowlist names. A V1 or DPP Oracle pool's own oracle is the pool's input: comparing the
//!   pool with it can never deny, so without a configured feed such a pool has no reference
//!   and writes deny ("no independent reference price"). That is a configuration fact, not an
//!   event, so it does not trip.
//! * A feed's age is its own `updatedAt`, never the block's.
//! * Trips: a deviation beyond the limit (the pool price is off), a feed that is missing,
//!   unusable (zero, negative, unconvertible, too far in the future) or stale (the pool can no
//!   longer be checked), and reserves below `min_base_reserve` / `min_quote_reserve`.

use alloy_primitives::{U256, U512};

use super::Limits;
use crate::config::PoolEntry;
use crate::schema::{OracleKind, OraclePrice, PoolState};

/// Basis points in one.
const BPS: u64 = 10_000;

/// How far a feed's `updated_at` may run ahead of the evaluating clock (block time against wall
/// time, clock drift) before the feed is treated as unusable.
pub const MAX_FEED_CLOCK_SKEW_S: u64 = 300;

/// How the oracle check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OracleCheck {
    /// The independent feed agrees with the mid price; the deviation in bps and its detail.
    Pass {
        /// Deviation, basis points of the feed price.
        deviation_bps: U512,
        /// Values behind it.
        detail: String,
    },
    /// Writes must not proceed, and nothing happened that should trip the breaker.
    Deny(String),
    /// Writes must not proceed and the breaker trips with `"{what}: {detail}"`.
    Trip {
        /// Short cause, the start of the stored reason.
        what: &'static str,
        /// Values behind it.
        detail: String,
    },
}

/// `ceil(BPS * diff / base)` for a positive base.
pub(crate) fn bps_of(diff: U512, base: U512) -> U512 {
    (diff * U512::from(BPS)).div_ceil(base)
}

/// Checks the pool's mid price against its independent feed at `now`.
pub fn oracle_check(
    state: &PoolState,
    entry: &PoolEntry,
    oracle: Option<&OraclePrice>,
    now: u64,
) -> OracleCheck {
    let limits = entry.effective_limits();
    if entry.oracle.kind != OracleKind::Chainlink {
        return OracleCheck::Deny(format!(
            "no independent reference price: the pool is priced by its own {} oracle; name a \
             chainlink feed in the allowlist entry's oracle",
            entry.oracle.kind.as_str()
        ));
    }
    if let Some(why) = &state.oracle_unusable {
        return OracleCheck::Trip {
            what: "oracle feed unusable",
            detail: why.clone(),
        };
    }
    let Some(oracle) = oracle else {
        return OracleCheck::Trip {
            what: "oracle feed missing",
            detail: "no oracle observation".into(),
        };
    };
    if oracle.kind != OracleKind::Chainlink {
        return OracleCheck::Deny(format!(
            "no independent reference price: the observation is the pool's own {} oracle",
            oracle.kind.as_str()
        ));
    }
    if oracle.price_raw.is_zero() {
        return OracleCheck::Trip {
            what: "oracle feed unusable",
            detail: "oracle price is zero".into(),
        };
    }
    // A timestamp slightly ahead of our clock counts as fresh; one further ahead than the
    // allowed skew is a broken or hostile feed that would otherwise never go stale.
    if oracle.updated_at > now.saturating_add(MAX_FEED_CLOCK_SKEW_S) {
        return OracleCheck::Trip {
            what: "oracle feed unusable",
            detail: format!(
                "oracle updated_at {} is more than {MAX_FEED_CLOCK_SKEW_S}s ahead of now {now}",
                oracle.updated_at
            ),
        };
    }
    let age = now.saturating_sub(oracle.updated_at);
    if age > limits.oracle_max_age_s {
        return OracleCheck::Trip {
            what: "oracle feed stale",
            detail: format!(
                "oracle is stale: updated {age}s ago, max {}s",
                limits.oracle_max_age_s
            ),
        };
    }
    // No mid price is a state of the pool (an empty one has none), not a feed failure: writes
    // deny, the breaker stays as it is.
    let Some(mid) = state.mid_price_raw.map(|m| m.0) else {
        let why = state
            .mid_price_undefined
            .as_deref()
            .unwrap_or("no mid price");
        return OracleCheck::Deny(format!("nothing to compare with the feed: {why}"));
    };
    let reference = oracle.price_raw.0;
    let diff = if mid > reference {
        mid - reference
    } else {
        reference - mid
    };
    let deviation = bps_of(U512::from(diff), U512::from(reference));
    let detail = format!(
        "mid {mid} vs oracle {reference}: {deviation} bps, max {} bps (age {age}s)",
        limits.oracle_deviation_bps
    );
    if deviation > U512::from(limits.oracle_deviation_bps) {
        OracleCheck::Trip {
            what: "oracle deviation",
            detail,
        }
    } else {
        OracleCheck::Pass {
            deviation_bps: deviation,
            detail,
        }
    }
}

/// Why the pool is illiquid (a reserve below its floor), or `None`.
pub fn illiquidity(state: &PoolState, limits: &Limits) -> Option<String> {
    let mut short = Vec::new();
    if state.reserves.base < limits.min_base_reserve {
        short.push(format!(
            "base reserve {} below min_base_reserve {}",
            state.reserves.base, limits.min_base_reserve
        ));
    }
    if state.reserves.quote < limits.min_quote_reserve {
        short.push(format!(
            "quote reserve {} below min_quote_reserve {}",
            state.reserves.quote, limits.min_quote_reserve
        ));
    }
    (!short.is_empty()).then(|| short.join(", "))
}

/// The reason to trip an allowlisted pool's breaker for `state` at `now`, or `None` when it
/// is healthy. The pool monitor's one trip decision.
pub fn trip_reason(
    state: &PoolState,
    entry: &PoolEntry,
    oracle: Option<&OraclePrice>,
    now: u64,
) -> Option<String> {
    if let OracleCheck::Trip { what, detail } = oracle_check(state, entry, oracle, now) {
        return Some(format!("{what}: {detail}"));
    }
    illiquidity(state, &entry.effective_limits()).map(|why| format!("pool illiquid: {why}"))
}

/// The balanced part of a deposit of `base_in` and `quote_in` into a pool holding
/// `base_reserve` and `quote_reserve`: what DODO's V2 proxy transfers for an add (it scales the
/// side that would over-contribute down to the pool's ratio, floor), so nothing is donated.
/// An empty pool takes both amounts as they are; a pool holding one side only takes that side.
pub fn balanced_deposit(
    base_reserve: U256,
    quote_reserve: U256,
    base_in: U256,
    quote_in: U256,
) -> (U256, U256) {
    let one = U512::from(crate::math::ONE);
    let (b, q) = (U512::from(base_reserve), U512::from(quote_reserve));
    let narrow = |v: U512| U256::checked_from_limbs_slice(v.as_limbs()).unwrap_or(U256::MAX);
    match (base_reserve.is_zero(), quote_reserve.is_zero()) {
        (true, true) => (base_in, quote_in),
        (true, false) => (U256::ZERO, quote_in),
        (false, true) => (base_in, U256::ZERO),
        (false, false) => {
            let base_ratio = U512::from(base_in) * one / b;
            let quote_ratio = U512::from(quote_in) * one / q;
            if quote_ratio < base_ratio {
                (narrow(b * quote_ratio / one), quote_in)
            } else {
                (base_in, narrow(q * base_ratio / one))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::U256;

    use super::balanced_deposit;

    #[test]
    fn the_balanced_deposit_follows_the_pool_ratio() {
        let e18 = U256::from(10u64.pow(18));
        let usdc = |n: u64| U256::from(n) * U256::from(1_000_000u64);
        // 10 WETH / 20,000 USDC: 1 WETH + 20,000 USDC keeps 1 WETH + 2,000 USDC.
        let (b, q) = balanced_deposit(U256::from(10u8) * e18, usdc(20_000), e18, usdc(20_000));
        assert_eq!((b, q), (e18, usdc(2000)));
        // Too little quote: base is scaled down instead.
        let (b, q) = balanced_deposit(U256::from(10u8) * e18, usdc(20_000), e18, usdc(1000));
        assert_eq!((b, q), (e18 / U256::from(2u8), usdc(1000)));
        // Empty and one-sided pools.
        assert_eq!(
            balanced_deposit(U256::ZERO, U256::ZERO, e18, usdc(1)),
            (e18, usdc(1))
        );
        assert_eq!(
            balanced_deposit(e18, U256::ZERO, e18, usdc(1)),
            (e18, U256::ZERO)
        );
    }
}
