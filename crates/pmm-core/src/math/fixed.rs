//! Checked integer and 18-decimal fixed-point building blocks.
//!
//! Each function reverts (returns a [`MathError`]) exactly where DODO's SafeMath / DecimalMath
//! libraries revert, with the same rounding, so composite formulas built from them fail and
//! round like the contracts do.

use super::{MathError, ONE, U256};

/// 1e36: ONE squared, the scale of a product of two fixed-point numbers.
pub const ONE2: U256 = U256::from_limbs([0xb34b_9f10_0000_0000, 0x00c0_97ce_7bc9_0715, 0, 0]);

/// Largest value of a `uint112` (2^112 - 1): the width of stored reserves and DSP targets.
pub const UINT112_MAX: U256 = U256::from_limbs([u64::MAX, (1u64 << 48) - 1, 0, 0]);

/// `a * b`, failing where SafeMath reverts "MUL_ERROR".
pub fn mul(a: U256, b: U256) -> Result<U256, MathError> {
    a.checked_mul(b).ok_or(MathError::MulOverflow)
}

/// `floor(a / b)`, failing where SafeMath reverts "DIVIDING_ERROR".
pub fn div(a: U256, b: U256) -> Result<U256, MathError> {
    if b.is_zero() {
        return Err(MathError::DivisionByZero);
    }
    Ok(a / b)
}

/// `a + b`, failing where SafeMath reverts "ADD_ERROR".
pub fn add(a: U256, b: U256) -> Result<U256, MathError> {
    a.checked_add(b).ok_or(MathError::AddOverflow)
}

/// `a - b`, failing where SafeMath reverts "SUB_ERROR".
pub fn sub(a: U256, b: U256) -> Result<U256, MathError> {
    a.checked_sub(b).ok_or(MathError::Underflow)
}

/// `ceil(a / b)` on plain integers (SafeMath `divCeil`).
pub fn ceil_div(a: U256, b: U256) -> Result<U256, MathError> {
    let quotient = div(a, b)?;
    // quotient * b <= a, so neither the product nor the remainder can wrap.
    if a == quotient * b {
        Ok(quotient)
    } else {
        Ok(quotient + U256::from(1u8))
    }
}

/// `floor(a * b / 1e18)` (DecimalMath `mulFloor`).
pub fn mul_floor(a: U256, b: U256) -> Result<U256, MathError> {
    Ok(mul(a, b)? / ONE)
}

/// `ceil(a * b / 1e18)` (DecimalMath `mulCeil`).
pub fn mul_ceil(a: U256, b: U256) -> Result<U256, MathError> {
    ceil_div(mul(a, b)?, ONE)
}

/// `floor(a * 1e18 / b)` (DecimalMath `divFloor`).
pub fn div_floor(a: U256, b: U256) -> Result<U256, MathError> {
    div(mul(a, ONE)?, b)
}

/// `ceil(a * 1e18 / b)` (DecimalMath `divCeil`).
pub fn div_ceil(a: U256, b: U256) -> Result<U256, MathError> {
    ceil_div(mul(a, ONE)?, b)
}

/// `floor(1e36 / a)` (DecimalMath `reciprocalFloor`): the inverse price i' of a guide price i.
pub fn reciprocal_floor(a: U256) -> Result<U256, MathError> {
    div(ONE2, a)
}

/// The contracts' integer square root (SafeMath `sqrt`, Babylonian from `x / 2 + 1`).
///
/// This is the floor square root for every input except 2, where the on-chain loop never runs
/// and returns 2: reproduced on purpose because the trade solver can take the root of 2.
pub fn sqrt(x: U256) -> U256 {
    let two = U256::from(2u8);
    let mut z = x / two + U256::from(1u8);
    let mut y = x;
    while z < y {
        y = z;
        // z >= floor(sqrt(x)) >= x / z here, so the sum stays below 2^256.
        z = (x / z).wrapping_add(z) / two;
    }
    y
}

/// Keeps the low 112 bits, as a Solidity `uint112(x)` cast does when the DSP stores a target.
pub fn truncate_u112(x: U256) -> U256 {
    x & UINT112_MAX
}

/// Fails with "OVERFLOW" when a reserve would not fit the pool's `uint112` storage.
pub fn check_reserves_fit(base: U256, quote: U256) -> Result<(), MathError> {
    if base > UINT112_MAX || quote > UINT112_MAX {
        return Err(MathError::ReserveOverflow);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(x: u128) -> U256 {
        U256::from(x)
    }

    #[test]
    fn constants() {
        assert_eq!(ONE2, ONE * ONE);
        assert_eq!(UINT112_MAX, (U256::from(1u8) << 112) - u(1));
    }

    #[test]
    fn basic_ops_and_reverts() {
        assert_eq!(mul(U256::MAX, u(2)), Err(MathError::MulOverflow));
        assert_eq!(mul(U256::MAX, u(0)), Ok(u(0)));
        assert_eq!(add(U256::MAX, u(1)), Err(MathError::AddOverflow));
        assert_eq!(sub(u(1), u(2)), Err(MathError::Underflow));
        assert_eq!(div(u(1), u(0)), Err(MathError::DivisionByZero));
        assert_eq!(ceil_div(u(0), u(0)), Err(MathError::DivisionByZero));
        assert_eq!(ceil_div(u(7), u(2)), Ok(u(4)));
        assert_eq!(ceil_div(u(8), u(2)), Ok(u(4)));
        assert_eq!(ceil_div(u(0), u(5)), Ok(u(0)));
    }

    #[test]
    fn decimal_rounding() {
        let one = 1_000_000_000_000_000_000u128;
        // 1.5 * 0.333333333333333333 = 0.4999999999999999995 -> floor / ceil
        assert_eq!(mul_floor(u(3 * one / 2), u(one / 3)), Ok(u(one / 2 - 1)));
        assert_eq!(mul_ceil(u(3 * one / 2), u(one / 3)), Ok(u(one / 2)));
        // 1 / 3 in fixed point
        assert_eq!(div_floor(u(1), u(3)), Ok(u(333_333_333_333_333_333)));
        assert_eq!(div_ceil(u(1), u(3)), Ok(u(333_333_333_333_333_334)));
        assert_eq!(div_floor(u(1), u(0)), Err(MathError::DivisionByZero));
        assert_eq!(div_floor(U256::MAX, u(1)), Err(MathError::MulOverflow));
        assert_eq!(reciprocal_floor(u(3 * one)), Ok(u(333_333_333_333_333_333)));
        assert_eq!(reciprocal_floor(u(0)), Err(MathError::DivisionByZero));
        assert_eq!(reciprocal_floor(ONE2), Ok(u(1)));
    }

    #[test]
    fn sqrt_matches_floor_root_except_two() {
        assert_eq!(sqrt(u(0)), u(0));
        assert_eq!(sqrt(u(1)), u(1));
        assert_eq!(sqrt(u(2)), u(2));
        assert_eq!(sqrt(u(3)), u(1));
        assert_eq!(sqrt(u(4)), u(2));
        for x in 3u128..5000 {
            let r = sqrt(u(x));
            assert!(r * r <= u(x) && (r + u(1)) * (r + u(1)) > u(x), "x = {x}");
        }
        assert_eq!(sqrt(ONE2), ONE);
        assert_eq!(sqrt(ONE2 - u(1)), ONE - u(1));
        let max_root = sqrt(U256::MAX);
        assert_eq!(max_root, U256::from(u128::MAX));
    }

    #[test]
    fn u112_helpers() {
        assert_eq!(truncate_u112(UINT112_MAX + u(5)), u(4));
        assert_eq!(check_reserves_fit(UINT112_MAX, u(0)), Ok(()));
        assert_eq!(
            check_reserves_fit(u(0), UINT112_MAX + u(1)),
            Err(MathError::ReserveOverflow)
        );
    }
}
