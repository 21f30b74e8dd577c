use alloy_primitives::{Address, I256, U256, address};

use super::*;
use crate::config::PoolProfiles;
use crate::math::{FeeRates, PmmState, RState};
use crate::policy::MAX_FEED_CLOCK_SKEW_S;
use crate::schema::{
    ChainName, OracleKind, OracleRead, PoolType, RawPoolRead, TokenInfo, normalize,
};

const POOL: Address = address!("00000000000000000000000000000000000000a1");
const OTHER_POOL: Address = address!("00000000000000000000000000000000000000a2");
const BASE: Address = address!("00000000000000000000000000000000000000b1");
const QUOTE: Address = address!("00000000000000000000000000000000000000c1");
const NOW: u64 = 1_700_000_000;
const GWEI: u128 = 1_000_000_000;

fn e(n: u8) -> U256 {
    U256::from(10u8).pow(U256::from(n))
}

fn usdc(n: u64) -> Amount {
    Amount(U256::from(n) * e(6))
}

fn weth(n: u64) -> Amount {
    Amount(U256::from(n) * e(18))
}

/// 10 WETH / 20,000 USDC DVM at 2000 USDC per WETH, oracle at 2001.5.
fn state() -> PoolState {
    let mid = U256::from(2000u64) * e(6);
    normalize(RawPoolRead {
        pool_address: POOL,
        chain: ChainName::new("devnet").unwrap(),
        pool_type: PoolType::Dvm,
        generation: Some(crate::math::Generation::V2024),
        profile: "dvm".into(),
        version: "DVM 1.0.2".into(),
        block_number: 10,
        block_timestamp: NOW - 2,
        pmm: PmmState {
            i: mid,
            k: e(17),
            b: weth(10).0,
            q: usdc(20_000).0,
            b0: weth(10).0,
            q0: U256::ZERO,
            r: RState::AboveOne,
        },
        mid_price: Some(mid),
        base_reserve: weth(10).0,
        quote_reserve: usdc(20_000).0,
        fees: FeeRates::default(),
        base_token: TokenInfo {
            address: BASE,
            symbol: "WETH".into(),
            decimals: 18,
        },
        quote_token: TokenInfo {
            address: QUOTE,
            symbol: "USDC".into(),
            decimals: 6,
        },
        oracle: Some(OracleRead {
            kind: OracleKind::Chainlink,
            answer: I256::try_from(200_150_000_000i64).unwrap(),
            decimals: 8,
            updated_at: NOW - 10,
        }),
    })
    .unwrap()
}

/// Limits: 100 bps slippage, 10,000 USDC per tx, 50,000 per day, 60 s cooldown, 200 bps
/// deviation, 1 h oracle age, 100 gwei.
fn profiles() -> PoolProfiles {
    PoolProfiles::from_json_str(include_str!("../../../../../config/pool_profiles.json")).unwrap()
}

fn allowlist() -> Allowlist {
    let profiles = profiles();
    let json = serde_json::json!({
        "chain": "devnet",
        "chain_id": 31337,
        "pools": [{
            "address": POOL.to_string(),
            "base_token": BASE.to_string(),
            "quote_token": QUOTE.to_string(),
            "profile": "dvm",
            "pool_type": "dvm",
            "oracle": {"kind": "chainlink", "address": "0x00000000000000000000000000000000000000d1"},
            "limits": {
                "max_slippage_bps": 100,
                "max_notional_per_tx": usdc(10_000).to_string(),
                "max_notional_per_day": usdc(50_000).to_string(),
                "cooldown_s": 60,
                "oracle_deviation_bps": 200,
                "oracle_max_age_s": 3600,
                "gas_cap_gwei": 100
            }
        }]
    });
    Allowlist::from_json_str(&json.to_string(), &profiles).unwrap()
}

fn add(base: Amount, quote: Amount, min_shares: u64) -> ActionProposal {
    ActionProposal::AddLiquidity {
        pool: POOL,
        base_amount: base,
        quote_amount: quote,
        min_shares: Amount::from(u128::from(min_shares)),
        reason: "rebalance".into(),
    }
}

fn hold() -> ActionProposal {
    ActionProposal::Hold {
        reason: "wait".into(),
    }
}

/// Owns everything a [`PolicyInput`] borrows, with values that pass every rule.
struct Case {
    proposal: ActionProposal,
    state: PoolState,
    allowlist: Allowlist,
    profiles: PoolProfiles,
    expected: Option<ExpectedOutcome>,
    donation: Option<Donation>,
    holdings: Option<Holdings>,
    state_unavailable: Option<String>,
    oracle: Option<OraclePrice>,
    breaker: Option<BreakerState>,
    cooldown_until: Option<u64>,
    daily_used: Option<Amount>,
    gas_price_wei: Option<u128>,
    now: u64,
}

impl Case {
    /// Add 1 WETH + 2,000 USDC (notional 4,000 USDC), expecting 1000 shares, min 995 (50 bps).
    fn ok() -> Self {
        let state = state();
        Self {
            proposal: add(weth(1), usdc(2000), 995),
            oracle: state.oracle_price.clone(),
            state,
            allowlist: allowlist(),
            profiles: profiles(),
            expected: Some(ExpectedOutcome::Add {
                shares: Amount::from(1000u128),
            }),
            donation: Some(Donation {
                base: Amount::ZERO,
                quote: Amount::ZERO,
            }),
            holdings: Some(Holdings {
                base: weth(100),
                quote: usdc(1_000_000),
                shares: Some(Amount::from(10_000u128)),
            }),
            state_unavailable: None,
            breaker: Some(BreakerState::clear()),
            cooldown_until: Some(0),
            daily_used: Some(Amount::ZERO),
            gas_price_wei: Some(20 * GWEI),
            now: NOW,
        }
    }

    fn run(&self) -> RiskReport {
        evaluate(&PolicyInput {
            proposal: &self.proposal,
            state: &self.state,
            allowlist: &self.allowlist,
            profiles: &self.profiles,
            expected: self.expected,
            donation: self.donation,
            holdings: self.holdings,
            state_unavailable: self.state_unavailable.as_deref(),
            oracle: self.oracle.as_ref(),
            breaker: self.breaker.as_ref(),
            cooldown_until: self.cooldown_until,
            daily_used: self.daily_used,
            gas_price_wei: self.gas_price_wei,
            now: self.now,
        })
    }
}

fn outcome(r: &RiskReport, rule: Rule) -> RuleOutcome {
    r.check(rule).unwrap().outcome
}

fn detail(r: &RiskReport, rule: Rule) -> &str {
    &r.check(rule).unwrap().detail
}

/// Asserts a deny decided by `rule` with every other rule passing.
fn denied_only_by(r: &RiskReport, rule: Rule) {
    assert_eq!(r.verdict, Verdict::Deny, "{r:#?}");
    assert_eq!(r.decided_by, Some(rule), "{r:#?}");
    for c in &r.rules {
        let want = if c.rule == rule {
            RuleOutcome::Deny
        } else {
            RuleOutcome::Pass
        };
        assert_eq!(c.outcome, want, "{}: {}", c.rule, c.detail);
    }
    assert_eq!(r.score, 100);
}

#[test]
fn a_compliant_add_is_allowed_with_a_deterministic_score() {
    let r = Case::ok().run();
    assert_eq!(r.verdict, Verdict::Allow, "{r:#?}");
    assert_eq!(r.decided_by, None);
    assert_eq!(r.trip_breaker, None);
    assert_eq!(r.notional, Some(usdc(4000)));
    let order: Vec<Rule> = r.rules.iter().map(|c| c.rule).collect();
    assert_eq!(order, Rule::ALL);
    let pressures: Vec<u8> = r.rules.iter().map(|c| c.pressure).collect();
    // slippage 50/100, tx 4000/10000, day 4000/50000, donation 0/10 bps, balance
    // max(1/100 WETH, 2000/1M USDC) = 1, oracle ceil(7.49)=8 bps of 200, gas 20/100 gwei.
    assert_eq!(pressures, [0, 4, 0, 0, 20, 50, 40, 8, 0, 1]);
    assert_eq!(r.score, 50);
}

#[test]
fn each_rule_alone_denies_under_its_own_name() {
    // allowlist: the pool is not listed.
    let mut c = Case::ok();
    c.allowlist.pools.clear();
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::Allowlist));
    assert!(
        r.rules[1..]
            .iter()
            .all(|c| c.outcome == RuleOutcome::Skipped)
    );
    assert!(detail(&r, Rule::Allowlist).contains("not allowlisted"));

    // max_slippage: min 980 of 1000 is 200 bps > 100.
    let mut c = Case::ok();
    c.proposal = add(weth(1), usdc(2000), 980);
    denied_only_by(&c.run(), Rule::MaxSlippage);

    // max_notional_per_tx: 3 WETH + 6,000 USDC = 12,000 > 10,000.
    let mut c = Case::ok();
    c.proposal = add(weth(3), usdc(6000), 995);
    denied_only_by(&c.run(), Rule::MaxNotionalPerTx);

    // max_notional_per_day: 46,001 used + 4,000 > 50,000.
    let mut c = Case::ok();
    c.daily_used = Some(usdc(46_001));
    denied_only_by(&c.run(), Rule::MaxNotionalPerDay);
    // ... and exactly at the cap passes.
    c.daily_used = Some(usdc(46_000));
    assert_eq!(c.run().verdict, Verdict::Allow);

    // max_donation: 1 of the 4,000 USDC (2,000 donated in quote) is far beyond 10 bps.
    let mut c = Case::ok();
    c.donation = Some(Donation {
        base: Amount::ZERO,
        quote: usdc(2000),
    });
    let r = c.run();
    denied_only_by(&r, Rule::MaxDonation);
    assert!(detail(&r, Rule::MaxDonation).contains("5000 bps"), "{r:#?}");
    // 4 USDC of 4,000 is exactly 10 bps: passes.
    c.donation = Some(Donation {
        base: Amount::ZERO,
        quote: usdc(4),
    });
    assert_eq!(c.run().verdict, Verdict::Allow);

    // balance: the executor holds less quote than the deposit.
    let mut c = Case::ok();
    c.holdings.as_mut().unwrap().quote = usdc(1999);
    denied_only_by(&c.run(), Rule::Balance);
    // ... and with no executor at all every write denies under balance.
    c.holdings = None;
    denied_only_by(&c.run(), Rule::Balance);

    // cooldown: 30 s left.
    let mut c = Case::ok();
    c.cooldown_until = Some(NOW + 30);
    let r = c.run();
    denied_only_by(&r, Rule::Cooldown);
    assert!(detail(&r, Rule::Cooldown).contains("30s left"));
    c.cooldown_until = Some(NOW);
    assert_eq!(c.run().verdict, Verdict::Allow);

    // oracle_deviation: oracle at 2100 vs mid 2000 = 477 bps > 200, and the breaker must trip.
    let mut c = Case::ok();
    c.oracle.as_mut().unwrap().price_raw = usdc(2100);
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert!(r.trip_breaker.as_deref().unwrap().contains("477 bps"));

    // gas_cap: 150 gwei > 100.
    let mut c = Case::ok();
    c.gas_price_wei = Some(150 * GWEI);
    denied_only_by(&c.run(), Rule::GasCap);
    c.gas_price_wei = Some(100 * GWEI);
    assert_eq!(c.run().verdict, Verdict::Allow);

    // circuit_breaker: tripped.
    let mut c = Case::ok();
    c.breaker = Some(BreakerState {
        tripped: true,
        reason: "manual".into(),
        ts: 5,
    });
    let r = c.run();
    denied_only_by(&r, Rule::CircuitBreaker);
    assert_eq!(r.trip_breaker, None);
}

#[test]
fn removals_beyond_the_executors_shares_are_denied_by_balance() {
    let mut c = Case::ok();
    c.proposal = ActionProposal::RemoveLiquidity {
        pool: POOL,
        shares: Amount::from(10_001u128),
        min_base: Amount::ZERO,
        min_quote: Amount::ZERO,
        reason: "x".into(),
    };
    c.expected = Some(ExpectedOutcome::Remove {
        base: weth(1),
        quote: usdc(2000),
    });
    let r = c.run();
    assert_eq!(outcome(&r, Rule::Balance), RuleOutcome::Deny);
    assert!(detail(&r, Rule::Balance).contains("shares 10001 of 10000"));
    assert_eq!(outcome(&r, Rule::MaxDonation), RuleOutcome::Pass);
    c.holdings.as_mut().unwrap().shares = None;
    assert_eq!(outcome(&c.run(), Rule::Balance), RuleOutcome::Deny);
}

#[test]
fn lost_policy_state_denies_every_state_rule_with_the_reason() {
    let mut c = Case::ok();
    c.state_unavailable = Some("bootstrap marker missing".into());
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Deny);
    assert_eq!(r.decided_by, Some(Rule::CircuitBreaker));
    for rule in [
        Rule::MaxNotionalPerDay,
        Rule::Cooldown,
        Rule::CircuitBreaker,
    ] {
        assert_eq!(outcome(&r, rule), RuleOutcome::Deny, "{rule}");
        assert_eq!(
            detail(&r, rule),
            "policy state unavailable: bootstrap marker missing"
        );
    }
}

#[test]
fn the_pool_version_must_be_the_allowlisted_family() {
    let mut c = Case::ok();
    c.state.version = "DSP 1.0.1".into();
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::Allowlist));
    assert!(
        detail(&r, Rule::Allowlist).contains("is a dsp (profile dsp), not a dvm"),
        "{r:#?}"
    );
    c.state.version = "Unknown 1".into();
    assert_eq!(c.run().decided_by, Some(Rule::Allowlist));
}

#[test]
fn a_pool_priced_by_its_own_oracle_has_no_independent_reference() {
    let mut c = Case::ok();
    c.allowlist.pools[0].oracle.kind = OracleKind::DppOracle;
    c.oracle.as_mut().unwrap().kind = OracleKind::DppOracle;
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert!(detail(&r, Rule::OracleDeviation).contains("no independent reference price"));
    assert_eq!(r.trip_breaker, None, "a configuration fact does not trip");
    // A chainlink entry whose observation is the pool's own oracle is no reference either.
    let mut c = Case::ok();
    c.oracle.as_mut().unwrap().kind = OracleKind::V1;
    denied_only_by(&c.run(), Rule::OracleDeviation);
}

#[test]
fn an_unusable_feed_and_illiquidity_deny_and_are_what_the_monitor_trips_on() {
    let mut c = Case::ok();
    c.state.oracle_price = None;
    c.oracle = None;
    c.state.oracle_unusable = Some("oracle answer -1 is not positive".into());
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert_eq!(
        r.trip_breaker.as_deref(),
        Some("oracle feed unusable: oracle answer -1 is not positive")
    );

    let mut c = Case::ok();
    c.allowlist.pools[0].limits.min_base_reserve = weth(11);
    let r = c.run();
    denied_only_by(&r, Rule::CircuitBreaker);
    assert!(
        r.trip_breaker
            .as_deref()
            .unwrap()
            .starts_with("pool illiquid: base reserve")
    );
    c.allowlist.pools[0].limits.min_base_reserve = weth(10);
    c.allowlist.pools[0].limits.min_quote_reserve = usdc(20_000);
    assert_eq!(
        c.run().verdict,
        Verdict::Allow,
        "at the floor is not below it"
    );
}

#[test]
fn unknown_inputs_fail_closed_under_the_rule_that_needed_them() {
    type Mutation = fn(&mut Case);
    let cases: Vec<(Mutation, Rule)> = vec![
        (|c| c.expected = None, Rule::MaxSlippage),
        (|c| c.daily_used = None, Rule::MaxNotionalPerDay),
        (|c| c.donation = None, Rule::MaxDonation),
        (|c| c.holdings = None, Rule::Balance),
        (|c| c.cooldown_until = None, Rule::Cooldown),
        (|c| c.oracle = None, Rule::OracleDeviation),
        (|c| c.gas_price_wei = None, Rule::GasCap),
        (|c| c.breaker = None, Rule::CircuitBreaker),
    ];
    for (mutate, rule) in cases {
        let mut c = Case::ok();
        mutate(&mut c);
        let r = c.run();
        denied_only_by(&r, rule);
        // Only the feed trips the breaker; an unreadable store or gas price does not.
        assert_eq!(
            r.trip_breaker.is_some(),
            rule == Rule::OracleDeviation,
            "{rule}: {:?}",
            r.trip_breaker
        );
    }
}

#[test]
fn a_stale_missing_or_zero_feed_denies_and_trips_the_breaker() {
    let mut c = Case::ok();
    c.oracle.as_mut().unwrap().updated_at = NOW - 3601;
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert!(detail(&r, Rule::OracleDeviation).contains("stale"));
    assert_eq!(
        r.trip_breaker.as_deref(),
        Some("oracle feed stale: oracle is stale: updated 3601s ago, max 3600s")
    );

    // Exactly at the max age is still fresh; a timestamp ahead of the clock counts as age 0.
    c.oracle.as_mut().unwrap().updated_at = NOW - 3600;
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(r.trip_breaker, None);
    c.oracle.as_mut().unwrap().updated_at = NOW + 30;
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(r.trip_breaker, None);
    c.oracle.as_mut().unwrap().updated_at = NOW + MAX_FEED_CLOCK_SKEW_S;
    assert_eq!(c.run().verdict, Verdict::Allow);

    // A feed far in the future would never go stale: it is unusable, and trips.
    for ahead in [MAX_FEED_CLOCK_SKEW_S + 1, u64::MAX - NOW] {
        c.oracle.as_mut().unwrap().updated_at = NOW + ahead;
        let r = c.run();
        denied_only_by(&r, Rule::OracleDeviation);
        assert!(
            r.trip_breaker
                .as_deref()
                .is_some_and(|t| t.starts_with("oracle feed unusable: oracle updated_at")),
            "{:?}",
            r.trip_breaker
        );
    }

    let mut c = Case::ok();
    c.oracle.as_mut().unwrap().price_raw = Amount::ZERO;
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert_eq!(
        r.trip_breaker.as_deref(),
        Some("oracle feed unusable: oracle price is zero")
    );

    let mut c = Case::ok();
    c.oracle = None;
    let r = c.run();
    denied_only_by(&r, Rule::OracleDeviation);
    assert_eq!(
        r.trip_breaker.as_deref(),
        Some("oracle feed missing: no oracle observation")
    );

    // An already tripped breaker is not tripped again, so its first reason and time (say an
    // operator's pause) are kept; an unknown breaker is tripped.
    c.breaker = Some(BreakerState {
        tripped: true,
        reason: "earlier".into(),
        ts: 1,
    });
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::OracleDeviation));
    assert_eq!(outcome(&r, Rule::CircuitBreaker), RuleOutcome::Deny);
    assert_eq!(r.trip_breaker, None);
    c.breaker = None;
    assert!(c.run().trip_breaker.is_some());
}

#[test]
fn only_an_allowlisted_pool_trips_the_breaker() {
    // A stale or missing feed on a pool outside the allowlist (or read from another chain)
    // has no limits to judge it by: denied by the allowlist, and nothing trips.
    for stale in [true, false] {
        let mut c = Case::ok();
        if stale {
            c.oracle.as_mut().unwrap().updated_at = 0;
        } else {
            c.oracle = None;
        }
        c.allowlist.pools.clear();
        let r = c.run();
        assert_eq!(r.decided_by, Some(Rule::Allowlist));
        assert_eq!(outcome(&r, Rule::OracleDeviation), RuleOutcome::Skipped);
        assert_eq!(r.trip_breaker, None);

        let mut c = Case::ok();
        c.oracle = None;
        c.allowlist.chain = ChainName::new("ethereum").unwrap();
        let r = c.run();
        assert_eq!(r.decided_by, Some(Rule::Allowlist));
        assert_eq!(r.trip_breaker, None);
    }
}

#[test]
fn the_oracle_max_age_override_applies() {
    let mut c = Case::ok();
    c.allowlist.pools[0].oracle.max_age_s = Some(5);
    denied_only_by(&c.run(), Rule::OracleDeviation);
}

#[test]
fn the_first_failing_rule_decides_and_all_rules_are_reported() {
    let mut c = Case::ok();
    c.proposal = add(weth(1), usdc(2000), 0);
    c.gas_price_wei = Some(500 * GWEI);
    c.breaker = Some(BreakerState {
        tripped: true,
        reason: "x".into(),
        ts: 1,
    });
    c.cooldown_until = Some(NOW + 1);
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::CircuitBreaker));
    for rule in [
        Rule::MaxSlippage,
        Rule::Cooldown,
        Rule::GasCap,
        Rule::CircuitBreaker,
    ] {
        assert_eq!(outcome(&r, rule), RuleOutcome::Deny, "{rule}");
    }
    for rule in [
        Rule::MaxNotionalPerTx,
        Rule::MaxNotionalPerDay,
        Rule::OracleDeviation,
    ] {
        assert_eq!(outcome(&r, rule), RuleOutcome::Pass, "{rule}");
    }

    // Clearing the breaker moves the decision to the next failing rule in order.
    c.breaker = Some(BreakerState::clear());
    assert_eq!(c.run().decided_by, Some(Rule::Cooldown));
}

#[test]
fn notional_counts_every_amount_field() {
    // base 0 + a large quote: the quote alone exceeds the cap.
    let mut c = Case::ok();
    c.proposal = add(Amount::ZERO, usdc(10_001), 995);
    let r = c.run();
    denied_only_by(&r, Rule::MaxNotionalPerTx);
    assert_eq!(r.notional, Some(usdc(10_001)));

    // quote 0 + a large base: valued at the mid price.
    c.proposal = add(weth(6), Amount::ZERO, 995);
    let r = c.run();
    denied_only_by(&r, Rule::MaxNotionalPerTx);
    assert_eq!(r.notional, Some(usdc(12_000)));

    // Rounding is up: 1 wei of base at 2000e6/1e18 is worth 2e-9 quote units -> 1.
    assert_eq!(
        notional_of(
            Amount::from(1u128),
            Amount::ZERO,
            Amount(U256::from(2000u64) * e(6))
        ),
        Some(Amount::from(1u128))
    );
    assert_eq!(
        notional_of(
            Amount::ZERO,
            Amount::ZERO,
            Amount(U256::from(2000u64) * e(6))
        ),
        Some(Amount::ZERO)
    );
}

#[test]
fn huge_and_overflowing_values_are_denied_not_panicked() {
    let mut c = Case::ok();
    c.proposal = add(Amount(U256::MAX), Amount(U256::MAX), 995);
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::MaxNotionalPerTx));
    assert!(detail(&r, Rule::MaxNotionalPerTx).contains("overflow"));
    assert_eq!(outcome(&r, Rule::MaxNotionalPerDay), RuleOutcome::Deny);
    assert_eq!(r.notional, None);

    // Quote alone at the maximum fits 256 bits and is denied by size, not overflow.
    c.proposal = add(Amount::ZERO, Amount(U256::MAX), 995);
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::MaxNotionalPerTx));
    assert_eq!(r.notional, Some(Amount(U256::MAX)));
    assert_eq!(outcome(&r, Rule::MaxNotionalPerDay), RuleOutcome::Deny);
    // Base at the maximum overflows once priced.
    c.proposal = add(Amount(U256::MAX), Amount::ZERO, 995);
    assert_eq!(c.run().decided_by, Some(Rule::MaxNotionalPerTx));

    // A daily counter near the top does not wrap around to a small number.
    let mut c = Case::ok();
    c.daily_used = Some(Amount(U256::MAX));
    denied_only_by(&c.run(), Rule::MaxNotionalPerDay);

    // Expected outputs at the maximum with min 0 are 10000 bps of slippage.
    let mut c = Case::ok();
    c.expected = Some(ExpectedOutcome::Add {
        shares: Amount(U256::MAX),
    });
    c.proposal = add(weth(1), usdc(2000), 0);
    denied_only_by(&c.run(), Rule::MaxSlippage);

    // Gas at u128::MAX.
    let mut c = Case::ok();
    c.gas_price_wei = Some(u128::MAX);
    denied_only_by(&c.run(), Rule::GasCap);
}

#[test]
fn bypass_attempts_are_denied() {
    // min_shares 0 disables the on-chain slippage guard: 10000 bps.
    let mut c = Case::ok();
    c.proposal = add(weth(1), usdc(2000), 0);
    let r = c.run();
    denied_only_by(&r, Rule::MaxSlippage);
    assert!(detail(&r, Rule::MaxSlippage).contains("10000 bps"));

    // An all-zero add is expected to mint nothing.
    let mut c = Case::ok();
    c.proposal = add(Amount::ZERO, Amount::ZERO, 0);
    c.expected = Some(ExpectedOutcome::Add {
        shares: Amount::ZERO,
    });
    denied_only_by(&c.run(), Rule::MaxSlippage);

    // Expected outputs of another action kind are not accepted.
    let mut c = Case::ok();
    c.expected = Some(ExpectedOutcome::Remove {
        base: weth(1),
        quote: usdc(1),
    });
    denied_only_by(&c.run(), Rule::MaxSlippage);

    // A proposal for another pool than the one whose state was read.
    let mut c = Case::ok();
    c.proposal = ActionProposal::AddLiquidity {
        pool: OTHER_POOL,
        base_amount: weth(1),
        quote_amount: usdc(2000),
        min_shares: Amount::from(995u128),
        reason: "x".into(),
    };
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::Allowlist));
    assert!(detail(&r, Rule::Allowlist).contains("state was read from"));

    // A state from another chain.
    let mut c = Case::ok();
    c.state.chain = ChainName::new("bsc").unwrap();
    assert_eq!(c.run().decided_by, Some(Rule::Allowlist));

    // A state whose tokens differ from the allowlisted ones.
    let mut c = Case::ok();
    c.state.quote_token.address = OTHER_POOL;
    assert_eq!(c.run().decided_by, Some(Rule::Allowlist));

    // A state claiming another pool type.
    let mut c = Case::ok();
    c.state.pool_type = PoolType::Dsp;
    assert_eq!(c.run().decided_by, Some(Rule::Allowlist));

    // A zero mid price would value any base at nothing.
    let mut c = Case::ok();
    c.state.mid_price_raw = Some(Amount::ZERO);
    c.oracle = None;
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::OracleDeviation));
    assert_eq!(outcome(&r, Rule::MaxNotionalPerTx), RuleOutcome::Deny);
    assert!(detail(&r, Rule::MaxNotionalPerTx).contains("mid price is zero"));

    // No mid price at all (an empty pool): nothing can be valued or compared with the feed.
    let mut c = Case::ok();
    c.state.mid_price_raw = None;
    c.state.mid_price_undefined = Some("the pool is empty".into());
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Deny);
    assert_eq!(r.notional, None);
    assert_eq!(outcome(&r, Rule::OracleDeviation), RuleOutcome::Deny);
    assert!(detail(&r, Rule::OracleDeviation).contains("the pool is empty"));
    assert!(detail(&r, Rule::MaxNotionalPerTx).contains("the pool is empty"));
    assert_eq!(r.trip_breaker, None, "an empty pool is no reason to trip");

    // A caller-set notional is not even parseable: unknown fields are rejected.
    let json = serde_json::json!({
        "action": "add_liquidity",
        "pool": POOL.to_string(),
        "base_amount": "1",
        "quote_amount": "1",
        "min_shares": "1",
        "reason": "x",
        "notional": "0"
    });
    assert!(serde_json::from_value::<ActionProposal>(json).is_err());
}

#[test]
fn removal_is_valued_at_its_expected_outputs() {
    let mut c = Case::ok();
    c.proposal = ActionProposal::RemoveLiquidity {
        pool: POOL,
        shares: Amount::from(500u128),
        min_base: Amount(weth(1).0 - U256::from(1u8)),
        min_quote: usdc(1990),
        reason: "exit".into(),
    };
    c.expected = Some(ExpectedOutcome::Remove {
        base: weth(1),
        quote: usdc(2000),
    });
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow, "{r:#?}");
    assert_eq!(r.notional, Some(usdc(4000)));
    // base 1 wei short of 1e18 rounds up to 1 bps; quote 10/2000 = 50 bps; worst is 50.
    assert_eq!(r.check(Rule::MaxSlippage).unwrap().pressure, 50);

    // min 0 on both legs (no guard) is 10000 bps.
    c.proposal = ActionProposal::RemoveLiquidity {
        pool: POOL,
        shares: Amount::from(500u128),
        min_base: Amount::ZERO,
        min_quote: Amount::ZERO,
        reason: "exit".into(),
    };
    denied_only_by(&c.run(), Rule::MaxSlippage);

    // Without expected outputs the removal cannot be valued: slippage and notional deny.
    c.expected = None;
    let r = c.run();
    assert_eq!(r.decided_by, Some(Rule::MaxSlippage));
    assert_eq!(outcome(&r, Rule::MaxNotionalPerTx), RuleOutcome::Deny);
    assert_eq!(outcome(&r, Rule::MaxNotionalPerDay), RuleOutcome::Deny);

    // Burning zero shares is expected to return nothing.
    c.expected = Some(ExpectedOutcome::Remove {
        base: Amount::ZERO,
        quote: Amount::ZERO,
    });
    assert_eq!(c.run().decided_by, Some(Rule::MaxSlippage));

    // Removals count against the caps too.
    c.expected = Some(ExpectedOutcome::Remove {
        base: weth(10),
        quote: usdc(20_000),
    });
    c.proposal = ActionProposal::RemoveLiquidity {
        pool: POOL,
        shares: Amount::from(5000u128),
        min_base: weth(10),
        min_quote: usdc(20_000),
        reason: "exit".into(),
    };
    denied_only_by(&c.run(), Rule::MaxNotionalPerTx);
}

#[test]
fn hold_is_always_allowed_and_reports_the_pool_risk() {
    let mut c = Case::ok();
    c.proposal = hold();
    c.expected = None;
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(r.notional, None);
    for rule in [
        Rule::MaxSlippage,
        Rule::MaxNotionalPerTx,
        Rule::MaxNotionalPerDay,
    ] {
        assert_eq!(outcome(&r, rule), RuleOutcome::Skipped, "{rule}");
    }
    assert_eq!(r.score, 20, "gas at 20% is the highest pressure");

    // Blocking state turns into warnings, never a deny, and a deviation still trips.
    c.breaker = None;
    c.cooldown_until = Some(NOW + 10);
    c.oracle.as_mut().unwrap().price_raw = usdc(2100);
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(r.decided_by, None);
    assert_eq!(outcome(&r, Rule::CircuitBreaker), RuleOutcome::Warn);
    assert_eq!(outcome(&r, Rule::Cooldown), RuleOutcome::Warn);
    assert_eq!(outcome(&r, Rule::OracleDeviation), RuleOutcome::Warn);
    assert!(r.trip_breaker.is_some());
    assert_eq!(r.score, 100);

    // A stale feed found by a hold trips the breaker too.
    let mut c = Case::ok();
    c.proposal = hold();
    c.expected = None;
    c.oracle.as_mut().unwrap().updated_at = NOW - 7200;
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(outcome(&r, Rule::OracleDeviation), RuleOutcome::Warn);
    assert!(r.trip_breaker.as_deref().unwrap().contains("stale"));

    // Hold on a pool outside the allowlist: allowed, with the allowlist warning.
    let mut c = Case::ok();
    c.proposal = hold();
    c.allowlist.pools.clear();
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(outcome(&r, Rule::Allowlist), RuleOutcome::Warn);
}

#[test]
fn zero_limits_block_everything_but_zero() {
    let mut c = Case::ok();
    c.allowlist.pools[0].limits.max_slippage_bps = 0;
    denied_only_by(&c.run(), Rule::MaxSlippage);
    c.proposal = add(weth(1), usdc(2000), 1000);
    let r = c.run();
    assert_eq!(r.verdict, Verdict::Allow);
    assert_eq!(r.check(Rule::MaxSlippage).unwrap().pressure, 0);

    let mut c = Case::ok();
    c.allowlist.pools[0].limits.gas_cap_gwei = 0;
    denied_only_by(&c.run(), Rule::GasCap);
}

#[test]
fn rule_and_verdict_names_are_stable() {
    let names: Vec<String> = Rule::ALL
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "allowlist",
            "oracle_deviation",
            "circuit_breaker",
            "cooldown",
            "gas_cap",
            "max_slippage",
            "max_notional_per_tx",
            "max_notional_per_day",
            "max_donation",
            "balance"
        ]
    );
    for r in Rule::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
    assert_eq!(serde_json::to_value(Verdict::Deny).unwrap(), "deny");
    assert_eq!(
        serde_json::to_value(RuleOutcome::Skipped).unwrap(),
        "skipped"
    );
}

#[test]
fn reports_and_proposals_round_trip_as_json() {
    let r = Case::ok().run();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["notional"], "4000000000");
    assert_eq!(serde_json::from_value::<RiskReport>(v).unwrap(), r);

    let json = serde_json::json!({"action": "hold", "reason": "flat market"});
    let p: ActionProposal = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        p,
        ActionProposal::Hold {
            reason: "flat market".into()
        }
    );
    assert_eq!(serde_json::to_value(&p).unwrap(), json);

    let json = serde_json::json!({
        "action": "remove_liquidity",
        "pool": "0x00000000000000000000000000000000000000a1",
        "shares": "10", "min_base": "1", "min_quote": "2", "reason": "r"
    });
    let p: ActionProposal = serde_json::from_value(json).unwrap();
    assert_eq!(p.pool(), Some(POOL));
    assert!(p.is_write());
    assert_eq!(p.reason(), "r");

    for bad in [
        serde_json::json!({"action": "swap", "reason": "x"}),
        serde_json::json!({"action": "hold"}),
        serde_json::json!({"action": "hold", "reason": "x", "pool": "0x00000000000000000000000000000000000000a1"}),
        serde_json::json!({"action": "add_liquidity", "pool": "0x00000000000000000000000000000000000000a1",
            "base_amount": 1, "quote_amount": "1", "min_shares": "1", "reason": "x"}),
        serde_json::json!({"action": "add_liquidity", "pool": "0x00000000000000000000000000000000000000a1",
            "base_amount": "-1", "quote_amount": "1", "min_shares": "1", "reason": "x"}),
    ] {
        assert!(
            serde_json::from_value::<ActionProposal>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
