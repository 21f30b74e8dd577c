//! The pool allowlist: which pools the agent may touch, how to read them, and their limits.

use std::collections::HashMap;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use super::{ConfigError, PoolProfiles, de, parse_json};
use crate::math::Generation;
use crate::policy::Limits;
use crate::schema::{ChainName, OracleKind, PoolType};

/// A pool's reference-price source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// Kind of feed.
    pub kind: OracleKind,
    /// Feed contract; required for `chainlink`, otherwise read from the pool (`_ORACLE_`, `_O_`).
    #[serde(
        default,
        serialize_with = "crate::schema::addr::serialize_opt",
        deserialize_with = "crate::schema::addr::deserialize_opt"
    )]
    pub address: Option<Address>,
    /// Staleness bound for this feed (its heartbeat belongs to the feed); when set it replaces
    /// `limits.oracle_max_age_s`.
    #[serde(default, deserialize_with = "de::opt_non_negative_u64")]
    pub max_age_s: Option<u64>,
}

/// One allowlisted pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    /// Pool contract.
    #[serde(with = "crate::schema::addr")]
    pub address: Address,
    /// Expected base token; the chain layer refuses a pool whose `_BASE_TOKEN_` differs.
    #[serde(with = "crate::schema::addr")]
    pub base_token: Address,
    /// Expected quote token.
    #[serde(with = "crate::schema::addr")]
    pub quote_token: Address,
    /// Profile name in `pool_profiles.json`.
    pub profile: String,
    /// Pool family; must match the profile's.
    pub pool_type: PoolType,
    /// Reference price source.
    pub oracle: OracleConfig,
    /// Policy limits for this pool, as written in the file.
    pub limits: Limits,
    /// The template generation ("2021" or "2024") the pool must run; the hub refuses to start
    /// when the pool's template says otherwise. Omitted: whatever the template says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<Generation>,
}

impl PoolEntry {
    /// The limits the policy applies: `limits` with `oracle.max_age_s` taking precedence.
    pub fn effective_limits(&self) -> Limits {
        Limits {
            oracle_max_age_s: self
                .oracle
                .max_age_s
                .unwrap_or(self.limits.oracle_max_age_s),
            ..self.limits.clone()
        }
    }
}

/// The whole `config/allowlist.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    /// Chain short name these pools live on.
    pub chain: ChainName,
    /// EVM chain id; when set the chain layer refuses an RPC reporting another.
    #[serde(default, deserialize_with = "de::opt_non_negative_u64")]
    pub chain_id: Option<u64>,
    /// Allowlisted pools; may be empty (e.g. before a devnet deploys its fixtures).
    pub pools: Vec<PoolEntry>,
}

impl Allowlist {
    /// Parses and validates the JSON text of an allowlist against the known profiles.
    pub fn from_json_str(s: &str, profiles: &PoolProfiles) -> Result<Self, ConfigError> {
        let parsed: Self = parse_json(s)?;
        parsed.validate(profiles)?;
        Ok(parsed)
    }

    /// The entry for a pool address, if allowlisted.
    pub fn pool(&self, address: Address) -> Option<&PoolEntry> {
        self.pools.iter().find(|p| p.address == address)
    }

    fn validate(&self, profiles: &PoolProfiles) -> Result<(), ConfigError> {
        let mut seen: HashMap<Address, usize> = HashMap::new();
        for (idx, pool) in self.pools.iter().enumerate() {
            let at = |suffix: &str| format!("pools[{idx}].{suffix}");
            if let Some(first) = seen.insert(pool.address, idx) {
                return Err(ConfigError::at(
                    at("address"),
                    format!("duplicate of pools[{first}].address {}", pool.address),
                ));
            }
            if pool.base_token == pool.quote_token {
                return Err(ConfigError::at(at("quote_token"), "same as base_token"));
            }
            let profile = profiles.get(&pool.profile).ok_or_else(|| {
                ConfigError::at(at("profile"), format!("unknown profile {:?}", pool.profile))
            })?;
            if profile.pool_type != pool.pool_type {
                return Err(ConfigError::at(
                    at("pool_type"),
                    format!(
                        "{} does not match profile \"{}\" (pool_type {})",
                        pool.pool_type, pool.profile, profile.pool_type
                    ),
                ));
            }
            if pool.generation.is_some() && !pool.pool_type.is_v2() {
                return Err(ConfigError::at(
                    at("generation"),
                    "v1 pools are no template clones and have no generation",
                ));
            }
            validate_oracle(&pool.oracle, pool.pool_type, &at)?;
            validate_limits(&pool.limits, &at)?;
        }
        Ok(())
    }
}

fn validate_oracle(
    oracle: &OracleConfig,
    pool_type: PoolType,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match oracle.kind {
        OracleKind::Chainlink if oracle.address.is_none() => {
            return Err(ConfigError::at(
                at("oracle.address"),
                "required for oracle kind chainlink",
            ));
        }
        OracleKind::V1 if pool_type != PoolType::V1 => {
            return Err(ConfigError::at(
                at("oracle.kind"),
                format!("v1 oracles exist only on v1 pools, not {pool_type}"),
            ));
        }
        OracleKind::DppOracle if pool_type != PoolType::DppOracle => {
            return Err(ConfigError::at(
                at("oracle.kind"),
                format!("dpp_oracle oracles exist only on dpp_oracle pools, not {pool_type}"),
            ));
        }
        _ => {}
    }
    if oracle.max_age_s == Some(0) {
        return Err(ConfigError::at(
            at("oracle.max_age_s"),
            "must be > 0 (0 would call every observation stale)",
        ));
    }
    Ok(())
}

fn validate_limits(limits: &Limits, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if limits.oracle_max_age_s == 0 {
        return Err(ConfigError::at(
            at("limits.oracle_max_age_s"),
            "must be > 0 (0 would call every observation stale)",
        ));
    }
    if limits.max_notional_per_day < limits.max_notional_per_tx {
        return Err(ConfigError::at(
            at("limits.max_notional_per_day"),
            format!(
                "must be >= max_notional_per_tx ({} < {})",
                limits.max_notional_per_day, limits.max_notional_per_tx
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy_primitives::address;
    use serde_json::{Value, json};

    use super::*;

    fn profiles() -> PoolProfiles {
        PoolProfiles::from_json_str(include_str!("../../../../config/pool_profiles.json")).unwrap()
    }

    fn pool(addr: &str) -> Value {
        json!({
            "address": addr,
            "base_token": "0x00000000000000000000000000000000000000b1",
            "quote_token": "0x00000000000000000000000000000000000000c1",
            "profile": "dvm",
            "pool_type": "dvm",
            "oracle": {"kind": "chainlink", "address": "0x00000000000000000000000000000000000000d1"},
            "limits": {
                "max_slippage_bps": 50,
                "max_notional_per_tx": "1000000000",
                "max_notional_per_day": "5000000000",
                "cooldown_s": 60,
                "oracle_deviation_bps": 100,
                "oracle_max_age_s": 3600,
                "gas_cap_gwei": 50
            }
        })
    }

    fn doc(pools: Vec<Value>) -> Value {
        json!({"chain": "devnet", "chain_id": 31337, "pools": pools})
    }

    fn parse(v: &Value) -> Result<Allowlist, ConfigError> {
        Allowlist::from_json_str(&v.to_string(), &profiles())
    }

    fn err_of(v: &Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    const A1: &str = "0x00000000000000000000000000000000000000a1";
    const A2: &str = "0x00000000000000000000000000000000000000a2";

    #[test]
    fn committed_allowlist_loads() {
        let a = Allowlist::from_json_str(
            include_str!("../../../../config/allowlist.json"),
            &profiles(),
        )
        .unwrap();
        assert_eq!(a.chain.as_str(), "devnet");
        assert_eq!(a.chain_id, Some(31337));
    }

    #[test]
    fn committed_example_loads_and_round_trips() {
        let a = Allowlist::from_json_str(
            include_str!("../../../../config/allowlist.example.json"),
            &profiles(),
        )
        .unwrap();
        assert_eq!(a.pools.len(), 1);
        let entry = &a.pools[0];
        assert_eq!(entry.pool_type, PoolType::Dvm);
        assert_eq!(entry.oracle.kind, OracleKind::Chainlink);
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.contains("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            "{json}"
        );
        assert_eq!(Allowlist::from_json_str(&json, &profiles()).unwrap(), a);
    }

    #[test]
    fn parses_a_pool_and_resolves_effective_limits() {
        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["oracle"]["max_age_s"] = json!(120);
        let a = parse(&v).unwrap();
        let entry = a
            .pool(address!("00000000000000000000000000000000000000a1"))
            .unwrap();
        assert_eq!(entry.limits.oracle_max_age_s, 3600);
        assert_eq!(entry.effective_limits().oracle_max_age_s, 120);
        assert_eq!(entry.effective_limits().cooldown_s, 60);
        assert_eq!(entry.generation, None);
        v["pools"][0]["generation"] = json!("2021");
        let pinned = parse(&v).unwrap();
        assert_eq!(pinned.pools[0].generation, Some(Generation::V2021));
        assert!(
            a.pool(address!("00000000000000000000000000000000000000a2"))
                .is_none()
        );
    }

    #[test]
    fn empty_pool_list_is_accepted() {
        assert!(parse(&doc(vec![])).unwrap().pools.is_empty());
    }

    #[test]
    fn errors_name_the_key_path() {
        let mut v = doc(vec![pool(A1), pool(A2), pool("0x1234")]);
        assert!(
            err_of(&v).starts_with("pools[2].address: not a 20-byte hex address"),
            "{}",
            err_of(&v)
        );

        v = doc(vec![pool(A1)]);
        v["pools"][0]["profile"] = json!("foo");
        assert_eq!(err_of(&v), "pools[0].profile: unknown profile \"foo\"");

        v = doc(vec![pool(A1), pool(A2)]);
        v["pools"][1]["limits"]["cooldown_s"] = json!(-5);
        assert!(
            err_of(&v).starts_with("pools[1].limits.cooldown_s: must be >= 0 (got -5)"),
            "{}",
            err_of(&v)
        );

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["cooldown_s"] = json!(1.5);
        assert!(err_of(&v).starts_with("pools[0].limits.cooldown_s: must be a whole number"));

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["max_slippage_bps"] = json!(10_001);
        assert!(err_of(&v).starts_with("pools[0].limits.max_slippage_bps: must be <= 10000"));

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["max_notional_per_tx"] = json!(1000);
        assert!(err_of(&v).starts_with("pools[0].limits.max_notional_per_tx: invalid type"));

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["max_notional_per_tx"] = json!("-1");
        assert!(err_of(&v).starts_with("pools[0].limits.max_notional_per_tx: negative amount"));

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["max_slipage_bps"] = json!(1);
        assert!(err_of(&v).starts_with("pools[0].limits.max_slipage_bps: unknown field"));

        v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]
            .as_object_mut()
            .unwrap()
            .remove("gas_cap_gwei");
        assert!(
            err_of(&v).contains("missing field `gas_cap_gwei`"),
            "{}",
            err_of(&v)
        );

        v = doc(vec![pool(A1)]);
        v["chain"] = json!("Dev Net");
        assert!(err_of(&v).starts_with("chain: invalid chain name"));

        v = doc(vec![pool(A1)]);
        v["chain_id"] = json!(-1);
        assert!(err_of(&v).starts_with("chain_id: must be >= 0"));
    }

    #[test]
    fn semantic_errors() {
        let v = doc(vec![pool(A1), pool(A2), pool(A1)]);
        assert_eq!(
            err_of(&v),
            "pools[2].address: duplicate of pools[0].address 0x00000000000000000000000000000000000000A1"
        );

        // The same address spelled in another case is still a duplicate.
        let v = doc(vec![pool(A1), pool(&A1.to_uppercase().replace("0X", "0x"))]);
        assert!(err_of(&v).starts_with("pools[1].address: duplicate"));

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["quote_token"] = v["pools"][0]["base_token"].clone();
        assert_eq!(err_of(&v), "pools[0].quote_token: same as base_token");

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["pool_type"] = json!("dsp");
        assert_eq!(
            err_of(&v),
            "pools[0].pool_type: dsp does not match profile \"dvm\" (pool_type dvm)"
        );

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["oracle"] = json!({"kind": "chainlink"});
        assert_eq!(
            err_of(&v),
            "pools[0].oracle.address: required for oracle kind chainlink"
        );

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["oracle"] = json!({"kind": "v1"});
        assert!(err_of(&v).starts_with("pools[0].oracle.kind: v1 oracles exist only on v1"));

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["oracle"]["max_age_s"] = json!(0);
        assert!(err_of(&v).starts_with("pools[0].oracle.max_age_s: must be > 0"));

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["oracle_max_age_s"] = json!(0);
        assert!(err_of(&v).starts_with("pools[0].limits.oracle_max_age_s: must be > 0"));

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["profile"] = json!("v1");
        v["pools"][0]["pool_type"] = json!("v1");
        v["pools"][0]["oracle"] = json!({"kind": "v1"});
        assert!(parse(&v).is_ok());
        v["pools"][0]["generation"] = json!("2021");
        assert!(
            err_of(&v).starts_with("pools[0].generation: v1 pools are no template clones"),
            "{}",
            err_of(&v)
        );

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["generation"] = json!("2023");
        assert!(
            err_of(&v).starts_with("pools[0].generation: unknown variant `2023`"),
            "{}",
            err_of(&v)
        );

        let mut v = doc(vec![pool(A1)]);
        v["pools"][0]["limits"]["max_notional_per_day"] = json!("1");
        assert!(err_of(&v).starts_with("pools[0].limits.max_notional_per_day: must be >="));
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = Allowlist::from_json_str("{\"chain\": ", &profiles()).unwrap_err();
        assert!(err.message.contains("EOF"), "{err}");
        let err =
            Allowlist::from_json_str("{\"chain\":\"devnet\",\"pools\":[]} trailing", &profiles())
                .unwrap_err();
        assert!(err.message.contains("trailing"), "{err}");
    }
}
