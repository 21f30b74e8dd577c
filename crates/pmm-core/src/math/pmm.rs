//! Pool-level pricing: adjusted targets, mid price, sell-base / sell-quote quotes with the R
//! state table, fee application, and the state a swap leaves behind.

use super::dodo_math::{general_integrate, solve_quadratic_for_target, solve_quadratic_for_trade};
use super::fixed::{
    UINT112_MAX, add, check_reserves_fit, div, div_floor, mul, mul_floor, reciprocal_floor, sub,
};
use super::{FeeRates, Generation, MathError, ONE, PmmState, PoolKind, RState, U256};

impl PmmState {
    /// The raw state a DVM prices from: no stored targets, so `B0 = Q0 = 0` and
    /// `R = ABOVE_ONE` before [`adjusted_target`] derives `B0 = T(B, Q, i', K)`.
    ///
    /// After adjustment a DVM therefore always reports `Q0 = 0` and `R = ABOVE_ONE`, which is
    /// what `getPMMStateForCall()` of a DVM returns. Passing that returned state to the
    /// functions here gives the same results, because adjustment is idempotent.
    pub fn dvm(i: U256, k: U256, base_reserve: U256, quote_reserve: U256) -> Self {
        Self {
            i,
            k,
            b: base_reserve,
            q: quote_reserve,
            b0: U256::ZERO,
            q0: U256::ZERO,
            r: RState::AboveOne,
        }
    }
}

/// The state with the regression target of the short side recomputed from the reserves
/// (PMMPricing `adjustedTarget`), as every V2 pool does before pricing.
///
/// `BELOW_ONE`: `Q0 = T(Q, B - B0, i, K)`; `ABOVE_ONE`: `B0 = T(B, Q - Q0, i', K)`; `ONE`:
/// unchanged. Fails with "SUB_ERROR" when the long side is below its target (a DSP in that
/// state needs `correctRState()` first), "DIVIDING_ERROR" for `i = 0` above one.
/// Applying it twice gives the same state.
pub fn adjusted_target(generation: Generation, state: &PmmState) -> Result<PmmState, MathError> {
    let mut out = *state;
    match state.r {
        RState::BelowOne => {
            out.q0 = solve_quadratic_for_target(
                generation,
                state.q,
                sub(state.b, state.b0)?,
                state.i,
                state.k,
            )?;
        }
        RState::AboveOne => {
            let delta = sub(state.q, state.q0)?;
            out.b0 = solve_quadratic_for_target(
                generation,
                state.b,
                delta,
                reciprocal_floor(state.i)?,
                state.k,
            )?;
        }
        RState::One => {}
    }
    Ok(out)
}

/// The mid price (quote per base, 1e18 fixed point) after [`adjusted_target`], as
/// `getMidPrice()` returns it.
///
/// `BELOW_ONE`: `divFloor(i, 1 - K + mulFloor(K, divFloor(floor(Q0^2 / Q), Q)))`; otherwise
/// `mulFloor(i, 1 - K + mulFloor(K, divFloor(floor(B0^2 / B), B)))`. A zero reserve on the
/// side used fails with "DIVIDING_ERROR" (so does an empty DVM).
pub fn mid_price(generation: Generation, state: &PmmState) -> Result<U256, MathError> {
    mid_price_of_adjusted(&adjusted_target(generation, state)?)
}

fn mid_price_of_adjusted(s: &PmmState) -> Result<U256, MathError> {
    let below = s.r == RState::BelowOne;
    let (target, reserve) = if below { (s.q0, s.q) } else { (s.b0, s.b) };
    let ratio = div_floor(div(mul(target, target)?, reserve)?, reserve)?;
    let factor = add(sub(ONE, s.k)?, mul_floor(s.k, ratio)?)?;
    if below {
        div_floor(s.i, factor)
    } else {
        mul_floor(s.i, factor)
    }
}

/// A quote for selling one token into the pool, as `querySellBase` / `querySellQuote` of a
/// DSP returns it (plus the LP fee, which stays in the pool).
///
/// A DVM's query returns only `(receive, mt_fee)`; `new_r` and `new_target` are still
/// computed here but a DVM never stores them (its state is always `Q0 = 0`, `R = ABOVE_ONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapQuote {
    /// What the trader receives: gross output minus the LP fee minus the maintainer fee.
    pub receive: U256,
    /// Maintainer fee, `mulFloor(gross, mtRate)`, sent to `_MAINTAINER_`.
    pub mt_fee: U256,
    /// LP fee, `mulFloor(gross, lpRate)`, left in the pool.
    pub lp_fee: U256,
    /// R state after the trade (third value of the DSP query).
    pub new_r: RState,
    /// Adjusted `B0` for a base sale, adjusted `Q0` for a quote sale (fourth value of the DSP
    /// query). A DSP swap stores it, with `new_r`, only when R changes.
    pub new_target: U256,
}

impl SwapQuote {
    /// Gross output before fees: `receive + lp_fee + mt_fee`.
    pub fn gross(&self) -> U256 {
        // Saturating: a quote built by hand need not be a split of one U256.
        self.receive
            .saturating_add(self.lp_fee)
            .saturating_add(self.mt_fee)
    }
}

/// Gross output of selling `pay_base` base (PMMPricing `sellBaseToken`) on an already
/// adjusted state, with the R state after the trade.
///
/// | R | condition | output | new R |
/// |---|---|---|---|
/// | ONE | | `S(Q0, Q0, a, i, K)` | BELOW_ONE |
/// | BELOW_ONE | | `S(Q0, Q, a, i, K)` | BELOW_ONE |
/// | ABOVE_ONE | `a < B0 - B` | `min(G(B0, B + a, B, i, K), Q - Q0)` | ABOVE_ONE |
/// | ABOVE_ONE | `a = B0 - B` | `Q - Q0` | ONE |
/// | ABOVE_ONE | `a > B0 - B` | `(Q - Q0) + S(Q0, Q0, a - (B0 - B), i, K)` | BELOW_ONE |
pub fn sell_base_gross(
    generation: Generation,
    s: &PmmState,
    pay_base: U256,
) -> Result<(U256, RState), MathError> {
    let g = generation;
    match s.r {
        RState::One => Ok((
            solve_quadratic_for_trade(g, s.q0, s.q0, pay_base, s.i, s.k)?,
            RState::BelowOne,
        )),
        RState::AboveOne => {
            let back_to_one_pay = sub(s.b0, s.b)?;
            let back_to_one_receive = sub(s.q, s.q0)?;
            if pay_base < back_to_one_pay {
                let out = general_integrate(s.b0, add(s.b, pay_base)?, s.b, s.i, s.k)?;
                Ok((out.min(back_to_one_receive), RState::AboveOne))
            } else if pay_base == back_to_one_pay {
                Ok((back_to_one_receive, RState::One))
            } else {
                let rest =
                    solve_quadratic_for_trade(g, s.q0, s.q0, pay_base - back_to_one_pay, s.i, s.k)?;
                Ok((add(back_to_one_receive, rest)?, RState::BelowOne))
            }
        }
        RState::BelowOne => Ok((
            solve_quadratic_for_trade(g, s.q0, s.q, pay_base, s.i, s.k)?,
            RState::BelowOne,
        )),
    }
}

/// Gross output of selling `pay_quote` quote (PMMPricing `sellQuoteToken`) on an already
/// adjusted state: the mirror of [`sell_base_gross`] with `i' = reciprocalFloor(i)`.
///
/// | R | condition | output | new R |
/// |---|---|---|---|
/// | ONE | | `S(B0, B0, a, i', K)` | ABOVE_ONE |
/// | ABOVE_ONE | | `S(B0, B, a, i', K)` | ABOVE_ONE |
/// | BELOW_ONE | `a < Q0 - Q` | `min(G(Q0, Q + a, Q, i', K), B - B0)` | BELOW_ONE |
/// | BELOW_ONE | `a = Q0 - Q` | `B - B0` | ONE |
/// | BELOW_ONE | `a > Q0 - Q` | `(B - B0) + S(B0, B0, a - (Q0 - Q), i', K)` | ABOVE_ONE |
pub fn sell_quote_gross(
    generation: Generation,
    s: &PmmState,
    pay_quote: U256,
) -> Result<(U256, RState), MathError> {
    let g = generation;
    match s.r {
        RState::One => {
            let inv = reciprocal_floor(s.i)?;
            Ok((
                solve_quadratic_for_trade(g, s.b0, s.b0, pay_quote, inv, s.k)?,
                RState::AboveOne,
            ))
        }
        RState::AboveOne => {
            let inv = reciprocal_floor(s.i)?;
            Ok((
                solve_quadratic_for_trade(g, s.b0, s.b, pay_quote, inv, s.k)?,
                RState::AboveOne,
            ))
        }
        RState::BelowOne => {
            let back_to_one_pay = sub(s.q0, s.q)?;
            let back_to_one_receive = sub(s.b, s.b0)?;
            if pay_quote < back_to_one_pay {
                let q_after = add(s.q, pay_quote)?;
                let inv = reciprocal_floor(s.i)?;
                let out = general_integrate(s.q0, q_after, s.q, inv, s.k)?;
                Ok((out.min(back_to_one_receive), RState::BelowOne))
            } else if pay_quote == back_to_one_pay {
                Ok((back_to_one_receive, RState::One))
            } else {
                let inv = reciprocal_floor(s.i)?;
                let rest = solve_quadratic_for_trade(
                    g,
                    s.b0,
                    s.b0,
                    pay_quote - back_to_one_pay,
                    inv,
                    s.k,
                )?;
                Ok((add(back_to_one_receive, rest)?, RState::AboveOne))
            }
        }
    }
}

/// Splits a gross output into `(receive, mt_fee, lp_fee)`:
/// `mt = mulFloor(x, mtRate)`, `lp = mulFloor(x, lpRate)`, `receive = x - lp - mt`
/// ("SUB_ERROR" when the two rates add up to more than the output).
pub fn apply_fees(gross: U256, fees: FeeRates) -> Result<(U256, U256, U256), MathError> {
    let mt_fee = mul_floor(gross, fees.mt)?;
    let lp_fee = mul_floor(gross, fees.lp)?;
    let receive = sub(sub(gross, lp_fee)?, mt_fee)?;
    Ok((receive, mt_fee, lp_fee))
}

/// `querySellBase(trader, pay_base)`: adjusts the target, prices the sale, takes the fees.
///
/// `fees` are the trader's rates from `getUserFeeRate(trader)` (the query prices the
/// `trader` argument; a swap prices `tx.origin`). On a DVM (`Q0 = 0`) any sale past
/// `B0 - B` fails with "TARGET_IS_ZERO".
pub fn query_sell_base(
    generation: Generation,
    state: &PmmState,
    pay_base: U256,
    fees: FeeRates,
) -> Result<SwapQuote, MathError> {
    let adjusted = adjusted_target(generation, state)?;
    net_of_fees(
        sell_base_gross(generation, &adjusted, pay_base)?,
        fees,
        adjusted.b0,
    )
}

/// `querySellQuote(trader, pay_quote)`: the mirror of [`query_sell_base`]; `new_target` is
/// the adjusted `Q0`.
pub fn query_sell_quote(
    generation: Generation,
    state: &PmmState,
    pay_quote: U256,
    fees: FeeRates,
) -> Result<SwapQuote, MathError> {
    let adjusted = adjusted_target(generation, state)?;
    net_of_fees(
        sell_quote_gross(generation, &adjusted, pay_quote)?,
        fees,
        adjusted.q0,
    )
}

/// The quote for a priced sale `(gross, new_r)`: fees taken, `new_target` as given.
fn net_of_fees(
    (gross, new_r): (U256, RState),
    fees: FeeRates,
    new_target: U256,
) -> Result<SwapQuote, MathError> {
    let (receive, mt_fee, lp_fee) = apply_fees(gross, fees)?;
    Ok(SwapQuote {
        receive,
        mt_fee,
        lp_fee,
        new_r,
        new_target,
    })
}

/// The state `sellBase` leaves when exactly `pay_base` was transferred in and `quote` is its
/// quote: reserves become `B + pay_base` and `Q - receive - mt_fee` (the LP fee stays); a DSP
/// stores `new_r` and `B0 = new_target` only when R changes, a DVM stores no targets.
///
/// Fails with "SUB_ERROR" if the payout exceeds the quote reserve (on chain the token transfer
/// fails), and "OVERFLOW" if a stored target or a reserve no longer fits 112 bits.
pub fn apply_sell_base(
    kind: PoolKind,
    state: &PmmState,
    pay_base: U256,
    quote: &SwapQuote,
) -> Result<PmmState, MathError> {
    let b = add(state.b, pay_base)?;
    let q = sub(sub(state.q, quote.receive)?, quote.mt_fee)?;
    state_after_swap(kind, state, b, q, quote, |s| &mut s.b0)
}

/// The state `sellQuote` leaves: the mirror of [`apply_sell_base`] (a DSP stores
/// `Q0 = new_target` when R changes).
pub fn apply_sell_quote(
    kind: PoolKind,
    state: &PmmState,
    pay_quote: U256,
    quote: &SwapQuote,
) -> Result<PmmState, MathError> {
    let q = add(state.q, pay_quote)?;
    let b = sub(sub(state.b, quote.receive)?, quote.mt_fee)?;
    state_after_swap(kind, state, b, q, quote, |s| &mut s.q0)
}

/// The state a swap leaves with reserves `b` / `q`: a DVM stores no targets; a DSP stores
/// `quote.new_r` and `quote.new_target` into the sold side's target (`target`) only when R
/// changes, so a target that would not fit its `uint112` slot fails only then.
fn state_after_swap(
    kind: PoolKind,
    state: &PmmState,
    b: U256,
    q: U256,
    quote: &SwapQuote,
    target: fn(&mut PmmState) -> &mut U256,
) -> Result<PmmState, MathError> {
    check_reserves_fit(b, q)?;
    if kind == PoolKind::Dvm {
        return Ok(PmmState::dvm(state.i, state.k, b, q));
    }
    let mut next = PmmState { b, q, ..*state };
    if quote.new_r != state.r {
        if quote.new_target > UINT112_MAX {
            return Err(MathError::ReserveOverflow);
        }
        next.r = quote.new_r;
        *target(&mut next) = quote.new_target;
    }
    Ok(next)
}
