//! The agent's one typed config: a file plus `PMM_*` environment overrides, validated at start.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// Whether the agent may ask the hub to execute, or only observes and simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read, propose and simulate; never execute.
    Observe,
    /// Execute proposals the policy allows.
    Execute,
}

/// Everything the agent worker needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where `/health` is served (bind 127.0.0.1 unless a supervisor needs otherwise).
    pub health_listen: SocketAddr,
    /// Base URL of the MCP hub (5701).
    pub hub_url: String,
    /// Base URL of the inference proxy (5702).
    pub inference_url: String,
    /// Seconds between two ticks of one pool.
    pub tick_interval_s: u64,
    /// Observe or execute.
    pub mode: Mode,
}

/// A config that could not be loaded or failed validation; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read or did not match the types.
    #[error("config: {0}")]
    Load(#[from] config::ConfigError),
    /// A value was read but is not acceptable.
    #[error("config key `{key}`: {problem}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl AgentConfig {
    /// Loads defaults, then `file` when given, then `PMM_*` variables (`PMM_HUB_URL`, ...).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("health_listen", "127.0.0.1:3003")?
            .set_default("hub_url", "http://127.0.0.1:3000")?
            .set_default("inference_url", "http://127.0.0.1:8000")?
            .set_default("tick_interval_s", 30)?
            .set_default("mode", "observe")?;
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let cfg: Self = builder
            .add_source(config::Environment::with_prefix("PMM").try_parsing(true))
            .build()?
            .try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, url) in [
            ("hub_url", &self.hub_url),
            ("inference_url", &self.inference_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be an http:// or https:// URL".into(),
                });
            }
        }
        if self.tick_interval_s == 0 {
            return Err(ConfigError::Invalid {
                key: "tick_interval_s",
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(name: &str, toml: &str) -> Result<AgentConfig, ConfigError> {
        let path =
            std::env::temp_dir().join(format!("pmm-agent-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, toml).expect("write temp config");
        let loaded = AgentConfig::load(Some(&path));
        std::fs::remove_file(&path).ok();
        loaded
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = AgentConfig::load(None).expect("defaults load");
        assert_eq!(cfg.mode, Mode::Observe);
        assert_eq!(cfg.health_listen.to_string(), "127.0.0.1:3003");
    }

    #[test]
    fn file_values_override_defaults() {
        let cfg = load_str("ok", "mode = \"execute\"\ntick_interval_s = 5\n").expect("loads");
        assert_eq!(cfg.mode, Mode::Execute);
        assert_eq!(cfg.tick_interval_s, 5);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = load_str("url", "hub_url = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hub_url"), "{err}");
        let err = load_str("tick", "tick_interval_s = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tick_interval_s"), "{err}");
        let err = load_str("mode", "mode = \"yolo\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode"), "{err}");
        let err = load_str("unknown", "hub_ulr = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hub_ulr"), "{err}");
    }
}
