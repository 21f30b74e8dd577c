//! Pool profiles: for each pool family, the `version()` strings that identify it.
//!
//! The hub checks every allowlisted pool against them (at start, with a probe of the pool's
//! interface, and on every read): the family the pool's `version()` selects must be the
//! entry's `pool_type`. The getters a family is read with are fixed per family in the chain
//! layer, so the file names no methods: a key that drove nothing would be a lie.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{ConfigError, parse_json};
use crate::schema::PoolType;

/// One pool family's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The family this profile reads.
    pub pool_type: PoolType,
    /// Exact `version()` strings (V1: the number in decimal) that select this profile.
    pub versions: Vec<String>,
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

    /// The family `version` selects, checked against what the allowlist claims: `Err` names
    /// what does not match.
    pub fn check_version(&self, version: &str, claimed: PoolType) -> Result<(), String> {
        match self.for_version(version) {
            None => Err(format!("version() {version:?} selects no pool profile")),
            Some((name, p)) if p.pool_type != claimed => Err(format!(
                "version() {version:?} is a {} (profile {name}), not a {claimed}",
                p.pool_type
            )),
            Some(_) => Ok(()),
        }
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
        assert_eq!(p.for_version("DVM 1.0.2").unwrap().0, "dvm");
        assert_eq!(p.for_version("DPP Oracle 1.1.0").unwrap().0, "dpp_oracle");
        assert_eq!(p.for_version("101").unwrap().0, "v1");
        assert!(p.for_version("DVM 9").is_none());
    }

    #[test]
    fn check_version_names_the_mismatch() {
        let p = PoolProfiles::from_json_str(COMMITTED).unwrap();
        assert_eq!(p.check_version("DSP 1.0.1", PoolType::Dsp), Ok(()));
        assert_eq!(
            p.check_version("DVM 1.0.2", PoolType::Dsp).unwrap_err(),
            "version() \"DVM 1.0.2\" is a dvm (profile dvm), not a dsp"
        );
        assert!(
            p.check_version("Curve", PoolType::Dsp)
                .unwrap_err()
                .contains("selects no pool profile")
        );
    }

    fn one(profile: serde_json::Value) -> String {
        serde_json::json!({"profiles": {"x": profile}}).to_string()
    }

    #[test]
    fn errors_name_the_key_path() {
        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "dvm", "versions": ["DVM 1"], "methods": {"state": "x()"}
        })))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `methods`"), "{err}");

        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "curve", "versions": ["DVM 1"]
        })))
        .unwrap_err();
        assert_eq!(err.path, "profiles.x.pool_type");

        let err = PoolProfiles::from_json_str(&one(serde_json::json!({
            "pool_type": "dvm", "versions": []
        })))
        .unwrap_err();
        assert_eq!(err.path, "profiles.x.versions");
    }

    #[test]
    fn a_version_selects_one_profile_only() {
        let json = serde_json::json!({"profiles": {
            "a": {"pool_type": "dvm", "versions": ["DVM 1"]},
            "b": {"pool_type": "dvm", "versions": ["DVM 2", "DVM 1"]},
        }})
        .to_string();
        let err = PoolProfiles::from_json_str(&json).unwrap_err();
        assert_eq!(err.path, "profiles.b.versions[1]");
    }
}
