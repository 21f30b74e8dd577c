//! The normalized pool-state schema the agent sees, and its exact building blocks.
//!
//! Floats in [`PoolState`] are for display only; every value that feeds math or policy also
//! travels exactly as an [`Amount`] (decimal string) so no consumer rounds it.

pub mod addr;
mod amount;
mod normalize;

use std::borrow::Cow;
use std::fmt;

use alloy_primitives::Address;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use amount::{Amount, AmountError};
pub use normalize::{MAX_DECIMALS, OracleRead, RawPoolRead, SchemaError, normalize};

use crate::math::{Generation, PmmState, RState};

/// JSON Schema of an EVM address as the schema's types serialize it.
pub(crate) fn address_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^0x[0-9a-fA-F]{40}$",
        "description": "20-byte EVM address, 0x-prefixed hex (EIP-55 checksummed on output)."
    })
}

/// A chain's short name (`devnet`, `ethereum`, `bsc`): lowercase ASCII letters, digits, `-`, `_`,
/// 1 to 32 characters. The restriction keeps Redis keys built from it unambiguous (no `:`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainName(String);

/// Why a string is not a valid [`ChainName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid chain name {0:?}: expected 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
)]
pub struct ChainNameError(pub String);

impl ChainName {
    /// Validates and wraps a chain name.
    pub fn new(name: impl Into<String>) -> Result<Self, ChainNameError> {
        let name = name.into();
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if first_ok && name.len() <= 32 && name.chars().all(valid_char) {
            Ok(Self(name))
        } else {
            Err(ChainNameError(name.chars().take(64).collect()))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChainName {
    type Error = ChainNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ChainName> for String {
    fn from(value: ChainName) -> Self {
        value.0
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for ChainName {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("ChainName")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$",
            "description": "Short chain name, e.g. devnet, ethereum, bsc."
        })
    }
}

/// The DODO pool family, which decides the contract interface and the math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolType {
    /// DODO Vending Machine (V2).
    Dvm,
    /// DODO Stable Pool (V2).
    Dsp,
    /// DODO Private Pool, including DPP Advanced (V2).
    Dpp,
    /// DODO Private Pool whose guide price comes from an oracle (V2).
    DppOracle,
    /// Gas Saving Pool (V2 family).
    Gsp,
    /// DODO classic (V1) pool.
    V1,
}

impl PoolType {
    /// The snake_case name used in JSON and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dvm => "dvm",
            Self::Dsp => "dsp",
            Self::Dpp => "dpp",
            Self::DppOracle => "dpp_oracle",
            Self::Gsp => "gsp",
            Self::V1 => "v1",
        }
    }

    /// Whether the pool uses the V2 interface and math (everything but V1).
    pub fn is_v2(self) -> bool {
        self != Self::V1
    }
}

impl fmt::Display for PoolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a pool's reference price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OracleKind {
    /// A Chainlink-style aggregator: `latestRoundData()` answer in whole-token units (quote per
    /// base, e.g. 2000.5 USD per ETH) with the feed's own `decimals()`.
    Chainlink,
    /// A DODO V1 pool's `getOraclePrice()`: already quote per base on raw units, 1e18 scale.
    V1,
    /// A DPP Oracle pool's oracle `prices(base)`: already quote per base on raw units, 1e18 scale.
    DppOracle,
}

impl OracleKind {
    /// The snake_case name used in JSON and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chainlink => "chainlink",
            Self::V1 => "v1",
            Self::DppOracle => "dpp_oracle",
        }
    }

    /// Whether the answer is in whole-token units and needs the tokens' decimals to reach the
    /// raw-unit scale that DODO prices use.
    pub fn quotes_whole_tokens(self) -> bool {
        self == Self::Chainlink
    }
}

/// An ERC-20 token as the pool sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    /// Token contract address.
    #[serde(with = "addr")]
    #[schemars(schema_with = "address_schema")]
    pub address: Address,
    /// Display symbol, sanitized: it comes from an untrusted contract and reaches an LLM prompt.
    pub symbol: String,
    /// ERC-20 decimals (at most [`MAX_DECIMALS`]).
    pub decimals: u8,
}

/// The raw PMM state, exactly as `getPMMStateForCall()` returns it; field names follow DODO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PmmRaw {
    /// Guide price: quote per base on raw units, 1e18 fixed point.
    pub i: Amount,
    /// Curvature, 1e18 fixed point in [0, 1e18].
    #[serde(rename = "K")]
    pub k: Amount,
    /// Base reserve (raw units).
    #[serde(rename = "B")]
    pub b: Amount,
    /// Quote reserve (raw units).
    #[serde(rename = "Q")]
    pub q: Amount,
    /// Base regression target (raw units).
    #[serde(rename = "B0")]
    pub b0: Amount,
    /// Quote regression target (raw units).
    #[serde(rename = "Q0")]
    pub q0: Amount,
    /// Side of equilibrium.
    #[serde(rename = "R")]
    pub r: RState,
}

impl From<PmmState> for PmmRaw {
    fn from(s: PmmState) -> Self {
        Self {
            i: Amount(s.i),
            k: Amount(s.k),
            b: Amount(s.b),
            q: Amount(s.q),
            b0: Amount(s.b0),
            q0: Amount(s.q0),
            r: s.r,
        }
    }
}

impl From<PmmRaw> for PmmState {
    fn from(s: PmmRaw) -> Self {
        Self {
            i: s.i.0,
            k: s.k.0,
            b: s.b.0,
            q: s.q.0,
            b0: s.b0.0,
            q0: s.q0.0,
            r: s.r,
        }
    }
}

/// The pool's vault reserves (`getVaultReserve()`), exact raw units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reserves {
    /// Base token reserve.
    pub base: Amount,
    /// Quote token reserve.
    pub quote: Amount,
}

/// An oracle observation normalized to DODO's price scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OraclePrice {
    /// Which kind of feed produced it.
    pub kind: OracleKind,
    /// Quote per base in whole tokens (display only).
    pub price: f64,
    /// Quote per base on raw units, 1e18 fixed point (floor): comparable with `mid_price_raw`.
    pub price_raw: Amount,
    /// Unix time of the feed's last update.
    pub updated_at: u64,
}

/// One pool at one block, normalized for the agent and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PoolState {
    /// Pool contract address.
    #[serde(with = "addr")]
    #[schemars(schema_with = "address_schema")]
    pub pool_address: Address,
    /// Chain short name.
    pub chain: ChainName,
    /// Pool family.
    pub pool_type: PoolType,
    /// Template generation ("2021" or "2024") whose rules price the pool, read from the
    /// template its EIP-1167 clone delegates to (`version()` is the same for both); `null` for
    /// V1 pools, which have one set of rules.
    pub generation: Option<Generation>,
    /// Name of the profile (config/pool_profiles.json) used to read the pool.
    pub profile: String,
    /// The pool's `version()` string, sanitized.
    pub version: String,
    /// Base token.
    pub base_token: TokenInfo,
    /// Quote token.
    pub quote_token: TokenInfo,
    /// Block the state was read at.
    pub block_number: u64,
    /// That block's Unix timestamp.
    pub timestamp: u64,
    /// Mid price, quote per base in whole tokens (display only); `null` when undefined.
    pub mid_price: Option<f64>,
    /// Mid price from `getMidPrice()`: quote per base on raw units, 1e18 fixed point; `null`
    /// when `getMidPrice()` reverts (every empty pool's does), `mid_price_undefined` says why.
    pub mid_price_raw: Option<Amount>,
    /// Why the pool has no mid price (and so no inventory ratio), when it has none: the policy
    /// denies every write whose checks need one.
    pub mid_price_undefined: Option<String>,
    /// Reference price from the pool's oracle, when it has one and its answer is usable.
    pub oracle_price: Option<OraclePrice>,
    /// Why the oracle's answer is unusable (zero or negative, decimals out of range, a price
    /// that rounds to zero or overflows), when it is: `oracle_price` is then `null`, the
    /// policy denies writes and the pool monitor trips the breaker.
    pub oracle_unusable: Option<String>,
    /// Share of the pool's value held in base: base_value / (base_value + quote_value) with
    /// base_value = base reserve x mid price. `null` when both values are zero (an empty pool
    /// has no inventory; reporting 0.5 would claim a balance that does not exist).
    pub inventory_ratio: Option<f64>,
    /// Base reserve in whole tokens (display only).
    pub liquidity_base: f64,
    /// Quote reserve in whole tokens (display only).
    pub liquidity_quote: f64,
    /// Curvature K as a fraction in [0, 1] (display only).
    pub k: f64,
    /// Total fee rate (LP + maintainer) for the reading account, as a fraction (display only).
    pub fee_rate: f64,
    /// LP fee rate, 1e18 fixed point.
    pub lp_fee_rate: Amount,
    /// Maintainer fee rate for the reading account, 1e18 fixed point.
    pub mt_fee_rate: Amount,
    /// Vault reserves, exact.
    pub reserves: Reserves,
    /// Raw PMM state, exact.
    pub pmm: PmmRaw,
}

impl PoolState {
    /// The PMM state in the math module's form.
    pub fn pmm_state(&self) -> PmmState {
        self.pmm.into()
    }
}

/// JSON Schema (draft 2020-12) of [`PoolState`], for MCP tool output schemas.
pub fn pool_state_schema() -> serde_json::Value {
    schemars::schema_for!(PoolState).to_value()
}

/// JSON Schema (draft 2020-12) of [`crate::policy::ActionProposal`], for structured LLM output.
pub fn action_proposal_schema() -> serde_json::Value {
    schemars::schema_for!(crate::policy::ActionProposal).to_value()
}

/// JSON Schema (draft 2020-12) of [`crate::policy::RiskReport`], for MCP tool output schemas.
pub fn risk_report_schema() -> serde_json::Value {
    schemars::schema_for!(crate::policy::RiskReport).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_restricted() {
        assert!(ChainName::new("devnet").is_ok());
        assert!(ChainName::new("bsc-test_2").is_ok());
        for bad in ["", "Devnet", "dev:net", "-x", "a b", &"x".repeat(33)] {
            assert!(ChainName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<ChainName>("\"cb:x\"").is_err());
    }

    #[test]
    fn pool_type_names_are_stable() {
        for (t, name) in [
            (PoolType::Dvm, "dvm"),
            (PoolType::Dsp, "dsp"),
            (PoolType::Dpp, "dpp"),
            (PoolType::DppOracle, "dpp_oracle"),
            (PoolType::Gsp, "gsp"),
            (PoolType::V1, "v1"),
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), name);
            assert_eq!(t.as_str(), name);
            assert_eq!(
                serde_json::from_value::<PoolType>(serde_json::json!(name)).unwrap(),
                t
            );
        }
    }

    #[test]
    fn schemas_are_objects_with_the_documented_fields() {
        let s = pool_state_schema();
        assert_eq!(s["type"], "object");
        let props = s["properties"].as_object().unwrap();
        for field in [
            "pool_address",
            "chain",
            "base_token",
            "quote_token",
            "mid_price",
            "mid_price_raw",
            "mid_price_undefined",
            "oracle_price",
            "oracle_unusable",
            "inventory_ratio",
            "liquidity_base",
            "liquidity_quote",
            "k",
            "fee_rate",
            "timestamp",
            "block_number",
            "pool_type",
            "generation",
            "profile",
            "lp_fee_rate",
            "mt_fee_rate",
            "pmm",
        ] {
            assert!(props.contains_key(field), "missing {field}");
        }
        assert_eq!(props["pool_address"]["pattern"], "^0x[0-9a-fA-F]{40}$");
        assert_eq!(risk_report_schema()["type"], "object");
        let action = action_proposal_schema().to_string();
        assert!(action.contains("add_liquidity") && action.contains("remove_liquidity"));
    }
}
