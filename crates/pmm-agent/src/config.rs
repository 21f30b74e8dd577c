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

/// Every key of [`AgentConfig`], the only `PMM_<KEY>` variables the agent reads.
const KEYS: [&str; 5] = [
    "health_listen",
    "hub_url",
    "inference_url",
    "tick_interval_s",
    "mode",
];

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
    /// Loads defaults, then `file` when given, then `PMM_<KEY>` variables (`PMM_HUB_URL`, ...).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`AgentConfig::load`] over an explicit environment. Only the agent's own keys are taken:
    /// the other daemons share the `PMM_` prefix (`PMM_LLAMA_DIR`, `PMM_CHAIN`, ...) and must not
    /// trip the unknown-key check meant for typos in the file.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix("PMM_")
                    .is_some_and(|rest| KEYS.contains(&rest.to_ascii_lowercase().as_str()))
            })
            .collect();
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
            .add_source(
                config::Environment::with_prefix("PMM")
                    .source(Some(env))
                    .try_parsing(true),
            )
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
        let loaded = AgentConfig::load_from(Some(&path), Vec::new());
        std::fs::remove_file(&path).ok();
        loaded
    }

    #[test]
    fn defaults_are_valid_and_other_daemons_variables_are_ignored() {
        let env = vec![
            ("PMM_LLAMA_DIR".to_string(), "/var/tmp/x".to_string()),
            ("PMM_CHAIN".to_string(), "devnet".to_string()),
        ];
        let cfg = AgentConfig::load_from(None, env).expect("defaults load");
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
    fn environment_overrides_the_file() {
        let path = std::env::temp_dir().join(format!("pmm-agent-{}-env.toml", std::process::id()));
        std::fs::write(&path, "mode = \"observe\"\n").expect("write temp config");
        let env = vec![
            ("PMM_MODE".to_string(), "execute".to_string()),
            ("PMM_TICK_INTERVAL_S".to_string(), "7".to_string()),
        ];
        let cfg = AgentConfig::load_from(Some(&path), env);
        std::fs::remove_file(&path).ok();
        let cfg = cfg.expect("loads");
        assert_eq!(cfg.mode, Mode::Execute);
        assert_eq!(cfg.tick_interval_s, 7);
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
