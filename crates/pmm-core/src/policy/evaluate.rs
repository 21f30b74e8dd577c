//! The evaluation itself: ten rules in a fixed order ([`Rule::ALL`]: the pool's own state
//! first, then the action's amounts), deny by default.
//!
//! * A write is allowed only when every rule passes; the first rule that does not pass decides.
//!   Every rule is still evaluated, so the report lists all problems at once.
//! * Every input the hub reads from Redis or the chain is an `Option`: `None` means "could not
//!   be read" and denies under the rule that needed it (fail closed). "No key present" is the
//!   neutral value (clear breaker, cooldown 0, used 0) only while the bootstrap marker says the
//!   store was rebuilt from Postgres; without it the hub sets `state_unavailable` and every
//!   state rule denies ("policy state unavailable"), because a missing key may be a lost one.
//! * Notional is computed here from the action's decoded amounts (add: the deposited amounts;
//!   remove: the expected outputs), never taken from the caller:
//!   `ceil(base * mid_price_raw / 1e18) + quote`, in raw quote units, exact.
//! * `hold` writes nothing, so it is always allowed. Its amount rules are `skipped`; the
//!   state rules (allowlist, cooldown, oracle, gas, breaker) still run and report `warn`
//!   instead of `deny`, so a `hold` evaluation doubles as a risk check of the pool, and an
//!   oracle deviation found during it still asks for the breaker to trip.
//! * Evaluating changes nothing. [`RiskReport::trip_breaker`] reports what the pool monitor
//!   trips on ([`super::trip_reason`]), which only the monitor acts on; a trip persists, so a
//!   feed that recovers does not reopen writes by itself: an operator resumes the pool.
//! * The allowlist rule checks the pool against what its entry claims: chain, tokens, and the
//!   `version()` read from the pool, which must select (through the pool profiles) a profile
//!   of the entry's `pool_type`.
//! * Score: each rule gets a pressure 0-100, `ceil(100 * observed / limit)` capped at 100 for
//!   the limit rules (slippage, donation, balance, per-tx, per-day, deviation, gas), 0 for a
//!   passing yes/no rule
//!   (allowlist, cooldown, breaker) or a skipped one, and 100 for any deny or warn. The score
//!   is the maximum pressure: the risk is as high as the closest limit.

use alloy_primitives::{U256, U512};
use serde::{Deserialize, Serialize};

use super::health::{OracleCheck, bps_of, illiquidity, oracle_check, trip_reason};
use super::{ActionProposal, Limits, RiskReport, Rule, RuleCheck, RuleOutcome, Verdict};
use crate::config::{Allowlist, PoolEntry, PoolProfiles};
use crate::keys::BreakerState;
use crate::math::ONE;
use crate::schema::{Amount, OraclePrice, PoolState};
/// Wei per gwei.
const WEI_PER_GWEI: u128 = 1_000_000_000;

/// The outputs a simulation (or the exact math) expects from the proposed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExpectedOutcome {
    /// `add_liquidity`: shares the deposit mints to the recipient.
    Add {
        /// Expected shares.
        shares: Amount,
    },
    /// `remove_liquidity`: tokens the burn returns.
    Remove {
        /// Expected base, raw units.
        base: Amount,
        /// Expected quote, raw units.
        quote: Amount,
    },
}

/// What an add would give to the other LPs: the deposited amounts `buyShares` takes without
/// minting shares for them (`quote_add_liquidity`'s `base_donated` / `quote_donated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Donation {
    /// Base donated, raw units.
    pub base: Amount,
    /// Quote donated, raw units.
    pub quote: Amount,
}

/// What the executor (the account that would sign) holds, read at the state's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdings {
    /// Base token balance, raw units.
    pub base: Amount,
    /// Quote token balance, raw units.
    pub quote: Amount,
    /// LP shares of the pool; `None` for a pool without shares.
    pub shares: Option<Amount>,
}

/// Everything the policy looks at, as plain data the hub gathered.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The proposal under evaluation.
    pub proposal: &'a ActionProposal,
    /// The pool state the proposal was made against (its mid price values the action).
    pub state: &'a PoolState,
    /// The allowlist, which also carries each pool's limits.
    pub allowlist: &'a Allowlist,
    /// The pool profiles, which map the pool's `version()` to its family.
    pub profiles: &'a PoolProfiles,
    /// Simulated outputs of the action; `None` = unknown.
    pub expected: Option<ExpectedOutcome>,
    /// What an add donates to the other LPs; `None` = unknown (denies an add).
    pub donation: Option<Donation>,
    /// The executor's balances; `None` = no executor configured or unreadable (denies writes).
    pub holdings: Option<Holdings>,
    /// Set when the store's policy state cannot be trusted (the bootstrap marker is missing or
    /// of another version: Redis lost its keys), with why; every state rule then denies.
    pub state_unavailable: Option<&'a str>,
    /// Latest oracle observation; `None` = missing.
    pub oracle: Option<&'a OraclePrice>,
    /// The pool's breaker; `None` = unknown (store unreachable or value unparsable).
    pub breaker: Option<&'a BreakerState>,
    /// Unix time before which writes are blocked (0 when no cooldown); `None` = unknown.
    pub cooldown_until: Option<u64>,
    /// Notional already committed today, raw quote units; `None` = unknown.
    pub daily_used: Option<Amount>,
    /// Current gas price in wei; `None` = unknown.
    pub gas_price_wei: Option<u128>,
    /// Current Unix time, seconds.
    pub now: u64,
}

/// Quote-unit notional of `base` and `quote` at `mid_price_raw` (quote per base on raw units,
/// 1e18): `ceil(base * mid / 1e18) + quote`. `None` if it does not fit 256 bits.
pub fn notional_of(base: Amount, quote: Amount, mid_price_raw: Amount) -> Option<Amount> {
    let one = U512::from(ONE);
    let base_value = (U512::from(base.0) * U512::from(mid_price_raw.0)).div_ceil(one);
    let total = base_value + U512::from(quote.0);
    U256::checked_from_limbs_slice(total.as_limbs()).map(Amount)
}

/// One rule's raw result before hold/write handling.
enum Eval {
    Pass { detail: String, pressure: u8 },
    Deny(String),
    Skip(String),
}

fn pass(detail: String, pressure: u8) -> Eval {
    Eval::Pass { detail, pressure }
}

/// `ceil(100 * value / limit)` capped at 100; a zero limit is full pressure unless value is 0.
fn pressure(value: U512, limit: U512) -> u8 {
    if limit.is_zero() {
        return if value.is_zero() { 0 } else { 100 };
    }
    (value * U512::from(100u8))
        .div_ceil(limit)
        .saturating_to::<u8>()
        .min(100)
}

/// Denies when `value` exceeds `limit`, else passes with the pressure `value` puts on it.
fn within_limit(value: U512, limit: U512, detail: String) -> Eval {
    if value > limit {
        Eval::Deny(detail)
    } else {
        pass(detail, pressure(value, limit))
    }
}

/// Evaluates a proposal against the pool's limits and the observed state.
pub fn evaluate(input: &PolicyInput<'_>) -> RiskReport {
    let write = input.proposal.is_write();
    let entry = allowlist_entry(input);
    let notional = write.then(|| action_notional(input));

    let mut evals: Vec<(Rule, Eval)> = Vec::with_capacity(Rule::ALL.len());
    match &entry {
        Err(why) => {
            evals.push((Rule::Allowlist, Eval::Deny(why.clone())));
            for rule in &Rule::ALL[1..] {
                evals.push((
                    *rule,
                    Eval::Skip("no limits: the pool did not pass the allowlist".into()),
                ));
            }
        }
        Ok(entry) => {
            let limits = entry.effective_limits();
            evals.push((
                Rule::Allowlist,
                pass(
                    format!(
                        "pool {} allowlisted on {} (profile {})",
                        entry.address, input.allowlist.chain, entry.profile
                    ),
                    0,
                ),
            ));
            evals.push((
                Rule::OracleDeviation,
                oracle_deviation(input, entry, &limits),
            ));
            evals.push((Rule::CircuitBreaker, circuit_breaker(input, &limits)));
            evals.push((Rule::Cooldown, cooldown(input)));
            evals.push((Rule::GasCap, gas_cap(input, &limits)));
            match &notional {
                Some(notional) => {
                    evals.push((Rule::MaxSlippage, slippage(input, &limits)));
                    let (tx, day) = match notional {
                        Ok(n) => (per_tx(*n, &limits), per_day(input, *n, &limits)),
                        Err(why) => (Eval::Deny(why.clone()), Eval::Deny(why.clone())),
                    };
                    evals.push((Rule::MaxNotionalPerTx, tx));
                    evals.push((Rule::MaxNotionalPerDay, day));
                    evals.push((Rule::MaxDonation, donation(input, notional, &limits)));
                    evals.push((Rule::Balance, balance(input)));
                }
                None => {
                    for rule in [
                        Rule::MaxSlippage,
                        Rule::MaxNotionalPerTx,
                        Rule::MaxNotionalPerDay,
                        Rule::MaxDonation,
                        Rule::Balance,
                    ] {
                        evals.push((rule, Eval::Skip("hold moves no funds".into())));
                    }
                }
            }
        }
    }

    let rules: Vec<RuleCheck> = evals
        .into_iter()
        .map(|(rule, eval)| match eval {
            Eval::Pass { detail, pressure } => RuleCheck {
                rule,
                outcome: RuleOutcome::Pass,
                detail,
                pressure,
            },
            Eval::Deny(detail) => RuleCheck {
                rule,
                outcome: if write {
                    RuleOutcome::Deny
                } else {
                    RuleOutcome::Warn
                },
                detail,
                pressure: 100,
            },
            Eval::Skip(detail) => RuleCheck {
                rule,
                outcome: RuleOutcome::Skipped,
                detail,
                pressure: 0,
            },
        })
        .collect();

    // Deny by default: a write needs every rule to pass; anything else (deny, or a rule that
    // could not run) blocks it, and the first such rule decides.
    let decided_by = if write {
        rules
            .iter()
            .find(|c| c.outcome != RuleOutcome::Pass)
            .map(|c| c.rule)
    } else {
        None
    };
    let verdict = if decided_by.is_some() {
        Verdict::Deny
    } else {
        Verdict::Allow
    };
    let score = rules.iter().map(|c| c.pressure).max().unwrap_or(0);
    let trip_breaker = match &entry {
        Ok(entry) if !input.breaker.is_some_and(|b| b.tripped) => {
            trip_reason(input.state, entry, input.oracle, input.now)
        }
        _ => None,
    };
    RiskReport {
        verdict,
        decided_by,
        score,
        rules,
        trip_breaker,
        notional: notional.and_then(Result::ok),
    }
}

fn allowlist_entry<'a>(input: &PolicyInput<'a>) -> Result<&'a PoolEntry, String> {
    let state = input.state;
    if input.allowlist.chain != state.chain {
        return Err(format!(
            "state is from chain {} but the allowlist is for chain {}",
            state.chain, input.allowlist.chain
        ));
    }
    let target = input.proposal.pool().unwrap_or(state.pool_address);
    if target != state.pool_address {
        return Err(format!(
            "proposal targets pool {target} but the state was read from pool {}",
            state.pool_address
        ));
    }
    let entry = input
        .allowlist
        .pool(target)
        .ok_or_else(|| format!("pool {target} is not allowlisted on {}", state.chain))?;
    input
        .profiles
        .check_version(&state.version, entry.pool_type)
        .map_err(|why| format!("the pool's {why}, as the allowlist claims"))?;
    if entry.pool_type != state.pool_type {
        return Err(format!(
            "state was read as pool_type {} but the allowlist says {}",
            state.pool_type, entry.pool_type
        ));
    }
    if entry.base_token != state.base_token.address
        || entry.quote_token != state.quote_token.address
    {
        return Err(format!(
            "pool tokens {}/{} differ from the allowlisted {}/{}",
            state.base_token.address,
            state.quote_token.address,
            entry.base_token,
            entry.quote_token
        ));
    }
    Ok(entry)
}

/// The amounts that value a write: deposited amounts for an add, expected outputs for a remove
/// (its caller-set minimums could be 0 and would understate it).
fn action_notional(input: &PolicyInput<'_>) -> Result<Amount, String> {
    let (base, quote) = match (input.proposal, input.expected) {
        (
            ActionProposal::AddLiquidity {
                base_amount,
                quote_amount,
                ..
            },
            _,
        ) => (*base_amount, *quote_amount),
        (ActionProposal::RemoveLiquidity { .. }, Some(ExpectedOutcome::Remove { base, quote })) => {
            (base, quote)
        }
        (ActionProposal::RemoveLiquidity { .. }, _) => {
            return Err("expected outputs of the removal are unknown".into());
        }
        (ActionProposal::Hold { .. }, _) => return Ok(Amount::ZERO),
    };
    let Some(mid) = input.state.mid_price_raw else {
        let why = input
            .state
            .mid_price_undefined
            .as_deref()
            .unwrap_or("no mid price");
        return Err(format!("the base amount cannot be valued: {why}"));
    };
    if mid.is_zero() && !base.is_zero() {
        return Err("mid price is zero: the base amount cannot be valued".into());
    }
    notional_of(base, quote, mid).ok_or_else(|| "notional overflows 256 bits".to_owned())
}

fn slippage(input: &PolicyInput<'_>, limits: &Limits) -> Eval {
    // (label, expected, minimum) per output leg.
    let legs: Vec<(&str, Amount, Amount)> = match (input.proposal, input.expected) {
        (
            ActionProposal::AddLiquidity { min_shares, .. },
            Some(ExpectedOutcome::Add { shares }),
        ) => {
            vec![("shares", shares, *min_shares)]
        }
        (
            ActionProposal::RemoveLiquidity {
                min_base,
                min_quote,
                ..
            },
            Some(ExpectedOutcome::Remove { base, quote }),
        ) => vec![("base", base, *min_base), ("quote", quote, *min_quote)],
        (_, None) => return Eval::Deny("expected outputs are unknown (no simulation)".into()),
        (_, Some(_)) => {
            return Eval::Deny("expected outputs are for a different kind of action".into());
        }
    };
    if legs.iter().all(|(_, expected, _)| expected.is_zero()) {
        return Eval::Deny("the action is expected to return nothing".into());
    }
    let mut worst = U512::ZERO;
    let mut details = Vec::with_capacity(legs.len());
    for (label, expected, minimum) in legs {
        let bps = if minimum >= expected {
            U512::ZERO
        } else {
            bps_of(U512::from(expected.0 - minimum.0), U512::from(expected.0))
        };
        details.push(format!(
            "{label} min {minimum} vs expected {expected}: {bps} bps"
        ));
        worst = worst.max(bps);
    }
    let limit = U512::from(limits.max_slippage_bps);
    let detail = format!(
        "{}; max {} bps",
        details.join(", "),
        limits.max_slippage_bps
    );
    within_limit(worst, limit, detail)
}

fn per_tx(notional: Amount, limits: &Limits) -> Eval {
    let detail = format!(
        "notional {notional} vs max {} (raw quote units)",
        limits.max_notional_per_tx
    );
    within_limit(
        U512::from(notional.0),
        U512::from(limits.max_notional_per_tx.0),
        detail,
    )
}

/// The deny of a state rule while the policy state is unavailable.
fn state_unavailable(input: &PolicyInput<'_>) -> Option<Eval> {
    input
        .state_unavailable
        .map(|why| Eval::Deny(format!("policy state unavailable: {why}")))
}

fn per_day(input: &PolicyInput<'_>, notional: Amount, limits: &Limits) -> Eval {
    if let Some(deny) = state_unavailable(input) {
        return deny;
    }
    let Some(used) = input.daily_used else {
        return Eval::Deny("notional committed today is unknown".into());
    };
    let total = U512::from(used.0) + U512::from(notional.0);
    let detail = format!(
        "used {used} + this {notional} = {total} vs max {} per day (raw quote units)",
        limits.max_notional_per_day
    );
    within_limit(total, U512::from(limits.max_notional_per_day.0), detail)
}

fn cooldown(input: &PolicyInput<'_>) -> Eval {
    if let Some(deny) = state_unavailable(input) {
        return deny;
    }
    match input.cooldown_until {
        None => Eval::Deny("cooldown state is unknown".into()),
        Some(until) if input.now < until => Eval::Deny(format!(
            "cooling down until {until} ({}s left)",
            until - input.now
        )),
        Some(until) => pass(
            format!("no cooldown active (until {until}, now {})", input.now),
            0,
        ),
    }
}

fn oracle_deviation(input: &PolicyInput<'_>, entry: &PoolEntry, limits: &Limits) -> Eval {
    match oracle_check(input.state, entry, input.oracle, input.now) {
        OracleCheck::Pass {
            deviation_bps,
            detail,
        } => pass(
            detail,
            pressure(deviation_bps, U512::from(limits.oracle_deviation_bps)),
        ),
        OracleCheck::Deny(detail) | OracleCheck::Trip { detail, .. } => Eval::Deny(detail),
    }
}

fn gas_cap(input: &PolicyInput<'_>, limits: &Limits) -> Eval {
    let Some(gas) = input.gas_price_wei else {
        return Eval::Deny("gas price is unknown".into());
    };
    let cap = u128::from(limits.gas_cap_gwei) * WEI_PER_GWEI;
    let detail = format!("gas price {gas} wei vs cap {} gwei", limits.gas_cap_gwei);
    within_limit(U512::from(gas), U512::from(cap), detail)
}

fn circuit_breaker(input: &PolicyInput<'_>, limits: &Limits) -> Eval {
    if let Some(deny) = state_unavailable(input) {
        return deny;
    }
    match input.breaker {
        None => Eval::Deny("breaker state is unknown".into()),
        Some(b) if b.tripped => Eval::Deny(format!("tripped at {}: {}", b.ts, b.reason)),
        Some(_) => match illiquidity(input.state, limits) {
            Some(why) => Eval::Deny(format!("pool illiquid: {why}")),
            None => pass("not tripped".into(), 0),
        },
    }
}

fn donation(input: &PolicyInput<'_>, notional: &Result<Amount, String>, limits: &Limits) -> Eval {
    if !matches!(input.proposal, ActionProposal::AddLiquidity { .. }) {
        return pass("only an add can donate".into(), 0);
    }
    let Some(d) = input.donation else {
        return Eval::Deny("what the deposit would donate is unknown".into());
    };
    let notional = match notional {
        Ok(n) => *n,
        Err(why) => return Eval::Deny(why.clone()),
    };
    let mid = input.state.mid_price_raw.unwrap_or(Amount::ZERO);
    let Some(donated) = notional_of(d.base, d.quote, mid) else {
        return Eval::Deny("donated notional overflows 256 bits".into());
    };
    let bps = if notional.is_zero() {
        U512::ZERO
    } else {
        bps_of(U512::from(donated.0), U512::from(notional.0))
    };
    let detail = format!(
        "donates base {} + quote {} = {donated} of notional {notional}: {bps} bps, max {} bps",
        d.base, d.quote, limits.max_donation_bps
    );
    within_limit(bps, U512::from(limits.max_donation_bps), detail)
}

fn balance(input: &PolicyInput<'_>) -> Eval {
    let Some(h) = input.holdings else {
        return Eval::Deny(
            "the executor's balances are unknown (no executor configured, or unreadable)".into(),
        );
    };
    // (label, needed, held) per leg.
    let legs: Vec<(&str, Amount, Amount)> = match input.proposal {
        ActionProposal::AddLiquidity {
            base_amount,
            quote_amount,
            ..
        } => vec![
            ("base", *base_amount, h.base),
            ("quote", *quote_amount, h.quote),
        ],
        ActionProposal::RemoveLiquidity { shares, .. } => match h.shares {
            Some(held) => vec![("shares", *shares, held)],
            None => return Eval::Deny("the pool issues no LP shares to burn".into()),
        },
        ActionProposal::Hold { .. } => return Eval::Skip("hold moves no funds".into()),
    };
    let mut worst = 0u8;
    let mut details = Vec::with_capacity(legs.len());
    let mut short = false;
    for (label, needed, held) in legs {
        short |= needed > held;
        worst = worst.max(pressure(U512::from(needed.0), U512::from(held.0)));
        details.push(format!("{label} {needed} of {held} held"));
    }
    let detail = format!("executor: {}", details.join(", "));
    if short {
        Eval::Deny(detail)
    } else {
        pass(detail, worst)
    }
}

#[cfg(test)]
mod tests;
