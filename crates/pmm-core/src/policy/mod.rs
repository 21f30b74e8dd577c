//! Policy: the proposal and risk-report types, and a pure, deny-by-default evaluation.
//!
//! Units: every notional is in **raw quote-token units** (an exact [`Amount`]), so limits are
//! compared with integers and no float or decimal conversion can be gamed. A limit of
//! 1,000 USDC (6 decimals) is written `"1000000000"`.

mod evaluate;
mod health;

use std::fmt;

use alloy_primitives::Address;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use evaluate::{Donation, ExpectedOutcome, Holdings, PolicyInput, evaluate, notional_of};
pub use health::{
    MAX_FEED_CLOCK_SKEW_S, OracleCheck, balanced_deposit, illiquidity, oracle_check, trip_reason,
};

use crate::config::de;
use crate::schema::{Amount, address_schema};

/// Per-pool limits (from the allowlist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted gap between expected and minimum outputs, in basis points (<= 10000).
    #[serde(deserialize_with = "de::bps")]
    pub max_slippage_bps: u32,
    /// Largest notional of one action, raw quote units.
    pub max_notional_per_tx: Amount,
    /// Largest notional per UTC day (already committed + this action), raw quote units.
    pub max_notional_per_day: Amount,
    /// Minimum seconds between two writes to the pool (the hub sets the cooldown key).
    #[serde(deserialize_with = "de::non_negative_u64")]
    pub cooldown_s: u64,
    /// Largest accepted gap between mid price and oracle price, in basis points of the oracle.
    #[serde(deserialize_with = "de::bps")]
    pub oracle_deviation_bps: u32,
    /// Oldest accepted oracle observation, seconds.
    #[serde(deserialize_with = "de::non_negative_u64")]
    pub oracle_max_age_s: u64,
    /// Highest accepted gas price, gwei.
    #[serde(deserialize_with = "de::non_negative_u64")]
    pub gas_cap_gwei: u64,
    /// Largest share of an add's notional that may be donated to the other LPs (the part of
    /// an unbalanced deposit `buyShares` takes without minting shares for it), basis points.
    #[serde(default = "default_max_donation_bps", deserialize_with = "de::bps")]
    pub max_donation_bps: u32,
    /// Base reserve below which the pool counts as illiquid and its breaker trips, raw units;
    /// 0 (the default) sets no floor.
    #[serde(default)]
    pub min_base_reserve: Amount,
    /// Quote reserve below which the pool counts as illiquid and its breaker trips, raw units;
    /// 0 (the default) sets no floor.
    #[serde(default)]
    pub min_quote_reserve: Amount,
}

/// Default of [`Limits::max_donation_bps`]: 0.1% of the deposit.
pub const DEFAULT_MAX_DONATION_BPS: u32 = 10;

fn default_max_donation_bps() -> u32 {
    DEFAULT_MAX_DONATION_BPS
}

/// What the agent proposes for one pool. `hold` writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionProposal {
    /// Do nothing this tick.
    Hold {
        /// Why.
        #[schemars(length(max = 500))]
        reason: String,
    },
    /// Deposit base and quote for LP shares.
    AddLiquidity {
        /// Target pool.
        #[serde(with = "crate::schema::addr")]
        #[schemars(schema_with = "address_schema")]
        pool: Address,
        /// Base to deposit, raw units.
        base_amount: Amount,
        /// Quote to deposit, raw units.
        quote_amount: Amount,
        /// Fewest shares accepted (slippage bound).
        min_shares: Amount,
        /// Why.
        #[schemars(length(max = 500))]
        reason: String,
    },
    /// Burn LP shares for base and quote.
    RemoveLiquidity {
        /// Target pool.
        #[serde(with = "crate::schema::addr")]
        #[schemars(schema_with = "address_schema")]
        pool: Address,
        /// Shares to burn.
        shares: Amount,
        /// Least base accepted, raw units.
        min_base: Amount,
        /// Least quote accepted, raw units.
        min_quote: Amount,
        /// Why.
        #[schemars(length(max = 500))]
        reason: String,
    },
}

impl ActionProposal {
    /// The targeted pool; `None` for `hold`.
    pub fn pool(&self) -> Option<Address> {
        match self {
            Self::Hold { .. } => None,
            Self::AddLiquidity { pool, .. } | Self::RemoveLiquidity { pool, .. } => Some(*pool),
        }
    }

    /// Whether executing the proposal writes to the chain.
    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Hold { .. })
    }

    /// The stated reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Hold { reason }
            | Self::AddLiquidity { reason, .. }
            | Self::RemoveLiquidity { reason, .. } => reason,
        }
    }
}

/// A policy rule, in evaluation order. The snake_case names are stable: they are stored in
/// decision logs and shown to operators.
///
/// The order puts what makes the pool itself unusable (wrong pool, no usable price, closed
/// breaker) before the rules that judge the action's amounts: an amount rule values the action
/// at the pool's price, so when that price cannot be trusted its verdict means nothing, and the
/// rule that decides must say why the pool is closed, not that an amount is off. The live price
/// check comes before the breaker, which latches earlier findings: a deviation the monitor has
/// just tripped on is still named as the deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The pool (and chain) must be allowlisted and match the state read.
    Allowlist,
    /// A fresh, independent feed must agree with the mid price within `oracle_deviation_bps`;
    /// a pool priced only by its own oracle (V1, DPP Oracle) without a configured feed denies
    /// ("no independent reference price"). A deviation or a stale, missing, zero or negative
    /// feed is also what the pool monitor trips the breaker on.
    OracleDeviation,
    /// The pool's circuit breaker (and the global pause) must not be tripped, the policy state
    /// must be available (Redis bootstrapped from Postgres), and the pool must not be
    /// illiquid.
    CircuitBreaker,
    /// No write before the pool's cooldown ends.
    Cooldown,
    /// The gas price must not exceed `gas_cap_gwei`.
    GasCap,
    /// Minimum outputs must be within `max_slippage_bps` of the expected outputs.
    MaxSlippage,
    /// The action's notional must not exceed `max_notional_per_tx`.
    MaxNotionalPerTx,
    /// Committed-today + this notional must not exceed `max_notional_per_day`.
    MaxNotionalPerDay,
    /// An add must not donate more than `max_donation_bps` of its notional to the other LPs.
    MaxDonation,
    /// Deposits must not exceed the executor's token balances, burns not its shares; with no
    /// executor configured every write denies here.
    Balance,
}

impl Rule {
    /// Every rule, in evaluation order.
    pub const ALL: [Rule; 10] = [
        Rule::Allowlist,
        Rule::OracleDeviation,
        Rule::CircuitBreaker,
        Rule::Cooldown,
        Rule::GasCap,
        Rule::MaxSlippage,
        Rule::MaxNotionalPerTx,
        Rule::MaxNotionalPerDay,
        Rule::MaxDonation,
        Rule::Balance,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowlist => "allowlist",
            Self::MaxSlippage => "max_slippage",
            Self::MaxNotionalPerTx => "max_notional_per_tx",
            Self::MaxNotionalPerDay => "max_notional_per_day",
            Self::MaxDonation => "max_donation",
            Self::Balance => "balance",
            Self::Cooldown => "cooldown",
            Self::OracleDeviation => "oracle_deviation",
            Self::GasCap => "gas_cap",
            Self::CircuitBreaker => "circuit_breaker",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The action may proceed to signing.
    Allow,
    /// The action must not be executed.
    Deny,
}

/// How one rule came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleOutcome {
    /// Checked and satisfied.
    Pass,
    /// Checked and violated (or its input was unknown): blocks a write.
    Deny,
    /// Would deny a write, but the proposal is `hold`, which writes nothing: advisory only.
    Warn,
    /// Not applicable: `hold` has no amounts, or the pool has no limits (not allowlisted).
    Skipped,
}

/// One evaluated rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleCheck {
    /// Which rule.
    pub rule: Rule,
    /// Its outcome.
    pub outcome: RuleOutcome,
    /// Human-readable values behind the outcome.
    pub detail: String,
    /// How close the observed value is to the limit, 0-100 (100 = at or past it, or denied).
    #[schemars(range(max = 100))]
    pub pressure: u8,
}

/// The policy's full answer for one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RiskReport {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The first rule (in evaluation order) that denied; `None` when allowed.
    pub decided_by: Option<Rule>,
    /// Risk score 0-100: the highest `pressure` of any rule (see [`RuleCheck::pressure`]).
    #[schemars(range(max = 100))]
    pub score: u8,
    /// Every rule in evaluation order.
    pub rules: Vec<RuleCheck>,
    /// What the pool monitor trips (or has tripped) the breaker on for this state, with the
    /// reason it stores: an allowlisted pool whose oracle deviates from the mid price, whose
    /// feed is stale, missing, zero or negative, or whose reserves fell below their floors;
    /// `None` when the breaker is already tripped or the pool is healthy. Advisory: evaluating
    /// a proposal changes nothing, only the monitor trips.
    pub trip_breaker: Option<String>,
    /// The action's notional in raw quote units, when it could be computed; the amount to
    /// reserve in the daily window before signing.
    pub notional: Option<Amount>,
}

impl RiskReport {
    /// The check of one rule.
    pub fn check(&self, rule: Rule) -> Option<&RuleCheck> {
        self.rules.iter().find(|c| c.rule == rule)
    }
}
