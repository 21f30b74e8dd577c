//! Pool profiles: for each pool family, the contract methods to call for each purpose and the
//! `version()` strings that identify it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

use super::{ConfigError, parse_json};
use crate::schema::PoolType;

/// What a contract method is used for. The chain layer asks a profile for a purpose and gets
/// the Solidity signature to encode; return shapes are fixed per purpose in the chain layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// `version()`: identifies the pool family.
    Version,
    /// Base token address getter.
    BaseToken,
    /// Quote token address getter.
    QuoteToken,
    /// Mid price getter (quote per base, raw units, 1e18).
    MidPrice,
    /// V2 PMM state `(i, K, B, Q, B0, Q0, R)`.
    State,
    /// V2 vault reserves `(base, quote)`.
    Reserves,
    /// V2 per-trader fee rates `(lp, mt)`.
    Fees,
    /// Quote for selling base.
    QuerySellBase,
    /// Quote for selling quote (V2).
    QuerySellQuote,
    /// Quote for buying base (V1).
    QueryBuyBase,
    /// LP share total supply (share-issuing pools).
    TotalSupply,
    /// LP share balance of an account (share-issuing pools).
    BalanceOf,
    /// Add liquidity (V2: `buyShares` after transferring tokens in; DPP: owner `reset`).
    AddLiquidity,
    /// Remove liquidity (V2: `sellShares`; DPP: owner `reset`).
    RemoveLiquidity,
    /// Maintainer address getter.
    Maintainer,
    /// DSP/GSP `correctRState()`.
    CorrectRState,
    /// Oracle contract address getter (DPP Oracle `_O_`, V1 `_ORACLE_`).
    Oracle,
    /// DPP Oracle's oracle switch.
    OracleEnabled,
    /// V1 oracle price getter.
    OraclePrice,
    /// V1 base balance getter.
    BaseBalance,
    /// V1 quote balance getter.
    QuoteBalance,
    /// V1 expected targets `(baseTarget, quoteTarget)`.
    ExpectedTarget,
    /// V1 K getter.
    K,
    /// V1 LP fee rate getter.
    LpFeeRate,
    /// V1 maintainer fee rate getter.
    MtFeeRate,
    /// V1 R status getter.
    RStatus,
    /// V1 base deposit.
    DepositBase,
    /// V1 quote deposit.
    DepositQuote,
    /// V1 base withdrawal.
    WithdrawBase,
    /// V1 quote withdrawal.
    WithdrawQuote,
    /// V1 base LP (capital) token getter.
    BaseCapitalToken,
    /// V1 quote LP (capital) token getter.
    QuoteCapitalToken,
}

impl Purpose {
    /// The snake_case name used in the JSON file.
    pub fn name(self) -> &'static str {
        use Purpose::*;
        match self {
            Version => "version",
            BaseToken => "base_token",
            QuoteToken => "quote_token",
            MidPrice => "mid_price",
            State => "state",
            Reserves => "reserves",
            Fees => "fees",
            QuerySellBase => "query_sell_base",
            QuerySellQuote => "query_sell_quote",
            QueryBuyBase => "query_buy_base",
            TotalSupply => "total_supply",
            BalanceOf => "balance_of",
            AddLiquidity => "add_liquidity",
            RemoveLiquidity => "remove_liquidity",
            Maintainer => "maintainer",
            CorrectRState => "correct_r_state",
            Oracle => "oracle",
            OracleEnabled => "oracle_enabled",
            OraclePrice => "oracle_price",
            BaseBalance => "base_balance",
            QuoteBalance => "quote_balance",
            ExpectedTarget => "expected_target",
            K => "k",
            LpFeeRate => "lp_fee_rate",
            MtFeeRate => "mt_fee_rate",
            RStatus => "r_status",
            DepositBase => "deposit_base",
            DepositQuote => "deposit_quote",
            WithdrawBase => "withdraw_base",
            WithdrawQuote => "withdraw_quote",
            BaseCapitalToken => "base_capital_token",
            QuoteCapitalToken => "quote_capital_token",
        }
    }
}

/// The reads of one batched V2 state read, shared by every V2 pool family.
const V2_READS: &[Purpose] = &[
    Purpose::Version,
    Purpose::BaseToken,
    Purpose::QuoteToken,
    Purpose::MidPrice,
    Purpose::State,
    Purpose::Reserves,
    Purpose::Fees,
    Purpose::QuerySellBase,
    Purpose::QuerySellQuote,
];

/// Purposes every profile of a pool family must define: the reads of one batched state read
/// plus the liquidity methods, in the order a missing one is reported.
pub fn required_purposes(pool_type: PoolType) -> impl Iterator<Item = Purpose> {
    use Purpose::*;
    let (reads, rest): (&[Purpose], &[Purpose]) = match pool_type {
        PoolType::Dvm | PoolType::Dsp | PoolType::Gsp => (
            V2_READS,
            &[TotalSupply, BalanceOf, AddLiquidity, RemoveLiquidity],
        ),
        PoolType::Dpp => (V2_READS, &[AddLiquidity, RemoveLiquidity]),
        PoolType::DppOracle => (V2_READS, &[AddLiquidity, RemoveLiquidity, Oracle]),
        PoolType::V1 => (
            &[
                Version,
                BaseToken,
                QuoteToken,
                MidPrice,
                OraclePrice,
                BaseBalance,
                QuoteBalance,
                ExpectedTarget,
                K,
                LpFeeRate,
                MtFeeRate,
                RStatus,
                QuerySellBase,
                QueryBuyBase,
                DepositBase,
                DepositQuote,
                WithdrawBase,
                WithdrawQuote,
            ],
            &[],
        ),
    };
    reads.iter().chain(rest).copied()
}

/// A Solidity function signature, `name(type,type)`, as used to compute a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MethodSig(String);

impl MethodSig {
    /// Validates the `name(type,...)` shape: an identifier, then comma-separated lowercase
    /// ABI types without spaces or parameter names.
    pub fn new(sig: impl Into<String>) -> Result<Self, String> {
        let sig = sig.into();
        let err = || {
            format!(
                "not a method signature like \"name(uint256,address)\": {:?}",
                sig.chars().take(80).collect::<String>()
            )
        };
        let (name, rest) = sig.split_once('(').ok_or_else(err)?;
        let args = rest.strip_suffix(')').ok_or_else(err)?;
        let ident_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let type_ok = |t: &str| {
            t.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '[' || c == ']')
        };
        let args_ok = args.is_empty() || args.split(',').all(type_ok);
        if ident_ok && args_ok {
            Ok(Self(sig))
        } else {
            Err(err())
        }
    }

    /// The signature text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MethodSig {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<MethodSig> for String {
    fn from(value: MethodSig) -> Self {
        value.0
    }
}

impl fmt::Display for MethodSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads the purpose keys as strings first, so an unknown purpose is reported by name.
fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Purpose, MethodSig>, D::Error> {
    BTreeMap::<String, MethodSig>::deserialize(d)?
        .into_iter()
        .map(|(key, sig)| {
            serde_json::from_value::<Purpose>(serde_json::Value::String(key.clone()))
                .map(|purpose| (purpose, sig))
                .map_err(|_| de::Error::custom(format!("unknown purpose {key:?}")))
        })
        .collect()
}

/// One pool family's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The family this profile reads.
    pub pool_type: PoolType,
    /// Exact `version()` strings (V1: the number in decimal) that select this profile.
    pub versions: Vec<String>,
    /// Method signature per purpose.
    #[serde(deserialize_with = "methods")]
    pub methods: BTreeMap<Purpose, MethodSig>,
}

impl Profile {
    /// The signature to call for a purpose, if the profile has one.
    pub fn method(&self, purpose: Purpose) -> Option<&MethodSig> {
        self.methods.get(&purpose)
    }
}

/// The whole `config/pool_profiles.json`: `{"profiles": {name: Profile}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolProfiles {
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

impl PoolProfiles {
    /// Parses and validates the JSON text of a profiles file.
    pub fn from_json_str(s: &str) -> Result<Self, ConfigError> {
        let parsed: Self = parse_json(s)?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The profile whose `versions` list contains `version` exactly.
    pub fn for_version(&self, version: &str) -> Option<(&str, &Profile)> {
        self.profiles
            .iter()
            .find(|(_, p)| p.versions.iter().any(|v| v == version))
            .map(|(n, p)| (n.as_str(), p))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen_versions: HashMap<&str, &str> = HashMap::new();
        for (name, profile) in &self.profiles {
            let at = |suffix: &str| format!("profiles.{name}{suffix}");
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !name_ok {
                return Err(ConfigError::at(
                    at(""),
                    "profile names use only a-z, 0-9 and '_'",
                ));
            }
            if profile.versions.is_empty() {
                return Err(ConfigError::at(
                    at(".versions"),
                    "must list at least one version() string",
                ));
            }
            for (idx, version) in profile.versions.iter().enumerate() {
                if let Some(other) = seen_versions.insert(version, name) {
                    return Err(ConfigError::at(
                        at(&format!(".versions[{idx}]")),
                        format!("version {version:?} already selects profile \"{other}\""),
                    ));
                }
            }
            for purpose in required_purposes(profile.pool_type) {
                if !profile.methods.contains_key(&purpose) {
                    return Err(ConfigError::at(
                        at(".methods"),
                        format!(
                            "missing \"{}\", required for pool_type {}",
                            purpose.name(),
                            profile.pool_type
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../../../config/pool_profiles.json");

    #[test]
    fn committed_profiles_load() {
        let p = PoolProfiles::from_json_str(COMMITTED).unwrap();
        for (name, t) in [
            ("dvm", PoolType::Dvm),
            ("dsp", PoolType::Dsp),
            ("dpp", PoolType::Dpp),
            ("dpp_oracle", PoolType::DppOracle),
            ("gsp", PoolType::Gsp),
            ("v1", PoolType::V1),
        ] {
            assert_eq!(p.get(name).unwrap().pool_type, t, "{name}");
        }
        let (name, dvm) = p.for_version("DVM 1.0.2").unwrap();
        assert_eq!(name, "dvm");
        assert_eq!(
            dvm.method(Purpose::State).unwrap().as_str(),
            "getPMMStateForCall()"
        );
        assert_eq!(p.for_version("DPP Oracle 1.1.0").unwrap().0, "dpp_oracle");
        assert_eq!(p.for_version("101").unwrap().0, "v1");
        assert!(p.for_version("DVM 9").is_none());
    }

    fn one(profile: serde_json::Value) -> String {
        serde_json::json!({"profiles": {"x": profile}}).to_string()
    }

    fn dvm_methods() -> serde_json::Value {
        let p = PoolProfiles::from_json_str(COMMITTED).unwrap();
        serde_json::to_value(&p.get("dvm").unwrap().methods).unwrap()
    }

    #[test]
    fn errors_name_the_key_path() {
        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "dvm", "versions": ["DVM 1"], "methods": {"sate": "x()"}
        })))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("profiles.x.methods: unknown purpose \"sate\""),
            "{err}"
        );

        let mut m = dvm_methods();
        m["state"] = serde_json::json!("getPMMStateForCall(");
        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "dvm", "versions": ["DVM 1"], "methods": m
        })))
        .unwrap_err();
        assert_eq!(err.path, "profiles.x.methods.state");
        assert!(err.message.contains("method signature"), "{err}");

        let mut m = dvm_methods();
        m.as_object_mut().unwrap().remove("reserves");
        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "dvm", "versions": ["DVM 1"], "methods": m
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "profiles.x.methods: missing \"reserves\", required for pool_type dvm"
        );

        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "curve", "versions": ["DVM 1"], "methods": {}
        })))
        .unwrap_err();
        assert_eq!(err.path, "profiles.x.pool_type");
    }

    #[test]
    fn purpose_names_are_the_json_keys() {
        let p = PoolProfiles::from_json_str(COMMITTED).unwrap();
        for purpose in p.profiles.values().flat_map(|p| p.methods.keys()) {
            assert_eq!(serde_json::to_value(purpose).unwrap(), purpose.name());
        }
    }

    #[test]
    fn a_version_selects_one_profile_only() {
        let m = dvm_methods();
        let json = serde_json::json!({"profiles": {
            "a": {"pool_type": "dvm", "versions": ["DVM 1"], "methods": m},
            "b": {"pool_type": "dvm", "versions": ["DVM 2", "DVM 1"], "methods": m},
        }})
        .to_string();
        let err = PoolProfiles::from_json_str(&json).unwrap_err();
        assert_eq!(err.path, "profiles.b.versions[1]");
    }

    #[test]
    fn method_signature_shapes() {
        for ok in [
            "f()",
            "_X_()",
            "sellShares(uint256,address,uint256,uint256,bytes,uint256)",
            "g(uint256[])",
        ] {
            assert!(MethodSig::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "f",
            "f(",
            "1f()",
            "f(uint256 x)",
            "f(Uint256)",
            "f(,)",
            "f() ",
        ] {
            assert!(MethodSig::new(bad).is_err(), "{bad}");
        }
    }
}
