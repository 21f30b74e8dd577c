//! Typed, validated forms of `config/allowlist.json` and `config/pool_profiles.json`.
//!
//! Parsing takes a `&str` (the binaries own file I/O). Every error names the key path that is
//! wrong, e.g. `pools[2].address: not a 20-byte hex address`. Unknown keys are errors: a
//! misspelled limit must not silently fall back to anything.

mod allowlist;
pub(crate) mod de;
mod profiles;

use serde::de::DeserializeOwned;

pub use allowlist::{Allowlist, OracleConfig, PoolEntry};
pub use profiles::{PoolProfiles, Profile};

/// A config file that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Key path of the bad value (`pools[0].limits.cooldown_s`), or `(root)`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Deserializes JSON, reporting the key path of the first error.
fn parse_json<T: DeserializeOwned>(s: &str) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(s);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(root)".to_owned()
        } else {
            path
        };
        ConfigError::at(path, e.into_inner().to_string())
    })?;
    de.end()
        .map_err(|e| ConfigError::at("(root)", e.to_string()))?;
    Ok(value)
}
