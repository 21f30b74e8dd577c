//! LP share math of DVM and DSP pools: `buyShares` and `sellShares`.
//!
//! Inputs are what the pool reads on chain: its token balances (after the depositor's
//! transfer), its stored reserves, its LP `totalSupply`, `_I_` and, for a DSP, the stored
//! targets `_BASE_TARGET_` / `_QUOTE_TARGET_` (not the adjusted targets of
//! `getPMMStateForCall`).

use super::fixed::{
    add, ceil_div, check_reserves_fit, div, div_floor, mul, mul_floor, sub, truncate_u112,
};
use super::{Generation, MathError, PoolKind, U256};

/// Shares minted to `address(0)` on a first deposit and locked forever.
pub const LOCKED_SHARES: U256 = U256::from_limbs([1001, 0, 0, 0]);

/// Smallest share count one `_mint` accepts is `MIN_MINT + 1`.
pub const MIN_MINT: U256 = U256::from_limbs([1000, 0, 0, 0]);

/// Share count a first deposit must exceed: the lock plus the smallest accepted mint.
pub const MIN_FIRST_SHARES: U256 = U256::from_limbs([2001, 0, 0, 0]);

/// What a pool's funding functions read from storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiquidityState {
    /// LP token `totalSupply()` (includes the 1001 locked shares).
    pub total_supply: U256,
    /// `_BASE_RESERVE_`.
    pub base_reserve: U256,
    /// `_QUOTE_RESERVE_`.
    pub quote_reserve: U256,
    /// `_I_`: used by the DSP first deposit only.
    pub i: U256,
    /// DSP `_BASE_TARGET_` (stored, unadjusted); ignored for a DVM.
    pub b0: U256,
    /// DSP `_QUOTE_TARGET_` (stored, unadjusted); ignored for a DVM.
    pub q0: U256,
}

/// The DSP regression targets a funding call stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// New `_BASE_TARGET_`.
    pub base: U256,
    /// New `_QUOTE_TARGET_`.
    pub quote: U256,
}

/// Outcome of `buyShares(to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyShares {
    /// Increase of `totalSupply`: the full share count, lock included.
    pub minted: U256,
    /// Shares credited to `to`, which `buyShares` returns: `minted - 1001` on a first deposit,
    /// `minted` otherwise.
    pub received: U256,
    /// Shares locked to `address(0)`: 1001 on a first deposit, else 0.
    pub locked: U256,
    /// `baseBalance - baseReserve`.
    pub base_input: U256,
    /// `quoteBalance - quoteReserve`.
    pub quote_input: U256,
    /// `totalSupply` afterwards.
    pub new_total_supply: U256,
    /// New targets of a DSP; `None` for a DVM (it stores none).
    pub targets: Option<Targets>,
    /// Base the depositor gives to all LPs beyond the proportional contribution (see below).
    ///
    /// Normal case (both reserves > 0): `base_input - mulFloor(base_reserve, ratio)` where
    /// `ratio = min(divFloor(base_input, base_reserve), divFloor(quote_input, quote_reserve))`
    /// is the mint ratio; on the side that sets the ratio only rounding dust is left.
    /// DVM base-only case (quote reserve 0): 0, every base unit counts.
    /// First deposit: 0, there is no other LP to donate to.
    pub donated_base: U256,
    /// Quote given to all LPs beyond the proportional contribution: in the normal case
    /// `quote_input - mulFloor(quote_reserve, ratio)`; in the DVM base-only case the whole
    /// `quote_input` (it mints nothing); 0 on a first deposit.
    pub donated_quote: U256,
}

/// Outcome of `sellShares(share_amount, ...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellShares {
    /// `floor(base_balance * share_amount / total_supply)` paid out.
    pub base_amount: U256,
    /// `floor(quote_balance * share_amount / total_supply)` paid out.
    pub quote_amount: U256,
    /// `totalSupply` afterwards.
    pub new_total_supply: U256,
    /// Reserves after the sync: the balances minus the payouts.
    pub new_base_reserve: U256,
    /// Quote reserve after the sync.
    pub new_quote_reserve: U256,
    /// New targets of a DSP, each lowered by `ceil(target * share / total_supply)`;
    /// `None` for a DVM.
    pub targets: Option<Targets>,
}

impl SellShares {
    /// The slippage check `sellShares` runs with `baseMinAmount` / `quoteMinAmount`
    /// ("WITHDRAW_NOT_ENOUGH").
    pub fn check_min(&self, base_min: U256, quote_min: U256) -> Result<(), MathError> {
        if self.base_amount >= base_min && self.quote_amount >= quote_min {
            Ok(())
        } else {
            Err(MathError::WithdrawNotEnough)
        }
    }
}

fn mint_floor_error(kind: PoolKind) -> MathError {
    match kind {
        PoolKind::Dvm => MathError::MintInvalid,
        PoolKind::Dsp => MathError::MintAmountNotEnough,
    }
}

/// `buyShares(to)` of a DVM or DSP after the depositor transferred tokens in, given the
/// pool's balances at that point.
///
/// Cases, in the contracts' order of checks:
/// - "SUB_ERROR" if a balance is below its reserve; "NO_BASE_INPUT" when no base came in.
/// - First deposit (`total_supply = 0`) of the 2024 templates, 1001 shares locked,
///   `received = minted - 1001`:
///   - DVM: `minted = base_balance`, which must exceed 2001 ("MINT_AMOUNT_NOT_ENOUGH", the
///     check the DSP runs; the spec names no string for this DVM case and the project's
///     fixture DVM uses this one).
///   - DSP: needs `quote_balance > 0` ("ZERO_QUOTE_AMOUNT");
///     `minted = divFloor(quote_balance, i)` if `quote_balance < mulFloor(base_balance, i)`
///     else `base_balance`; `B0 = minted`, `Q0 = mulFloor(minted, i)` (stored as `uint112`);
///     `minted > 2001` ("MINT_AMOUNT_NOT_ENOUGH"), then `Q0 > 0` ("QUOTE_TARGET_IS_ZERO").
/// - First deposit of the 2021 templates: no lock, `received = minted`:
///   - DVM: `base_balance >= 1000` ("INSUFFICIENT_LIQUIDITY_MINED"), `minted = base_balance`.
///   - DSP: the same shares and targets as 2024, without the quote, floor and target checks.
/// - DVM with base reserve > 0 and quote reserve 0:
///   `minted = floor(base_input * total_supply / base_reserve)`.
/// - Both reserves > 0: `ratio = min(divFloor(base_input, base_reserve),
///   divFloor(quote_input, quote_reserve))`, `minted = mulFloor(total_supply, ratio)`; a DSP
///   raises each target by `mulFloor(target, ratio)`.
/// - Otherwise `minted = 0`.
///
/// Every mint of 1000 shares or fewer fails ("MINT_INVALID" on a DVM,
/// "MINT_AMOUNT_NOT_ENOUGH" on a DSP). Reserves then become the balances ("OVERFLOW" above
/// 2^112 - 1).
pub fn buy_shares(
    kind: PoolKind,
    generation: Generation,
    state: &LiquidityState,
    base_balance: U256,
    quote_balance: U256,
) -> Result<BuyShares, MathError> {
    let base_input = sub(base_balance, state.base_reserve)?;
    let quote_input = sub(quote_balance, state.quote_reserve)?;
    if base_input.is_zero() {
        return Err(MathError::NoBaseInput);
    }

    let mut targets = None;
    let mut donated_base = U256::ZERO;
    let mut donated_quote = U256::ZERO;
    let (minted, locked) = if state.total_supply.is_zero() {
        let (minted, first_targets) =
            first_deposit(kind, generation, state.i, base_balance, quote_balance)?;
        targets = first_targets;
        let locked = match generation {
            Generation::V2021 => U256::ZERO,
            Generation::V2024 => LOCKED_SHARES,
        };
        (minted, locked)
    } else if kind == PoolKind::Dvm
        && !state.base_reserve.is_zero()
        && state.quote_reserve.is_zero()
    {
        donated_quote = quote_input;
        let minted = div(mul(base_input, state.total_supply)?, state.base_reserve)?;
        (minted, U256::ZERO)
    } else if !state.base_reserve.is_zero() && !state.quote_reserve.is_zero() {
        let base_ratio = div_floor(base_input, state.base_reserve)?;
        let quote_ratio = div_floor(quote_input, state.quote_reserve)?;
        let ratio = base_ratio.min(quote_ratio);
        let minted = mul_floor(state.total_supply, ratio)?;
        if kind == PoolKind::Dsp {
            targets = Some(Targets {
                base: truncate_u112(add(state.b0, mul_floor(state.b0, ratio)?)?),
                quote: truncate_u112(add(state.q0, mul_floor(state.q0, ratio)?)?),
            });
        }
        // floor(reserve * floor(input * 1e18 / reserve) / 1e18) <= input, so these hold.
        donated_base = base_input - mul_floor(state.base_reserve, ratio)?;
        donated_quote = quote_input - mul_floor(state.quote_reserve, ratio)?;
        (minted, U256::ZERO)
    } else {
        (U256::ZERO, U256::ZERO)
    };

    // The 2024 lock is minted first; minted > 2001 keeps the rest above 1000.
    let received = sub(minted, locked)?;
    if received <= MIN_MINT {
        return Err(mint_floor_error(kind));
    }
    let new_total_supply = add(state.total_supply, minted)?;
    check_reserves_fit(base_balance, quote_balance)?;

    Ok(BuyShares {
        minted,
        received,
        locked,
        base_input,
        quote_input,
        new_total_supply,
        targets,
        donated_base,
        donated_quote,
    })
}

/// The full share count of a first deposit (lock included) and, for a DSP, the targets it
/// stores; see [`buy_shares`] for the cases and their reverts.
fn first_deposit(
    kind: PoolKind,
    generation: Generation,
    i: U256,
    base_balance: U256,
    quote_balance: U256,
) -> Result<(U256, Option<Targets>), MathError> {
    let strict = generation == Generation::V2024;
    if kind == PoolKind::Dvm {
        if strict && base_balance <= MIN_FIRST_SHARES {
            return Err(MathError::MintAmountNotEnough);
        }
        if !strict && base_balance < MIN_MINT {
            return Err(MathError::InsufficientLiquidityMined);
        }
        return Ok((base_balance, None));
    }
    if strict && quote_balance.is_zero() {
        return Err(MathError::ZeroQuoteAmount);
    }
    let minted = if quote_balance < mul_floor(base_balance, i)? {
        div_floor(quote_balance, i)?
    } else {
        base_balance
    };
    // The contract casts both targets to uint112 before checking them.
    let base_target = truncate_u112(minted);
    let quote_target = truncate_u112(mul_floor(minted, i)?);
    // DSP checks the share floor before the quote target (GSP, another contract, the reverse).
    if strict && minted <= MIN_FIRST_SHARES {
        return Err(MathError::MintAmountNotEnough);
    }
    if strict && quote_target.is_zero() {
        return Err(MathError::QuoteTargetIsZero);
    }
    Ok((
        minted,
        Some(Targets {
            base: base_target,
            quote: quote_target,
        }),
    ))
}

/// `sellShares(share_amount, to, baseMin, quoteMin, data, deadline)` by a holder of
/// `holder_shares`, given the pool's balances and the supply before the burn.
///
/// Fails with "DLP_NOT_ENOUGH" when `share_amount > holder_shares`, "DIVIDING_ERROR" on an
/// empty supply, "MUL_ERROR" / "SUB_ERROR" as the contract would, and "OVERFLOW" when a
/// synced reserve exceeds 2^112 - 1. The deadline, `to != pool` and min-amount checks are the
/// caller's ([`SellShares::check_min`] gives the last).
pub fn sell_shares(
    kind: PoolKind,
    state: &LiquidityState,
    base_balance: U256,
    quote_balance: U256,
    share_amount: U256,
    holder_shares: U256,
) -> Result<SellShares, MathError> {
    if share_amount > holder_shares {
        return Err(MathError::DlpNotEnough);
    }
    let total = state.total_supply;
    let base_amount = div(mul(base_balance, share_amount)?, total)?;
    let quote_amount = div(mul(quote_balance, share_amount)?, total)?;
    let targets = match kind {
        PoolKind::Dvm => None,
        PoolKind::Dsp => Some(Targets {
            base: sub(state.b0, ceil_div(mul(state.b0, share_amount)?, total)?)?,
            quote: sub(state.q0, ceil_div(mul(state.q0, share_amount)?, total)?)?,
        }),
    };
    let new_total_supply = sub(total, share_amount)?;
    let new_base_reserve = sub(base_balance, base_amount)?;
    let new_quote_reserve = sub(quote_balance, quote_amount)?;
    check_reserves_fit(new_base_reserve, new_quote_reserve)?;
    Ok(SellShares {
        base_amount,
        quote_amount,
        new_total_supply,
        new_base_reserve,
        new_quote_reserve,
        targets,
    })
}
