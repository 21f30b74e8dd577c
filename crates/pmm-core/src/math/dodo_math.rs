//! The three PMM curve primitives: the integral G, the target solver T and the trade solver S.
//!
//! Argument order and names follow the formulas in the project's DODO notes
//! (`shared/dodo-pmm.md (beside the repository)`): V0 = target, V1 = current reserve, i = price of the pair as
//! seen from the traded side, k = curvature (all 1e18 fixed point where they are prices).

use super::fixed::{
    ONE2, add, div, div_ceil, div_floor, mul, mul_floor, sqrt as contract_sqrt, sub,
};
use super::{Generation, MathError, ONE, U256};

/// G: the amount paid out when the reserve moves from `v1` down to `v2` on a curve with
/// target `v0` (round down): `i * (v1 - v2) * (1 - k + k * v0^2 / (v1 * v2))`.
///
/// Fails with "TARGET_IS_ZERO" when `v0 = 0`, "SUB_ERROR" when `v2 > v1`, and
/// "DIVIDING_ERROR" when `k > 0` and `v1` or `v2` is 0.
pub fn general_integrate(
    v0: U256,
    v1: U256,
    v2: U256,
    i: U256,
    k: U256,
) -> Result<U256, MathError> {
    if v0.is_zero() {
        return Err(MathError::TargetIsZero);
    }
    let fair_amount = mul(i, sub(v1, v2)?)?;
    if k.is_zero() {
        return Ok(fair_amount / ONE);
    }
    let v0v0v1v2 = div_floor(div(mul(v0, v0)?, v1)?, v2)?;
    let penalty = mul_floor(k, v0v0v1v2)?;
    div(mul(add(sub(ONE, k)?, penalty)?, fair_amount)?, ONE2)
}

/// T: the regression target V0 of a side holding `v1` after `delta` of the other side was
/// sold into it at price `i` (round down).
///
/// `k = 0` gives `v1 + mulFloor(i, delta)`; `v1 = 0` gives 0 (the 2024 code checks `k = 0`
/// first, the 2021 code `v1 = 0` first, so `k = 0, v1 = 0` gives `mulFloor(i, delta)` on a 2024
/// pool and 0 on a 2021 pool). Otherwise
/// `s = sqrt(floor(4k*i*delta / v1) + 1e36)`, computed as `floor(4k*i / v1) * delta` when
/// `(4k*i) * delta` overflows, and `V0 = mulFloor(v1, floor((s - 1e18) * 1e18 / 2k) + 1e18)`.
pub fn solve_quadratic_for_target(
    generation: Generation,
    v1: U256,
    delta: U256,
    i: U256,
    k: U256,
) -> Result<U256, MathError> {
    if generation == Generation::V2021 && v1.is_zero() {
        return Ok(U256::ZERO);
    }
    if k.is_zero() {
        return add(v1, mul_floor(i, delta)?);
    }
    if v1.is_zero() {
        return Ok(U256::ZERO);
    }
    // `4 * k` and `k * 2` are unchecked on chain; k <= 1e18 keeps them far from wrapping.
    let four_k = k.wrapping_mul(U256::from(4u8));
    let ki = mul(four_k, i)?;
    let root = if ki.is_zero() {
        ONE
    } else if let Some(product) = ki.checked_mul(delta) {
        contract_sqrt(add(div(product, v1)?, ONE2)?)
    } else {
        contract_sqrt(add(mul(div(ki, v1)?, delta)?, ONE2)?)
    };
    let premium = add(
        div_floor(sub(root, ONE)?, k.wrapping_mul(U256::from(2u8)))?,
        ONE,
    )?;
    mul_floor(v1, premium)
}

/// S: the amount of the V side paid out when `delta` of the other side is sold at price `i`
/// into a side holding `v1` with target `v0` (round down, never more than `v1`).
///
/// Fails with "TARGET_IS_ZERO" when `v0 = 0` (checked before anything else), returns 0 for
/// `delta = 0`, and `min(mulFloor(i, delta), v1)` for `k = 0`. For `k = 1e18`,
/// `temp = floor(i*delta*v1 / v0^2)` (only an overflow of `(i*delta) * v1` switches to
/// `floor(floor(floor(delta*v1 / v0) * i) / v0)`) and the result is
/// `floor(v1 * temp / (temp + 1e18))`. Otherwise it solves the quadratic; the solution
/// `V2 = divCeil(num, 2(1e18 - k))` is floored at 0 output. A zero numerator on the
/// "b positive" branch fails with "DODOMath: should not be zero" on a 2024 pool; a 2021 pool
/// goes on with `V2 = 0` and pays out all of `v1`.
pub fn solve_quadratic_for_trade(
    generation: Generation,
    v0: U256,
    v1: U256,
    delta: U256,
    i: U256,
    k: U256,
) -> Result<U256, MathError> {
    if v0.is_zero() {
        return Err(MathError::TargetIsZero);
    }
    if delta.is_zero() {
        return Ok(U256::ZERO);
    }
    if k.is_zero() {
        return Ok(mul_floor(i, delta)?.min(v1));
    }
    if k == ONE {
        let idelta = mul(i, delta)?;
        let temp = if idelta.is_zero() {
            U256::ZERO
        } else if let Some(product) = idelta.checked_mul(v1) {
            div(product, mul(v0, v0)?)?
        } else {
            div(mul(div(mul(delta, v1)?, v0)?, i)?, v0)?
        };
        return div(mul(v1, temp)?, add(temp, ONE)?);
    }

    // part2 = k*v0^2/v1 + i*delta, part1 = (1 - k)*v1; b = |part1 - part2| / 1e18.
    let part2 = add(mul(div(mul(k, v0)?, v1)?, v0)?, mul(i, delta)?)?;
    let part1 = mul(sub(ONE, k)?, v1)?;
    let (b_abs, b_positive) = if part1 >= part2 {
        (part1 - part2, false)
    } else {
        (part2 - part1, true)
    };
    let b_abs = b_abs / ONE;

    let four_ac = mul_floor(
        mul(sub(ONE, k)?, U256::from(4u8))?,
        mul(mul_floor(k, v0)?, v0)?,
    )?;
    let root = contract_sqrt(add(mul(b_abs, b_abs)?, four_ac)?);

    let denominator = mul(sub(ONE, k)?, U256::from(2u8))?;
    let numerator = if b_positive {
        let n = sub(root, b_abs)?;
        if n.is_zero() && generation == Generation::V2024 {
            return Err(MathError::RootIsZero);
        }
        n
    } else {
        add(b_abs, root)?
    };
    let v2 = div_ceil(numerator, denominator)?;
    Ok(if v2 > v1 { U256::ZERO } else { v1 - v2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const E18: u128 = 1_000_000_000_000_000_000;
    const G24: Generation = Generation::V2024;
    const G21: Generation = Generation::V2021;

    fn u(x: u128) -> U256 {
        U256::from(x)
    }

    fn e18(x: u128) -> U256 {
        U256::from(x) * ONE
    }

    #[test]
    fn integrate_hand_checked() {
        // k = 0: i * (v1 - v2) / 1e18 = 2 * 5 = 10 tokens.
        assert_eq!(
            general_integrate(e18(10), e18(15), e18(10), e18(2), u(0)),
            Ok(e18(10))
        );
        // k = 0.5, V0 = 10, V1 = 20, V2 = 10, i = 1:
        // t = 100/20/10 = 0.5; factor = 0.5 + 0.25 = 0.75; 10 * 0.75 = 7.5
        assert_eq!(
            general_integrate(e18(10), e18(20), e18(10), ONE, u(E18 / 2)),
            Ok(u(7_500_000_000_000_000_000))
        );
        // Flooring of the final division: fair = 1 * 1, factor 1 (k = 1, t = 1) -> 1e18*1/1e36 = 0.
        assert_eq!(general_integrate(u(1), u(1), u(1), ONE, ONE), Ok(u(0)));
        assert_eq!(
            general_integrate(u(0), e18(1), e18(1), ONE, ONE),
            Err(MathError::TargetIsZero)
        );
        assert_eq!(
            general_integrate(e18(1), e18(1), e18(2), ONE, ONE),
            Err(MathError::Underflow)
        );
        assert_eq!(
            general_integrate(e18(1), e18(1), u(0), ONE, u(E18 / 2)),
            Err(MathError::DivisionByZero)
        );
        // k = 0 never divides by the reserves.
        assert_eq!(
            general_integrate(e18(1), e18(1), u(0), ONE, u(0)),
            Ok(e18(1))
        );
    }

    #[test]
    fn target_hand_checked() {
        // k = 0: V1 + i*delta.
        assert_eq!(
            solve_quadratic_for_target(G24, e18(10), e18(3), e18(2), u(0)),
            Ok(e18(16))
        );
        assert_eq!(
            solve_quadratic_for_target(G24, u(0), e18(3), e18(2), u(E18 / 2)),
            Ok(u(0))
        );
        // k = 0.5, V1 = 10, delta = 20, i = 1: s = sqrt(1 + 4*0.5*20/10) = sqrt(5) (floored
        // at 18 decimals); premium = 1 + (s - 1) / 1; V0 = 10 * s.
        let s = contract_sqrt(U256::from(5u8) * ONE2);
        assert_eq!(s, u(2_236_067_977_499_789_696));
        assert_eq!(
            solve_quadratic_for_target(G24, e18(10), e18(20), ONE, u(E18 / 2)),
            Ok(s * U256::from(10u8))
        );
        // Exact square: k = 1, V1 = 1, delta = 2, i = 1: s = sqrt(1 + 8) = 3, premium = 2, V0 = 2.
        assert_eq!(
            solve_quadratic_for_target(G24, e18(1), e18(2), ONE, ONE),
            Ok(e18(2))
        );
        // i = 0 makes 4k*i zero: premium 1, V0 = V1.
        assert_eq!(
            solve_quadratic_for_target(G24, e18(7), e18(2), u(0), ONE),
            Ok(e18(7))
        );
    }

    #[test]
    fn target_overflow_fallback() {
        // (4k*i) * delta overflows; the fallback floor(4k*i / V1) * delta is used.
        let k = ONE;
        let i = ONE2;
        let v1 = U256::from(1u8) << 120;
        let delta = U256::from(1u8) << 120;
        let ki = U256::from(4u8) * k * i;
        assert!(ki.checked_mul(delta).is_none());
        let inner = (ki / v1) * delta + ONE2;
        let root = contract_sqrt(inner);
        let premium = (root - ONE) * ONE / (k * U256::from(2u8)) + ONE;
        let expected = v1 * premium / ONE;
        assert_eq!(
            solve_quadratic_for_target(G24, v1, delta, i, k),
            Ok(expected)
        );
        // The fallback itself can overflow, and then it reverts.
        assert_eq!(
            solve_quadratic_for_target(G24, u(1), U256::MAX, ONE2, ONE),
            Err(MathError::MulOverflow)
        );
    }

    #[test]
    fn trade_k_zero_and_trivial() {
        assert_eq!(
            solve_quadratic_for_trade(G24, u(0), e18(1), e18(1), ONE, u(0)),
            Err(MathError::TargetIsZero)
        );
        // TARGET_IS_ZERO is checked before the zero-delta shortcut.
        assert_eq!(
            solve_quadratic_for_trade(G24, u(0), e18(1), u(0), ONE, u(0)),
            Err(MathError::TargetIsZero)
        );
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(1), e18(1), u(0), ONE, u(E18 / 2)),
            Ok(u(0))
        );
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(10), e18(10), e18(3), e18(2), u(0)),
            Ok(e18(6))
        );
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(10), e18(10), e18(30), e18(2), u(0)),
            Ok(e18(10))
        );
    }

    #[test]
    fn trade_k_one() {
        // V0 = V1 = 10, delta = 10, i = 1: temp = 1e18 * 10 * 10 / 100 = 1e18;
        // out = 10 * 1e18 / 2e18 = 5.
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(10), e18(10), e18(10), ONE, ONE),
            Ok(e18(5))
        );
        // i * delta = 0 -> temp = 0 -> out 0.
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(10), e18(10), e18(10), u(0), ONE),
            Ok(u(0))
        );
        // Overflow of (i*delta)*V1 alone switches to the fallback.
        let v = U256::from(1u8) << 100;
        let delta = U256::from(1u8) << 100;
        let i = ONE;
        assert!(mul(i, delta).unwrap().checked_mul(v).is_none());
        let temp = ((delta * v) / v) * i / v;
        let expected = v * temp / (temp + ONE);
        assert_eq!(
            solve_quadratic_for_trade(G24, v, v, delta, i, ONE),
            Ok(expected)
        );
        // An overflow of i*delta reverts.
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(1), e18(1), U256::MAX, e18(2), ONE),
            Err(MathError::MulOverflow)
        );
        // An overflow of V0*V0 reverts even though the fallback would not need it.
        let big = U256::from(1u8) << 130;
        assert_eq!(
            solve_quadratic_for_trade(G24, big, u(1), u(1), u(1), ONE),
            Err(MathError::MulOverflow)
        );
    }

    #[test]
    fn trade_general_hand_checked() {
        // k = 0.5, V0 = V1 = 10, i = 1, delta = 10.
        // part2 = 0.5*10 + 10 = 15 (scaled 1e36), part1 = 5, b = 10 (scaled 1e18), positive.
        // 4ac = 4*0.5*0.5*100 = 100; root = sqrt(100 + 100) = sqrt(200).
        // num = root - 10; V2 = ceil(num / 1); out = 10 - V2.
        let root = contract_sqrt(U256::from(200u8) * ONE2);
        let num = root - e18(10);
        let v2 = (num * ONE).div_ceil(ONE);
        let expected = e18(10) - v2;
        assert_eq!(
            solve_quadratic_for_trade(G24, e18(10), e18(10), e18(10), ONE, u(E18 / 2)),
            Ok(expected)
        );
        // Real value: 10 - (sqrt(200) - 10) = 5.857864376269049512 (within rounding)
        assert_eq!(expected, u(5_857_864_376_269_049_512));
    }

    #[test]
    fn trade_general_negative_b_branch() {
        // part1 > part2: (1-k)V1 large versus k V0^2/V1 + i delta.
        // k = 0.5, V0 = 10, V1 = 100 (reserve above target is not reachable in a pool but the
        // solver still answers), delta = 1, i = 1: part2 = 0.5 + 1 = 1.5, part1 = 50.
        let out =
            solve_quadratic_for_trade(G24, e18(10), e18(100), e18(1), ONE, u(E18 / 2)).unwrap();
        let b = e18(50) - u(3 * E18 / 2);
        let four_ac = e18(100);
        let root = contract_sqrt(b * b + four_ac * ONE);
        let v2 = ((b + root) * ONE).div_ceil(ONE);
        assert_eq!(out, e18(100) - v2);
    }

    #[test]
    fn trade_root_is_zero() {
        // K = 1 wei, a 6-decimal quote (V0 = 100e6 raw): mulFloor(K, V0) = 0, so 4ac = 0 and
        // root = b. Selling base worth at least V1 takes the positive-b branch and reverts.
        let q0 = u(100_000_000);
        let i = u(1_000_000);
        assert_eq!(
            solve_quadratic_for_trade(G24, q0, q0, e18(100), i, u(1)),
            Err(MathError::RootIsZero)
        );
        // A smaller trade stays on the negative branch and prices at i.
        assert_eq!(
            solve_quadratic_for_trade(G24, q0, q0, e18(99), i, u(1)),
            Ok(u(99_000_000))
        );
    }

    #[test]
    fn generations_differ_in_target_check_order() {
        // k = 0 and V1 = 0: the 2024 code answers mulFloor(i, delta), the 2021 code 0.
        assert_eq!(
            solve_quadratic_for_target(G24, u(0), e18(3), e18(2), u(0)),
            Ok(e18(6))
        );
        assert_eq!(
            solve_quadratic_for_target(G21, u(0), e18(3), e18(2), u(0)),
            Ok(u(0))
        );
        // Everywhere else they agree.
        assert_eq!(
            solve_quadratic_for_target(G21, e18(10), e18(3), e18(2), u(0)),
            Ok(e18(16))
        );
        assert_eq!(
            solve_quadratic_for_target(G21, e18(1), e18(2), ONE, ONE),
            Ok(e18(2))
        );
    }

    #[test]
    fn the_2021_trade_solver_pays_out_the_side_instead_of_reverting() {
        let q0 = u(100_000_000);
        let i = u(1_000_000);
        assert_eq!(
            solve_quadratic_for_trade(G24, q0, q0, e18(100), i, u(1)),
            Err(MathError::RootIsZero)
        );
        // num = 0 gives V2 = 0: the whole V1 comes out.
        assert_eq!(
            solve_quadratic_for_trade(G21, q0, q0, e18(100), i, u(1)),
            Ok(q0)
        );
        assert_eq!(
            solve_quadratic_for_trade(G21, q0, q0, e18(99), i, u(1)),
            Ok(u(99_000_000))
        );
    }

    #[test]
    fn trade_output_floored_at_zero() {
        // A 4183-unit sale at i = 87 wei: V2 = divCeil(num, 2(1 - k)) rounds above V1, and the
        // output is 0 instead of an underflow.
        assert_eq!(
            solve_quadratic_for_trade(
                G24,
                u(692_689_190_590_126_864_284),
                u(108_116_530_505_336_740_879),
                u(4183),
                u(87),
                u(95_962_424_532_352_295),
            ),
            Ok(u(0))
        );
    }
}
