//! Plain data returned by the chain layer: raw on-chain values, no interpretation.

use alloy::primitives::{Address, B256, I256, U256};
use pmm_core::math::Generation;
pub use pmm_core::schema::PoolType;
use pmm_core::templates::TemplateCode;
use serde::{Deserialize, Serialize};

/// Whether a pool family mints LP shares (`totalSupply`, `buyShares`, `sellShares`).
pub fn has_shares(kind: PoolType) -> bool {
    matches!(kind, PoolType::Dvm | PoolType::Dsp | PoolType::Gsp)
}

/// Whether a pool family stores `_BASE_TARGET_`, `_QUOTE_TARGET_` and `_I_` that share math needs.
pub fn stores_targets(kind: PoolType) -> bool {
    matches!(
        kind,
        PoolType::Dsp | PoolType::Gsp | PoolType::Dpp | PoolType::DppOracle
    )
}

/// What a read needs to know about a pool besides its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadSpec {
    /// Pool address.
    pub pool: Address,
    /// Its family, from the pool profile.
    pub kind: PoolType,
    /// A Chainlink-style feed to read in the same batch, if the profile names one.
    pub feed: Option<Address>,
    /// Trader whose fee rates `getUserFeeRate` reports (fees are per trader on DODO V2).
    pub fee_trader: Address,
}

/// Address, symbol and decimals of one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token contract.
    pub address: Address,
    /// `symbol()`, when the token answers it as a string.
    pub symbol: Option<String>,
    /// `decimals()`.
    pub decimals: u8,
}

/// The block a read was pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp, seconds.
    pub timestamp: u64,
}

/// `getPMMStateForCall()` exactly as returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPmmState {
    /// Guide price.
    pub i: U256,
    /// Curvature.
    pub k: U256,
    /// Base reserve.
    pub b: U256,
    /// Quote reserve.
    pub q: U256,
    /// Base target.
    pub b0: U256,
    /// Quote target.
    pub q0: U256,
    /// R state as a number (0, 1, 2).
    pub r: U256,
}

/// V1 getters exactly as returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawV1State {
    /// `_BASE_BALANCE_`.
    pub base_balance: U256,
    /// `_QUOTE_BALANCE_`.
    pub quote_balance: U256,
    /// `_TARGET_BASE_TOKEN_AMOUNT_`.
    pub target_base: U256,
    /// `_TARGET_QUOTE_TOKEN_AMOUNT_`.
    pub target_quote: U256,
    /// `getExpectedTarget()` base.
    pub expected_target_base: U256,
    /// `getExpectedTarget()` quote.
    pub expected_target_quote: U256,
    /// `_K_`.
    pub k: U256,
    /// `_LP_FEE_RATE_`.
    pub lp_fee_rate: U256,
    /// `_MT_FEE_RATE_`.
    pub mt_fee_rate: U256,
    /// `_R_STATUS_`.
    pub r_status: u8,
    /// `getOraclePrice()`.
    pub oracle_price: U256,
}

/// One `latestRoundData()` plus the feed's decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedRead {
    /// Feed contract.
    pub feed: Address,
    /// Round id.
    pub round_id: u128,
    /// Answer, scaled by `decimals`.
    pub answer: I256,
    /// `updatedAt`, seconds.
    pub updated_at: u64,
    /// Feed decimals.
    pub decimals: u8,
}

/// Everything one batched read returns about a pool at one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRead {
    /// Pool address.
    pub pool: Address,
    /// Family it was read as.
    pub kind: PoolType,
    /// Chain id of the node.
    pub chain_id: u64,
    /// Block every value was read at.
    pub block: BlockRef,
    /// `version()` (string on V2, the number as text on V1).
    pub version: Option<String>,
    /// Base token.
    pub base_token: TokenInfo,
    /// Quote token.
    pub quote_token: TokenInfo,
    /// `_MAINTAINER_` (V2).
    pub maintainer: Option<Address>,
    /// `getPMMStateForCall()` (V2).
    pub pmm: Option<RawPmmState>,
    /// `getMidPrice()`; `None` when it reverts (a DVM with an empty side).
    pub mid_price: Option<U256>,
    /// `getVaultReserve()` (V2).
    pub vault_reserve: Option<(U256, U256)>,
    /// `getUserFeeRate(fee_trader)` as (lp, mt) on V2; `_LP_FEE_RATE_`, `_MT_FEE_RATE_` on V1.
    pub fee_rates: (U256, U256),
    /// Trader the fee rates apply to.
    pub fee_trader: Address,
    /// Stored `_BASE_TARGET_`, `_QUOTE_TARGET_` (DSP, GSP, DPP*): share math needs them unadjusted.
    pub stored_targets: Option<(U256, U256)>,
    /// Stored `_I_` (a DSP first deposit prices shares with it).
    pub stored_i: Option<U256>,
    /// `_BLOCK_TIMESTAMP_LAST_` of a pool with TWAP on (`_IS_OPEN_TWAP_`); `None` when off or
    /// for families without LP shares. Every write of such a pool prices its new state.
    pub twap_last_update: Option<u32>,
    /// `totalSupply()` of LP shares (DVM, DSP, GSP).
    pub total_shares: Option<U256>,
    /// `base.balanceOf(pool)`.
    pub base_balance: U256,
    /// `quote.balanceOf(pool)`.
    pub quote_balance: U256,
    /// `_IS_ORACLE_ENABLED` (DPP oracle).
    pub oracle_enabled: Option<bool>,
    /// `_O_` (DPP oracle) or `_ORACLE_` (V1).
    pub oracle: Option<Address>,
    /// The pool's own oracle answer, 1e18 on raw units: `prices(base)` of `_O_` (DPP oracle)
    /// or `getOraclePrice()` (V1).
    pub oracle_price: Option<U256>,
    /// V1 getters.
    pub v1: Option<RawV1State>,
    /// The configured feed, read in the same batch.
    pub feed: Option<FeedRead>,
}

/// JSON Schema of an address as serde writes it.
fn address_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"})
}

/// JSON Schema of an optional address as serde writes it.
fn opt_address_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": "^0x[0-9a-fA-F]{40}$"
    })
}

/// JSON Schema of an optional 32-byte hash as serde writes it.
fn opt_hash_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": "^0x[0-9a-f]{64}$"
    })
}

/// Result of probing an address for DODO pool interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InterfaceReport {
    /// Address probed.
    #[schemars(schema_with = "address_schema")]
    pub pool: Address,
    /// Getters that answered with a decodable value.
    pub functions_found: Vec<String>,
    /// Best guess at the pool family.
    pub detected_profile: DetectedProfile,
    /// `version()` text, if any.
    pub version: Option<String>,
    /// Why the guess was made, and anything odd seen.
    pub notes: Vec<String>,
    /// The implementation the pool's code delegates to, when that code is an EIP-1167 clone.
    #[schemars(schema_with = "opt_address_schema")]
    pub template: Option<Address>,
    /// keccak256 of the template's runtime code; `null` without a template or code there.
    #[schemars(schema_with = "opt_hash_schema")]
    pub template_code_hash: Option<B256>,
    /// The template generation whose rules the pool runs, from the chain's table of known
    /// templates (filled in by its holder, the hub); `null` when unknown or for V1 pools.
    pub generation: Option<Generation>,
}

impl InterfaceReport {
    /// What the pool's code says about its template, for a [`pmm_core::templates::TemplateTable`].
    pub fn template_code(&self) -> TemplateCode {
        match self.template {
            None => TemplateCode::NotAClone,
            Some(address) => TemplateCode::Clone {
                address,
                code_hash: self.template_code_hash,
            },
        }
    }
}

/// Identification verdict: a known family or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectedProfile {
    /// DODO V2 DVM.
    Dvm,
    /// DODO V2 DSP.
    Dsp,
    /// DODO V2 DPP or DPP Advanced.
    Dpp,
    /// DODO V2 DPP Oracle.
    DppOracle,
    /// DODO V2 GSP.
    Gsp,
    /// DODO V1 classic pool.
    V1,
    /// Not a pool this project can read (EOA, token, other contract).
    Unknown,
}

impl DetectedProfile {
    /// The readable family, if any.
    pub fn kind(self) -> Option<PoolType> {
        match self {
            Self::Dvm => Some(PoolType::Dvm),
            Self::Dsp => Some(PoolType::Dsp),
            Self::Dpp => Some(PoolType::Dpp),
            Self::DppOracle => Some(PoolType::DppOracle),
            Self::Gsp => Some(PoolType::Gsp),
            Self::V1 => Some(PoolType::V1),
            Self::Unknown => None,
        }
    }
}
