//! The check a TWAP pool (`_IS_OPEN_TWAP_`) adds to every write.
//!
//! Inside each write, once the new reserves and targets are stored, a TWAP pool that was last
//! updated at least one second ago and holds both tokens prices its new state with
//! `getMidPrice()` and adds `midPrice * elapsed` to its cumulative price. A post-state mid price
//! that reverts, or a product that overflows, reverts the write, although the same write on a
//! pool without TWAP succeeds.

use super::fixed::mul;
use super::pmm::mid_price;
use super::{Generation, MathError, PmmState, U256};

/// Whether a TWAP pool accepts a write leaving `post` (the state as `getPMMStateForCall` would
/// read it before target adjustment) `elapsed` seconds after its last update, and the term the
/// write adds to the cumulative price (`None` when the update is skipped).
///
/// Fails with the mid price's revert on the post state (e.g. "MUL_ERROR" with a huge i and
/// reserves near 2^112) or "MUL_ERROR" when `midPrice * elapsed` overflows.
pub fn twap_update(
    generation: Generation,
    post: &PmmState,
    elapsed: u32,
) -> Result<Option<U256>, MathError> {
    if elapsed == 0 || post.b.is_zero() || post.q.is_zero() {
        return Ok(None);
    }
    let mid = mid_price(generation, post)?;
    mul(mid, U256::from(elapsed)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::fixed::UINT112_MAX;
    use crate::math::{ONE, RState};

    fn state(i: U256, b: U256, q: U256) -> PmmState {
        PmmState {
            i,
            k: ONE / U256::from(2u8),
            b,
            q,
            b0: b,
            q0: q,
            r: RState::One,
        }
    }

    #[test]
    fn skipped_without_elapsed_time_or_an_empty_side() {
        let s = state(ONE, U256::ZERO, U256::from(5u8));
        assert_eq!(twap_update(Generation::V2024, &s, 10), Ok(None));
        let s = state(ONE, ONE, ONE);
        assert_eq!(twap_update(Generation::V2024, &s, 0), Ok(None));
    }

    #[test]
    fn adds_the_mid_price_times_elapsed() {
        let s = state(ONE * U256::from(3u8), ONE, ONE);
        assert_eq!(
            twap_update(Generation::V2021, &s, 7),
            Ok(Some(ONE * U256::from(21u8)))
        );
    }

    #[test]
    fn a_post_state_whose_mid_price_reverts_is_refused() {
        // ONE state, B0 = B near 2^112: B0 * B0 fits, but i = 1e36 times the factor does not.
        let big = UINT112_MAX;
        let mut s = state(ONE * ONE, big, big);
        s.k = ONE;
        s.b0 = big;
        s.b = U256::from(1u8);
        assert_eq!(
            twap_update(Generation::V2024, &s, 1),
            Err(MathError::MulOverflow)
        );
    }
}
