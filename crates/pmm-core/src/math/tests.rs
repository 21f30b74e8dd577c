//! Pool-level tests: hand-checked quotes for every row of the R state table, share math for
//! DVM and DSP, every revert, reference vectors, and deterministic property checks.

use super::fixed::{UINT112_MAX, mul_floor};
use super::shares::LOCKED_SHARES;
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

fn no_fees() -> FeeRates {
    FeeRates::default()
}

/// A DSP at equilibrium: price 2 quote per base, K = 0.5, 100 base / 200 quote.
fn dsp_one() -> PmmState {
    PmmState {
        i: e18(2),
        k: u(E18 / 2),
        b: e18(100),
        q: e18(200),
        b0: e18(100),
        q0: e18(200),
        r: RState::One,
    }
}

/// `dsp_one` after a trader sold 10 base (R = BELOW_ONE).
fn dsp_below() -> PmmState {
    PmmState {
        b: e18(110),
        q: e18(200) - u(19_002_487_577_582_194_596),
        r: RState::BelowOne,
        ..dsp_one()
    }
}

/// `dsp_one` after a trader sold 20 quote (R = ABOVE_ONE).
fn dsp_above() -> PmmState {
    PmmState {
        b: e18(100) - u(9_501_243_788_791_097_298),
        q: e18(220),
        r: RState::AboveOne,
        ..dsp_one()
    }
}

// ---------------------------------------------------------------- mid price and targets

#[test]
fn mid_price_at_equilibrium_is_i() {
    assert_eq!(mid_price(G24, &dsp_one()), Ok(e18(2)));
}

#[test]
fn adjusted_targets_and_mid_prices_off_equilibrium() {
    let below = adjusted_target(G24, &dsp_below()).unwrap();
    assert_eq!(below.q0, u(199_999_999_999_999_999_995));
    assert_eq!(below.b0, e18(100));
    assert_eq!(
        mid_price(G24, &dsp_below()),
        Ok(u(1_800_992_561_958_002_174))
    );

    let above = adjusted_target(G24, &dsp_above()).unwrap();
    assert_eq!(above.b0, u(99_999_999_999_999_999_997));
    assert_eq!(above.q0, e18(200));
    assert_eq!(
        mid_price(G24, &dsp_above()),
        Ok(u(2_220_997_512_422_417_804))
    );

    // Idempotent, so a state already adjusted by getPMMStateForCall can be passed back in.
    assert_eq!(adjusted_target(G24, &below), Ok(below));
    assert_eq!(adjusted_target(G24, &above), Ok(above));
    assert_eq!(adjusted_target(G24, &dsp_one()), Ok(dsp_one()));
}

#[test]
fn adjusted_target_reverts_on_wrong_side_states() {
    // ABOVE_ONE with Q below Q0 (needs correctRState): Q - Q0 underflows.
    let bad = PmmState {
        q: e18(199),
        ..dsp_above()
    };
    assert_eq!(adjusted_target(G24, &bad), Err(MathError::Underflow));
    assert_eq!(mid_price(G24, &bad), Err(MathError::Underflow));
    assert_eq!(
        query_sell_base(G24, &bad, e18(1), no_fees()),
        Err(MathError::Underflow)
    );
    let bad = PmmState {
        b: e18(99),
        ..dsp_below()
    };
    assert_eq!(adjusted_target(G24, &bad), Err(MathError::Underflow));
    // i = 0 above one: reciprocalFloor divides by zero.
    let zero_i = PmmState {
        i: u(0),
        ..dsp_above()
    };
    assert_eq!(
        adjusted_target(G24, &zero_i),
        Err(MathError::DivisionByZero)
    );
}

#[test]
fn dvm_state_and_mid_price() {
    // Balanced-looking DVM: B = 100, Q = 200, i = 2, K = 0.5.
    let dvm = PmmState::dvm(e18(2), u(E18 / 2), e18(100), e18(200));
    let adjusted = adjusted_target(G24, &dvm).unwrap();
    assert_eq!(adjusted.q0, u(0));
    assert_eq!(adjusted.r, RState::AboveOne);
    // B0 = T(100, 200, 0.5, 0.5) = 100 * (1 + (sqrt(1 + 4*0.5*0.5*200/100) - 1) / 1) = 100 * sqrt(3)
    assert_eq!(adjusted.b0, u(173_205_080_756_887_729_300));
    // Its mid price is not i: 2 * (0.5 + 0.5 * 3) = 4 (rounded down).
    assert_eq!(mid_price(G24, &dvm), Ok(u(3_999_999_999_999_999_998)));
    // The state getPMMStateForCall reports gives the same answers.
    assert_eq!(mid_price(G24, &adjusted), mid_price(G24, &dvm));
    // An empty DVM has no mid price.
    assert_eq!(
        mid_price(G24, &PmmState::dvm(e18(2), u(E18 / 2), u(0), u(0))),
        Err(MathError::DivisionByZero)
    );
}

#[test]
fn dvm_without_quote_cannot_sell_base() {
    // Q = 0: B0 = B, so any base sale goes past B0 - B = 0 into S with Q0 = 0.
    let dvm = PmmState::dvm(e18(1), u(E18 / 10), e18(50), u(0));
    assert_eq!(adjusted_target(G24, &dvm).unwrap().b0, e18(50));
    assert_eq!(
        query_sell_base(G24, &dvm, u(1), no_fees()),
        Err(MathError::TargetIsZero)
    );
    // Selling nothing lands exactly on B0 - B: zero output, R would become ONE.
    let q = query_sell_base(G24, &dvm, u(0), no_fees()).unwrap();
    assert_eq!((q.receive, q.new_r), (u(0), RState::One));
    // Selling quote into it works.
    let q = query_sell_quote(G24, &dvm, e18(1), no_fees()).unwrap();
    assert!(q.receive > u(0) && q.receive < e18(50));
}

#[test]
fn dvm_sale_past_target_reverts_even_with_quote() {
    let dvm = PmmState::dvm(e18(1), u(E18 / 2), e18(100), e18(10));
    let b0 = adjusted_target(G24, &dvm).unwrap().b0;
    let gap = b0 - e18(100);
    assert!(query_sell_base(G24, &dvm, gap - u(1), no_fees()).is_ok());
    let exact = query_sell_base(G24, &dvm, gap, no_fees()).unwrap();
    assert_eq!((exact.receive, exact.new_r), (e18(10), RState::One));
    assert_eq!(
        query_sell_base(G24, &dvm, gap + u(1), no_fees()),
        Err(MathError::TargetIsZero)
    );
}

// ---------------------------------------------------------------- sell base table

#[test]
fn sell_base_r_one() {
    let q = query_sell_base(G24, &dsp_one(), e18(10), no_fees()).unwrap();
    assert_eq!(q.receive, u(19_002_487_577_582_194_596));
    assert_eq!(q.new_r, RState::BelowOne);
    assert_eq!(q.new_target, e18(100));
    assert_eq!((q.mt_fee, q.lp_fee), (u(0), u(0)));
}

#[test]
fn sell_base_r_below_one() {
    let q = query_sell_base(G24, &dsp_below(), e18(5), no_fees()).unwrap();
    assert_eq!(q.receive, u(8_760_028_260_850_961_525));
    assert_eq!(q.new_r, RState::BelowOne);
    assert_eq!(q.new_target, e18(100));
}

#[test]
fn sell_base_r_above_one_rows() {
    let s = dsp_above();
    let back_to_one = u(9_501_243_788_791_097_295);
    // a < B0 - B: G, R stays ABOVE_ONE.
    let q = query_sell_base(G24, &s, e18(1), no_fees()).unwrap();
    assert_eq!(q.receive, u(2_207_653_095_919_050_718));
    assert_eq!(q.new_r, RState::AboveOne);
    assert_eq!(q.new_target, u(99_999_999_999_999_999_997));
    // a = B0 - B: exactly Q - Q0, R = ONE.
    let q = query_sell_base(G24, &s, back_to_one, no_fees()).unwrap();
    assert_eq!(q.receive, e18(20));
    assert_eq!(q.new_r, RState::One);
    // a > B0 - B: crosses from ABOVE_ONE to BELOW_ONE.
    let q = query_sell_base(G24, &s, back_to_one + e18(5), no_fees()).unwrap();
    assert_eq!(q.receive, u(29_750_156_054_992_142_724));
    assert_eq!(q.new_r, RState::BelowOne);
    assert_eq!(q.new_target, u(99_999_999_999_999_999_997));
}

#[test]
fn sell_base_above_one_is_capped_at_back_to_one_receive() {
    // K = 1 with a target far above B makes G exceed Q - Q0; the quote is capped.
    let s = PmmState {
        i: ONE,
        k: ONE,
        b: e18(10),
        q: e18(5),
        b0: e18(100),
        q0: e18(4),
        r: RState::AboveOne,
    };
    // Price the raw primitives on the state as given (no adjustment).
    let g = general_integrate(s.b0, s.b + e18(1), s.b, s.i, s.k).unwrap();
    assert!(g > e18(1));
    assert_eq!(
        sell_base_gross(G24, &s, e18(1)),
        Ok((e18(1), RState::AboveOne))
    );
}

// ---------------------------------------------------------------- sell quote table

#[test]
fn sell_quote_r_one() {
    let q = query_sell_quote(G24, &dsp_one(), e18(20), no_fees()).unwrap();
    assert_eq!(q.receive, u(9_501_243_788_791_097_298));
    assert_eq!(q.new_r, RState::AboveOne);
    assert_eq!(q.new_target, e18(200));
}

#[test]
fn sell_quote_r_above_one() {
    let q = query_sell_quote(G24, &dsp_above(), e18(10), no_fees()).unwrap();
    assert_eq!(q.receive, u(4_380_014_130_425_480_763));
    assert_eq!(q.new_r, RState::AboveOne);
    assert_eq!(q.new_target, e18(200));
}

#[test]
fn sell_quote_r_below_one_rows() {
    let s = dsp_below();
    let back_to_one = u(19_002_487_577_582_194_591);
    let q = query_sell_quote(G24, &s, e18(1), no_fees()).unwrap();
    assert_eq!(q.receive, u(553_572_160_796_188_056));
    assert_eq!(q.new_r, RState::BelowOne);
    assert_eq!(q.new_target, u(199_999_999_999_999_999_995));
    let q = query_sell_quote(G24, &s, back_to_one, no_fees()).unwrap();
    assert_eq!((q.receive, q.new_r), (e18(10), RState::One));
    let q = query_sell_quote(G24, &s, back_to_one + e18(10), no_fees()).unwrap();
    assert_eq!(q.receive, u(14_875_078_027_496_071_362));
    assert_eq!(q.new_r, RState::AboveOne);
}

// ---------------------------------------------------------------- fees and swap state

#[test]
fn fees_are_floored_and_net() {
    let fees = FeeRates {
        lp: u(3 * E18 / 1000),
        mt: u(E18 / 1000),
    };
    let s = dsp_above();
    let q = query_sell_base(G24, &s, u(9_501_243_788_791_097_295) + e18(5), fees).unwrap();
    assert_eq!(q.receive, u(29_631_155_430_772_174_154));
    assert_eq!(q.mt_fee, u(29_750_156_054_992_142));
    assert_eq!(q.lp_fee, u(89_250_468_164_976_428));
    assert_eq!(q.gross(), u(29_750_156_054_992_142_724));
    // Rates adding up to more than 100 % revert.
    let greedy = FeeRates {
        lp: u(6 * E18 / 10),
        mt: u(6 * E18 / 10),
    };
    assert_eq!(
        query_sell_base(G24, &s, e18(1), greedy),
        Err(MathError::Underflow)
    );
    // 0.3 % of 999 is 2.997 and 0.1 % is 0.999: both floored.
    assert_eq!(apply_fees(u(999), fees), Ok((u(997), u(0), u(2))));
}

#[test]
fn swap_state_after_trades() {
    let fees = FeeRates {
        lp: u(E18 / 100),
        mt: u(E18 / 200),
    };
    let s = dsp_above();
    let pay = u(9_501_243_788_791_097_295) + e18(5);
    let q = query_sell_base(G24, &s, pay, fees).unwrap();
    let next = apply_sell_base(PoolKind::Dsp, &s, pay, &q).unwrap();
    assert_eq!(next.b, s.b + pay);
    assert_eq!(next.q, s.q - q.receive - q.mt_fee);
    assert_eq!(next.r, RState::BelowOne);
    assert_eq!(next.b0, q.new_target);
    assert_eq!(next.q0, s.q0);
    // No R change: targets untouched.
    let q = query_sell_quote(G24, &s, e18(1), fees).unwrap();
    let next = apply_sell_quote(PoolKind::Dsp, &s, e18(1), &q).unwrap();
    assert_eq!((next.r, next.b0, next.q0), (s.r, s.b0, s.q0));
    // A DVM stays a DVM.
    let dvm = PmmState::dvm(e18(1), u(E18 / 2), e18(100), e18(100));
    let q = query_sell_quote(G24, &dvm, e18(1), fees).unwrap();
    let next = apply_sell_quote(PoolKind::Dvm, &dvm, e18(1), &q).unwrap();
    assert_eq!((next.b0, next.q0, next.r), (u(0), u(0), RState::AboveOne));
    // A DSP stores the new target only when R changes, and only if it fits 112 bits.
    let crossing = SwapQuote {
        receive: e18(1),
        mt_fee: u(0),
        lp_fee: u(0),
        new_r: RState::One,
        new_target: UINT112_MAX + u(1),
    };
    assert_eq!(
        apply_sell_base(PoolKind::Dsp, &s, e18(1), &crossing),
        Err(MathError::ReserveOverflow)
    );
    let staying = SwapQuote {
        new_r: s.r,
        ..crossing
    };
    assert_eq!(
        apply_sell_base(PoolKind::Dsp, &s, e18(1), &staying).map(|n| n.b0),
        Ok(s.b0)
    );
    // Reserves above 2^112 - 1 revert "OVERFLOW".
    let big = PmmState {
        b: UINT112_MAX,
        ..dvm
    };
    let q = query_sell_base(G24, &big, u(1), fees).unwrap();
    assert_eq!(
        apply_sell_base(PoolKind::Dvm, &big, u(1), &q),
        Err(MathError::ReserveOverflow)
    );
}

#[test]
fn dsp_quote_sale_crossing_r_stores_the_quote_target() {
    let s = dsp_below();
    let pay = u(19_002_487_577_582_194_591) + e18(10);
    let q = query_sell_quote(G24, &s, pay, no_fees()).unwrap();
    assert_eq!(q.new_r, RState::AboveOne);
    let next = apply_sell_quote(PoolKind::Dsp, &s, pay, &q).unwrap();
    assert_eq!((next.b, next.q), (s.b - q.receive, s.q + pay));
    assert_eq!(
        (next.r, next.b0, next.q0),
        (RState::AboveOne, s.b0, q.new_target)
    );
}

#[test]
fn solver_reverts_surface_in_quotes() {
    // K = 1 wei on an 18-decimal base / 6-decimal quote pool at 1:1 (i = 1e6).
    let s = PmmState {
        i: u(1_000_000),
        k: u(1),
        b: e18(100),
        q: u(100_000_000),
        b0: e18(100),
        q0: u(100_000_000),
        r: RState::One,
    };
    assert_eq!(
        query_sell_base(G24, &s, e18(99), no_fees()).map(|q| q.receive),
        Ok(u(99_000_000))
    );
    assert_eq!(
        query_sell_base(G24, &s, e18(100), no_fees()),
        Err(MathError::RootIsZero)
    );
}

#[test]
fn error_reasons_are_distinct_and_named() {
    let all = [
        MathError::MulOverflow,
        MathError::AddOverflow,
        MathError::Underflow,
        MathError::DivisionByZero,
        MathError::RootIsZero,
        MathError::TargetIsZero,
        MathError::MintInvalid,
        MathError::MintAmountNotEnough,
        MathError::ZeroQuoteAmount,
        MathError::QuoteTargetIsZero,
        MathError::NoBaseInput,
        MathError::DlpNotEnough,
        MathError::WithdrawNotEnough,
        MathError::ReserveOverflow,
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let reason = e.reason().expect("on-chain reason");
        assert!(seen.insert(reason), "duplicate reason {reason}");
        assert!(e.to_string().contains(&format!("\"{reason}\"")), "{e}");
    }
    assert_eq!(MathError::InvalidRState(7).reason(), None);
    assert_eq!(MathError::MulOverflow.solidity_panic_code(), Some(0x11));
    assert_eq!(MathError::Underflow.solidity_panic_code(), Some(0x11));
    assert_eq!(MathError::DivisionByZero.solidity_panic_code(), Some(0x12));
    assert_eq!(MathError::TargetIsZero.solidity_panic_code(), None);
    assert_eq!(RState::try_from(3), Err(MathError::InvalidRState(3)));
}

// ---------------------------------------------------------------- shares

fn liq(total: u128, base: U256, quote: U256, i: U256, b0: U256, q0: U256) -> LiquidityState {
    LiquidityState {
        total_supply: u(total),
        base_reserve: base,
        quote_reserve: quote,
        i,
        b0,
        q0,
    }
}

#[test]
fn dvm_first_deposit() {
    let empty = LiquidityState::default();
    let r = buy_shares(PoolKind::Dvm, G24, &empty, e18(10), e18(30)).unwrap();
    assert_eq!(r.minted, e18(10));
    assert_eq!(r.received, e18(10) - LOCKED_SHARES);
    assert_eq!(r.locked, LOCKED_SHARES);
    assert_eq!((r.base_input, r.quote_input), (e18(10), e18(30)));
    assert_eq!(r.new_total_supply, e18(10));
    assert_eq!(r.targets, None);
    assert_eq!((r.donated_base, r.donated_quote), (u(0), u(0)));
    // 2002 is the smallest first deposit.
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &empty, u(2002), u(0)).map(|r| r.received),
        Ok(u(1001))
    );
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &empty, u(2001), e18(1)),
        Err(MathError::MintAmountNotEnough)
    );
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &empty, u(0), e18(1)),
        Err(MathError::NoBaseInput)
    );
}

#[test]
fn dsp_first_deposit_both_branches() {
    let empty = liq(0, u(0), u(0), e18(2), u(0), u(0));
    // Quote short of base * i: shares = quote / i.
    let r = buy_shares(PoolKind::Dsp, G24, &empty, e18(10), e18(15)).unwrap();
    assert_eq!(r.minted, u(7_500_000_000_000_000_000));
    assert_eq!(r.received, r.minted - LOCKED_SHARES);
    assert_eq!(
        r.targets,
        Some(Targets {
            base: u(7_500_000_000_000_000_000),
            quote: e18(15)
        })
    );
    // Enough quote: shares = base.
    let r = buy_shares(PoolKind::Dsp, G24, &empty, e18(10), e18(25)).unwrap();
    assert_eq!(r.minted, e18(10));
    assert_eq!(
        r.targets,
        Some(Targets {
            base: e18(10),
            quote: e18(20)
        })
    );
    // quote == mulFloor(base, i) takes the base branch.
    let r = buy_shares(PoolKind::Dsp, G24, &empty, e18(10), e18(20)).unwrap();
    assert_eq!(r.minted, e18(10));
}

#[test]
fn dsp_first_deposit_reverts() {
    let empty = liq(0, u(0), u(0), e18(2), u(0), u(0));
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, e18(10), u(0)),
        Err(MathError::ZeroQuoteAmount)
    );
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, u(2001), e18(1)),
        Err(MathError::MintAmountNotEnough)
    );
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, u(2002), e18(1)).map(|r| r.received),
        Ok(u(1001))
    );
    // i = 1 wei: mulFloor(3000, 1) = 0, so shares = base and Q0 = mulFloor(3000, 1) = 0.
    let tiny_i = liq(0, u(0), u(0), u(1), u(0), u(0));
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &tiny_i, u(3000), u(1)),
        Err(MathError::QuoteTargetIsZero)
    );
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, u(0), u(5)),
        Err(MathError::NoBaseInput)
    );
    // Balances above 2^112 - 1 revert "OVERFLOW" when stored as reserves...
    let two_112 = UINT112_MAX + u(1);
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, two_112 + u(5), U256::MAX / u(4)),
        Err(MathError::ReserveOverflow)
    );
    // ...unless the uint112 cast of the quote target already wrapped to 0:
    // Q0 = uint112(2^113) = 0.
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &empty, two_112, U256::MAX / u(4)),
        Err(MathError::QuoteTargetIsZero)
    );
}

#[test]
fn dsp_first_deposit_checks_the_share_floor_before_the_quote_target() {
    // i = 1 wei, 2000 base: shares = 2000 (<= 2001) and Q0 = mulFloor(2000, 1) = 0; the
    // DSP names the share floor (GSP's order would name the target).
    let tiny_i = liq(0, u(0), u(0), u(1), u(0), u(0));
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &tiny_i, u(2000), u(1)),
        Err(MathError::MintAmountNotEnough)
    );
}

#[test]
fn first_deposits_of_the_2021_templates() {
    let empty = liq(0, u(0), u(0), e18(2), u(0), u(0));
    // DVM: no lock, everything to the depositor; 1000 passes the liquidity check and fails
    // the mint floor; 999 fails the liquidity check.
    let r = buy_shares(PoolKind::Dvm, G21, &empty, u(1001), u(0)).unwrap();
    assert_eq!((r.minted, r.received, r.locked), (u(1001), u(1001), u(0)));
    assert_eq!(
        buy_shares(PoolKind::Dvm, G21, &empty, u(1000), u(0)),
        Err(MathError::MintInvalid)
    );
    assert_eq!(
        buy_shares(PoolKind::Dvm, G21, &empty, u(999), e18(1)),
        Err(MathError::InsufficientLiquidityMined)
    );
    // DSP without quote: shares = divFloor(0, i) = 0, the mint floor names it.
    assert_eq!(
        buy_shares(PoolKind::Dsp, G21, &empty, e18(10), u(0)),
        Err(MathError::MintAmountNotEnough)
    );
    // A zero quote target is accepted, and so is a first deposit of 1001..=2001 shares.
    let tiny_i = liq(0, u(0), u(0), u(1), u(0), u(0));
    let r = buy_shares(PoolKind::Dsp, G21, &tiny_i, u(2000), u(1)).unwrap();
    assert_eq!((r.minted, r.received, r.locked), (u(2000), u(2000), u(0)));
    let t = r.targets.unwrap();
    assert_eq!((t.base, t.quote), (u(2000), u(0)));
    let r = buy_shares(PoolKind::Dsp, G21, &empty, e18(10), e18(15)).unwrap();
    assert_eq!(r.received, r.minted);
    assert_eq!(r.new_total_supply, r.minted);
}

#[test]
fn the_2021_target_solver_lets_a_zero_dvm_target_stand() {
    // k = 0, empty base side with quote: 2024 gives B0 = mulFloor(1/i, Q), 2021 gives 0.
    let dvm = PmmState::dvm(e18(2), u(0), u(0), e18(10));
    assert_eq!(adjusted_target(G24, &dvm).map(|s| s.b0), Ok(e18(5)));
    assert_eq!(adjusted_target(G21, &dvm).map(|s| s.b0), Ok(u(0)));
}

#[test]
fn normal_deposit_dvm_with_donation() {
    // Pool: 100 base, 300 quote, 100 shares. Deposit 10 base and 40 quote:
    // ratios 0.1 and 0.1333..., mint ratio 0.1, 10 shares; 10 quote is donated.
    let s = liq(100 * E18, e18(100), e18(300), e18(3), u(0), u(0));
    let r = buy_shares(PoolKind::Dvm, G24, &s, e18(110), e18(340)).unwrap();
    assert_eq!(r.minted, e18(10));
    assert_eq!(r.received, e18(10));
    assert_eq!(r.locked, u(0));
    assert_eq!(r.new_total_supply, e18(110));
    assert_eq!(r.donated_base, u(0));
    assert_eq!(r.donated_quote, e18(10));
    assert_eq!(r.targets, None);
}

#[test]
fn normal_deposit_dsp_updates_targets() {
    // 3 base and 10 quote into 70 / 140: base ratio floor(3e18 / 70) = 42857142857142857 is
    // below the quote ratio, so it sets the mint.
    let s = liq(70 * E18, e18(70), e18(140), e18(2), e18(60), e18(150));
    let r = buy_shares(PoolKind::Dsp, G24, &s, e18(73), e18(150)).unwrap();
    assert_eq!(r.minted, u(2_999_999_999_999_999_990));
    assert_eq!(r.received, r.minted);
    assert_eq!(
        r.targets,
        Some(Targets {
            base: u(62_571_428_571_428_571_420),
            quote: u(156_428_571_428_571_428_550),
        })
    );
    // Base sets the ratio: only rounding dust is donated on that side.
    assert_eq!(r.donated_base, u(10));
    assert_eq!(r.donated_quote, u(4_000_000_000_000_000_020));
}

#[test]
fn dvm_base_only_deposit() {
    // Quote reserve 0: shares = floor(base_in * supply / base_reserve); quote in is donated.
    let s = liq(3000, u(3000), u(0), ONE, u(0), u(0));
    let r = buy_shares(PoolKind::Dvm, G24, &s, u(4500), u(7)).unwrap();
    assert_eq!(r.minted, u(1500));
    assert_eq!(r.donated_quote, u(7));
    assert_eq!(r.donated_base, u(0));
    // A DSP has no such case: nothing is minted and the mint reverts.
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &s, u(4500), u(7)),
        Err(MathError::MintAmountNotEnough)
    );
    // 1000 shares is too few.
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &s, u(4000), u(0)),
        Err(MathError::MintInvalid)
    );
}

#[test]
fn deposit_reverts() {
    let s = liq(100 * E18, e18(100), e18(300), e18(3), u(0), u(0));
    // Balance below reserve: SUB_ERROR.
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &s, e18(99), e18(300)),
        Err(MathError::Underflow)
    );
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &s, e18(100), e18(400)),
        Err(MathError::NoBaseInput)
    );
    // No quote in: ratio 0, nothing minted.
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &s, e18(200), e18(300)),
        Err(MathError::MintInvalid)
    );
    // Supply but no reserves (everything withdrawn except rounding): nothing minted.
    let drained = liq(1001, u(0), u(0), e18(3), u(0), u(0));
    assert_eq!(
        buy_shares(PoolKind::Dvm, G24, &drained, e18(1), e18(1)),
        Err(MathError::MintInvalid)
    );
    assert_eq!(
        buy_shares(PoolKind::Dsp, G24, &drained, e18(1), e18(1)),
        Err(MathError::MintAmountNotEnough)
    );
}

#[test]
fn sell_shares_dvm_and_dsp() {
    let s = liq(300, u(1000), u(2000), e18(2), u(700), u(1900));
    let r = sell_shares(PoolKind::Dvm, &s, u(1000), u(2000), u(100), u(200)).unwrap();
    assert_eq!((r.base_amount, r.quote_amount), (u(333), u(666)));
    assert_eq!(r.new_total_supply, u(200));
    assert_eq!((r.new_base_reserve, r.new_quote_reserve), (u(667), u(1334)));
    assert_eq!(r.targets, None);
    let r = sell_shares(PoolKind::Dsp, &s, u(1000), u(2000), u(100), u(200)).unwrap();
    // Targets drop by ceil(700/3) = 234 and ceil(1900/3) = 634.
    assert_eq!(
        r.targets,
        Some(Targets {
            base: u(466),
            quote: u(1266)
        })
    );
    assert_eq!(r.check_min(u(333), u(666)), Ok(()));
    assert_eq!(r.check_min(u(334), u(0)), Err(MathError::WithdrawNotEnough));
    // Donated balances above the reserves are paid out pro rata.
    let r = sell_shares(PoolKind::Dvm, &s, u(1300), u(2000), u(300), u(300)).unwrap();
    assert_eq!((r.base_amount, r.new_total_supply), (u(1300), u(0)));
}

#[test]
fn sell_shares_reverts() {
    let s = liq(300, u(1000), u(2000), e18(2), u(700), u(1900));
    assert_eq!(
        sell_shares(PoolKind::Dsp, &s, u(1000), u(2000), u(201), u(200)),
        Err(MathError::DlpNotEnough)
    );
    let empty = LiquidityState::default();
    assert_eq!(
        sell_shares(PoolKind::Dvm, &empty, u(0), u(0), u(0), u(0)),
        Err(MathError::DivisionByZero)
    );
    assert_eq!(
        sell_shares(PoolKind::Dvm, &s, U256::MAX, u(2000), u(2), u(2)),
        Err(MathError::MulOverflow)
    );
    let big = liq(2, UINT112_MAX, u(0), ONE, u(0), u(0));
    assert_eq!(
        sell_shares(PoolKind::Dvm, &big, UINT112_MAX * u(2), u(0), u(0), u(0)),
        Err(MathError::ReserveOverflow)
    );
}

// ---------------------------------------------------------------- reference vectors

fn parse(token: &str) -> U256 {
    token.parse().expect("vector number")
}

fn check_outcome(
    line: &str,
    what: &str,
    got: Result<(U256, RState, U256), MathError>,
    want: &[&str],
) {
    if let Some(kind) = want[0].strip_prefix("E:") {
        let err = got.expect_err(&format!("{what} should revert ({kind}) in `{line}`"));
        let ok = match kind {
            "of" => matches!(err, MathError::MulOverflow | MathError::AddOverflow),
            "div0" => err == MathError::DivisionByZero,
            "sub" => err == MathError::Underflow,
            "TARGET_IS_ZERO" => err == MathError::TargetIsZero,
            "ZERO" => err == MathError::RootIsZero,
            other => panic!("unknown vector error {other}"),
        };
        assert!(ok, "{what}: expected {kind}, got {err:?} in `{line}`");
    } else {
        let (gross, r, target) = got.unwrap_or_else(|e| panic!("{what}: {e} in `{line}`"));
        let want_r = RState::try_from(want[1].parse::<u8>().expect("r")).expect("r");
        assert_eq!(
            (gross, r, target),
            (parse(want[0]), want_r, parse(want[2])),
            "{what} in `{line}`"
        );
    }
}

/// 300 states and amounts (DVMs, and DSPs walked through random trades) with their mid
/// price and gross quotes, computed by an independent big-integer model of the same formulas
/// (`testdata/gen_pmm_vectors.py`).
#[test]
fn reference_vectors() {
    let text = include_str!("testdata/pmm_vectors.txt");
    let mut count = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let t: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(t.len(), 15, "`{line}`");
        let state = PmmState {
            i: parse(t[0]),
            k: parse(t[1]),
            b: parse(t[2]),
            q: parse(t[3]),
            b0: parse(t[4]),
            q0: parse(t[5]),
            r: RState::try_from(t[6].parse::<u8>().expect("r")).expect("r"),
        };
        let amount = parse(t[7]);
        let mid = mid_price(G24, &state);
        match t[8].strip_prefix("E:") {
            Some(_) => check_outcome(
                line,
                "mid",
                mid.map(|m| (m, RState::One, U256::ZERO)),
                &[t[8]],
            ),
            None => assert_eq!(mid, Ok(parse(t[8])), "mid in `{line}`"),
        }
        let sb = query_sell_base(G24, &state, amount, no_fees())
            .map(|q| (q.receive, q.new_r, q.new_target));
        check_outcome(line, "sell base", sb, &t[9..12]);
        let sq = query_sell_quote(G24, &state, amount, no_fees())
            .map(|q| (q.receive, q.new_r, q.new_target));
        check_outcome(line, "sell quote", sq, &t[12..15]);
        count += 1;
    }
    assert_eq!(count, 300);
}

// ---------------------------------------------------------------- properties

/// xorshift64*: deterministic, dependency-free randomness for property checks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A value with a random number of decimal digits in `lo..=hi`.
    fn magnitude(&mut self, lo: u32, hi: u32) -> U256 {
        let digits = lo + self.below(u64::from(hi - lo + 1)) as u32;
        let mantissa = U256::from(self.next() | 1);
        let scale = U256::from(10u8).pow(U256::from(digits));
        (mantissa % scale.max(U256::from(1u8))).max(U256::from(1u8))
    }

    /// A fraction of `x`: all of it, half, a thousandth, one unit, or a random part.
    fn part_of(&mut self, x: U256) -> U256 {
        match self.below(6) {
            0 => x,
            1 => x / U256::from(2u8),
            2 => x / U256::from(1000u16),
            3 => U256::from(1u8),
            4 => x * U256::from(3u8) / U256::from(2u8),
            _ => x * U256::from(self.below(1_000_000)) / U256::from(1_000_000u32),
        }
    }

    fn k(&mut self) -> U256 {
        match self.below(8) {
            0 => U256::ZERO,
            1 => ONE,
            2 => U256::from(self.below(1000) + 1),
            _ => U256::from(self.below(E18 as u64 - 1) + 1),
        }
    }

    fn fees(&mut self) -> FeeRates {
        if self.below(3) == 0 {
            return FeeRates::default();
        }
        FeeRates {
            lp: U256::from(self.below(E18 as u64 / 100)),
            mt: U256::from(self.below(E18 as u64 / 100)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// A fee-less sale moves the mid price the trade's way, up to rounding: `floor(B0^2 / B)`
/// and the adjusted target are integers in token units, so the mid price can wobble by
/// about `1 / reserve` of itself (4 / smallest reserve allowed, plus 2 wei).
///
/// Not checked from an R = ONE state whose reserves differ from their targets (a DSP first
/// deposit with surplus base or quote, or LP fees kept at ONE): `getMidPrice` then reports
/// `i * (1 - K + K * (B0 / B)^2)` although trades still price from i, and the first sale
/// jumps to the other formula. The property checks found a K = 1 DSP whose mid price went
/// from 0.021 to 0.295 on a 1-wei base sale that way; the contracts do the same.
/// Returns whether the check ran.
fn check_mid_moves(before: &PmmState, after: &PmmState, direction: Direction) -> bool {
    if before.r == RState::One && (before.b != before.b0 || before.q != before.q0) {
        return false;
    }
    let (Ok(b), Ok(a)) = (mid_price(G24, before), mid_price(G24, after)) else {
        return false;
    };
    let smallest = [before.b, before.q, after.b, after.q]
        .into_iter()
        .filter(|x| !x.is_zero())
        .min()
        .unwrap_or(U256::from(1u8));
    let tolerance = b * U256::from(4u8) / smallest + U256::from(2u8);
    match direction {
        Direction::Down => assert!(
            a <= b + tolerance,
            "selling base raised the mid price {b} -> {a} ({before:?} -> {after:?})"
        ),
        Direction::Up => assert!(
            a + tolerance >= b,
            "selling quote lowered the mid price {b} -> {a} ({before:?} -> {after:?})"
        ),
    }
    true
}

#[derive(Default)]
struct Tally {
    ok: u32,
    reverted: u32,
    mid_checks: u32,
}

/// Simulates pools from a first deposit through random swaps, deposits and withdrawals and
/// checks that nothing panics and the invariants hold after every step.
fn simulate(kind: PoolKind, generation: Generation, seed: u64, pools: u32, steps: u32) -> Tally {
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    for _ in 0..pools {
        let i = rng.magnitude(0, 36).min(ONE * ONE);
        let k = rng.k();
        let base = rng.magnitude(4, 30);
        let quote = rng.magnitude(1, 30);
        let first = buy_shares(
            kind,
            generation,
            &LiquidityState {
                i,
                ..LiquidityState::default()
            },
            base,
            quote,
        );
        let Ok(first) = first else {
            tally.reverted += 1;
            continue;
        };
        let mut total = first.new_total_supply;
        let mut state = match (kind, first.targets) {
            (PoolKind::Dsp, Some(t)) => PmmState {
                i,
                k,
                b: base,
                q: quote,
                b0: t.base,
                q0: t.quote,
                r: RState::One,
            },
            _ => PmmState::dvm(i, k, base, quote),
        };
        for _ in 0..steps {
            let fees = rng.fees();
            match rng.below(4) {
                0 => {
                    let pay = rng.part_of(state.b);
                    match query_sell_base(generation, &state, pay, fees) {
                        Ok(q) => {
                            assert!(q.gross() <= state.q, "paid out more quote than held");
                            assert_eq!(q.receive + q.lp_fee + q.mt_fee, q.gross());
                            let next = apply_sell_base(kind, &state, pay, &q);
                            if let Ok(next) = next {
                                if fees == FeeRates::default() && !pay.is_zero() {
                                    tally.mid_checks +=
                                        u32::from(check_mid_moves(&state, &next, Direction::Down));
                                }
                                state = next;
                            }
                            tally.ok += 1;
                        }
                        Err(_) => tally.reverted += 1,
                    }
                }
                1 => {
                    let pay = rng.part_of(state.q);
                    match query_sell_quote(generation, &state, pay, fees) {
                        Ok(q) => {
                            assert!(q.gross() <= state.b, "paid out more base than held");
                            let next = apply_sell_quote(kind, &state, pay, &q);
                            if let Ok(next) = next {
                                if fees == FeeRates::default() && !pay.is_zero() {
                                    tally.mid_checks +=
                                        u32::from(check_mid_moves(&state, &next, Direction::Up));
                                }
                                state = next;
                            }
                            tally.ok += 1;
                        }
                        Err(_) => tally.reverted += 1,
                    }
                }
                2 => {
                    let liq = LiquidityState {
                        total_supply: total,
                        base_reserve: state.b,
                        quote_reserve: state.q,
                        i: state.i,
                        b0: state.b0,
                        q0: state.q0,
                    };
                    let add_b = rng.part_of(state.b);
                    let add_q = rng.part_of(state.q);
                    match buy_shares(kind, generation, &liq, state.b + add_b, state.q + add_q) {
                        Ok(r) => {
                            assert_eq!(r.locked, U256::ZERO);
                            assert!(
                                r.donated_base <= r.base_input && r.donated_quote <= r.quote_input
                            );
                            // Proportional: the new shares never claim more than was put in.
                            let claim_b = (state.b + add_b) * r.received / r.new_total_supply;
                            assert!(claim_b <= r.base_input, "minted more than the base paid in");
                            total = r.new_total_supply;
                            state.b += add_b;
                            state.q += add_q;
                            if let Some(t) = r.targets {
                                state.b0 = t.base;
                                state.q0 = t.quote;
                            }
                            tally.ok += 1;
                        }
                        Err(_) => tally.reverted += 1,
                    }
                }
                _ => {
                    let liq = LiquidityState {
                        total_supply: total,
                        base_reserve: state.b,
                        quote_reserve: state.q,
                        i: state.i,
                        b0: state.b0,
                        q0: state.q0,
                    };
                    let holder = total - LOCKED_SHARES;
                    let share = rng.part_of(holder);
                    match sell_shares(kind, &liq, state.b, state.q, share, holder) {
                        Ok(r) => {
                            assert!(r.base_amount <= state.b && r.quote_amount <= state.q);
                            assert_eq!(r.new_total_supply, total - share);
                            if let Some(t) = r.targets {
                                assert!(t.base <= state.b0 && t.quote <= state.q0);
                                state.b0 = t.base;
                                state.q0 = t.quote;
                            }
                            total = r.new_total_supply;
                            state.b = r.new_base_reserve;
                            state.q = r.new_quote_reserve;
                            tally.ok += 1;
                        }
                        Err(e) => {
                            assert_eq!(e, MathError::DlpNotEnough, "only oversized sales revert");
                            tally.reverted += 1;
                        }
                    }
                }
            }
        }
    }
    tally
}

/// Runs [`simulate`] for one pool kind: most steps must succeed and the mid price must be
/// checked often enough for the walk to mean something.
fn check_random_walks(kind: PoolKind, generation: Generation, label: &str, seed: u64) {
    let t = simulate(kind, generation, seed, 250, 40);
    eprintln!(
        "{label} walks: {} ok, {} reverted, {} mid price checks",
        t.ok, t.reverted, t.mid_checks
    );
    assert!(t.ok > t.reverted, "ok {} reverted {}", t.ok, t.reverted);
    assert!(t.mid_checks > 500, "only {} mid price checks", t.mid_checks);
}

#[test]
fn property_dsp_random_walks() {
    check_random_walks(PoolKind::Dsp, G24, "DSP", 0x9e37_79b9_7f4a_7c15);
    check_random_walks(PoolKind::Dsp, G21, "DSP 2021", 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn property_dvm_random_walks() {
    check_random_walks(PoolKind::Dvm, G24, "DVM", 0xd1b5_4a32_d192_ed03);
    check_random_walks(PoolKind::Dvm, G21, "DVM 2021", 0xd1b5_4a32_d192_ed03);
}

/// Selling base and then selling the quote received back never returns noticeably more base.
///
/// The contracts' rounding does not make this exact: T takes `sqrt(1e36 + x)` with x small
/// when the trade is small against the reserve or K is tiny, which misprices the adjusted
/// target by about `1 / (2 * K_wei * size_ratio)` of the trade, and a dust trade can be
/// mispriced by whole token units. On chain, round trips on such pools can gain that much
/// (the checks here found e.g. 0.2 % with K = 965 wei). The property is therefore checked on
/// consistent pools (`Q0 = mulFloor(B0, i)`, at least 1e7 units of each token, K = 0 or
/// K >= 1e12, trades of at least 1e-6 of the reserve) with a slack of `4 + 2 / (1 - K)` quote
/// units (the quadratic solver divides by `2(1 - K)`, amplifying its rounding near K = 1)
/// plus one millionth of the trade.
#[test]
fn property_round_trip_never_profits() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut checked = 0;
    for _ in 0..4000 {
        // Price between 1e-6 and 1e6 quote units per base unit.
        let i = rng.magnitude(12, 24);
        let k = match rng.k() {
            k if !k.is_zero() && k < U256::from(1_000_000_000_000u64) => ONE / U256::from(2u8),
            k => k,
        };
        let b = rng.magnitude(7, 28);
        let q = mul_floor(b, i).expect("fits");
        if q < U256::from(10_000_000u64) {
            continue;
        }
        let (kind, state) = if rng.below(2) == 0 {
            (PoolKind::Dvm, PmmState::dvm(i, k, b, q))
        } else {
            let state = PmmState {
                i,
                k,
                b,
                q,
                b0: b,
                q0: q,
                r: RState::One,
            };
            (PoolKind::Dsp, state)
        };
        let pay = b * U256::from(rng.below(1_000_000) + 1) / U256::from(1_000_000u32);
        let Ok(first) = query_sell_base(G24, &state, pay, no_fees()) else {
            continue;
        };
        let Ok(after) = apply_sell_base(kind, &state, pay, &first) else {
            continue;
        };
        let Ok(back) = query_sell_quote(G24, &after, first.receive, no_fees()) else {
            continue;
        };
        // The general solver divides by 2(1 - K): its rounding grows by 1 / (1 - K) units.
        let amplification = if k < ONE {
            ONE / (ONE - k)
        } else {
            U256::from(1u8)
        };
        let units = U256::from(4u8) + amplification * U256::from(2u8);
        let quote_unit_in_base = ONE / i + U256::from(1u8);
        let slack = units * quote_unit_in_base + pay / U256::from(1_000_000u32);
        assert!(
            back.receive <= pay + slack,
            "round trip paid {pay}, got back {} on {state:?}",
            back.receive
        );
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} round trips priced");
}

#[test]
fn property_primitives_never_panic() {
    let mut rng = Rng(0xfeed_beef_cafe_f00d);
    let pick = |rng: &mut Rng| match rng.below(5) {
        0 => U256::ZERO,
        1 => U256::MAX - U256::from(rng.below(3)),
        2 => U256::from(rng.below(4)),
        _ => rng.magnitude(0, 77),
    };
    for _ in 0..20_000 {
        let (a, b, c, d) = (
            pick(&mut rng),
            pick(&mut rng),
            pick(&mut rng),
            pick(&mut rng),
        );
        let k = rng.k();
        for g in [G21, G24] {
            if let Ok(v) = solve_quadratic_for_trade(g, a, b, c, d, k) {
                assert!(v <= b, "trade output above the reserve");
            }
            let _ = solve_quadratic_for_target(g, a, b, c, k);
        }
        let _ = general_integrate(a, b, c, d, k);
        let state = PmmState {
            i: d,
            k,
            b: a,
            q: b,
            b0: c,
            q0: pick(&mut rng),
            r: RState::try_from((rng.below(3)) as u8).expect("0..3"),
        };
        for g in [G21, G24] {
            let _ = mid_price(g, &state);
            let _ = query_sell_base(g, &state, pick(&mut rng), rng.fees());
            let _ = query_sell_quote(g, &state, pick(&mut rng), rng.fees());
        }
        let liq = LiquidityState {
            total_supply: pick(&mut rng),
            base_reserve: a,
            quote_reserve: b,
            i: d,
            b0: c,
            q0: pick(&mut rng),
        };
        let kind = if rng.below(2) == 0 {
            PoolKind::Dvm
        } else {
            PoolKind::Dsp
        };
        let _ = buy_shares(kind, G24, &liq, pick(&mut rng), pick(&mut rng));
        let _ = sell_shares(
            kind,
            &liq,
            pick(&mut rng),
            pick(&mut rng),
            pick(&mut rng),
            pick(&mut rng),
        );
    }
}
