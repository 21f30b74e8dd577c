//! The agent's one typed config: a file plus `PMM_*` environment overrides, validated at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pmm_core::agent::BaselineConfig;
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

impl Mode {
    /// The stored name (`observe`, `execute`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Execute => "execute",
        }
    }
}

/// Where a tick's proposal comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proposer {
    /// The model behind the inference proxy, with the baseline stored beside it.
    Model,
    /// The deterministic baseline alone: no inference call, same validation, simulation and
    /// execution path (a fallback strategy, and a reproducible one).
    Baseline,
}

impl Proposer {
    /// The stored name (`model`, `baseline`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Baseline => "baseline",
        }
    }
}

/// Everything the agent worker needs to start. `Debug` leaves out tokens and the database URL.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where `/health` and `/metrics` are served (bind 127.0.0.1 unless a supervisor needs otherwise).
    pub health_listen: SocketAddr,
    /// Base URL of the MCP hub (5701); the agent speaks MCP on `<hub_url>/mcp`.
    pub hub_url: String,
    /// Agent-role bearer token for the hub (usually `PMM_HUB_TOKEN`).
    pub hub_token: Option<String>,
    /// Longest wait for one hub tool call, milliseconds.
    pub hub_timeout_ms: u64,
    /// Base URL of the inference proxy (5702), OpenAI API under `/v1`.
    pub inference_url: String,
    /// Bearer token for the proxy (usually `PMM_INFERENCE_TOKEN`).
    pub inference_token: Option<String>,
    /// Longest wait for one proposal, milliseconds; beyond it the tick is `no_proposal`.
    pub inference_timeout_ms: u64,
    /// Model name sent to the proxy.
    pub model: String,
    /// Sampling temperature.
    pub temperature: f64,
    /// Most tokens the model may generate for one proposal.
    pub max_tokens: u32,
    /// Earlier decisions of the pool shown to the model.
    pub history: u32,
    /// Seconds between two ticks; ticks are numbered by wall-clock interval so workers agree.
    pub tick_interval_s: u64,
    /// Observe or execute.
    pub mode: Mode,
    /// The model or the baseline proposes.
    pub proposer: Proposer,
    /// The pools to tick and their limits (`config/allowlist.json` format).
    pub allowlist_path: PathBuf,
    /// Pool profiles the allowlist is validated against.
    pub profiles_path: PathBuf,
    /// Postgres for `agent_decisions` and `worker_leases` (else `DATABASE_URL`).
    pub database_url: Option<String>,
    /// This worker's name in leases and decisions; default `<host>-<pid>`.
    pub worker_id: Option<String>,
    /// Decisions kept in memory while Postgres is unreachable (oldest dropped beyond).
    pub decision_buffer: usize,
    /// Pools one worker processes at the same time within a tick.
    pub max_concurrent_pools: usize,
    /// Inventory ratio the baseline steers towards, basis points.
    pub baseline_target_ratio_bps: u32,
    /// Half-width of the baseline's hold band, basis points.
    pub baseline_band_bps: u32,
    /// Baseline deposit size as a share of `max_notional_per_tx`, basis points.
    pub baseline_size_bps: u32,
    /// Longest pause between two attempts to reach a hub that is down, seconds.
    pub backoff_max_s: u64,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("health_listen", &self.health_listen)
            .field("hub_url", &self.hub_url)
            .field("inference_url", &self.inference_url)
            .field("model", &self.model)
            .field("tick_interval_s", &self.tick_interval_s)
            .field("mode", &self.mode)
            .field("proposer", &self.proposer)
            .field("allowlist_path", &self.allowlist_path)
            .finish_non_exhaustive()
    }
}

/// Every key of [`AgentConfig`], the only `PMM_<KEY>` variables the agent reads.
const KEYS: [&str; 24] = [
    "health_listen",
    "hub_url",
    "hub_token",
    "hub_timeout_ms",
    "inference_url",
    "inference_token",
    "inference_timeout_ms",
    "model",
    "temperature",
    "max_tokens",
    "history",
    "tick_interval_s",
    "mode",
    "proposer",
    "allowlist_path",
    "profiles_path",
    "database_url",
    "worker_id",
    "decision_buffer",
    "max_concurrent_pools",
    "baseline_target_ratio_bps",
    "baseline_band_bps",
    "baseline_size_bps",
    "backoff_max_s",
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

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl AgentConfig {
    /// Loads defaults, then `file` when given, then `PMM_<KEY>` variables (`PMM_HUB_URL`, ...),
    /// with the deployment-wide `DATABASE_URL` under `PMM_DATABASE_URL`.
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
        let mut database_url = None;
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, v)| {
                if k == "DATABASE_URL" {
                    database_url = Some(v.clone());
                }
                k.strip_prefix("PMM_")
                    .is_some_and(|rest| KEYS.contains(&rest.to_ascii_lowercase().as_str()))
            })
            .collect();
        let mut builder = config::Config::builder()
            .set_default("health_listen", "127.0.0.1:3003")?
            .set_default("hub_url", "http://127.0.0.1:3000")?
            .set_default("hub_timeout_ms", 15_000)?
            .set_default("inference_url", "http://127.0.0.1:8000")?
            .set_default("inference_timeout_ms", 30_000)?
            .set_default("model", "smollm2")?
            .set_default("temperature", 0.7)?
            .set_default("max_tokens", 128)?
            .set_default("history", 3)?
            .set_default("tick_interval_s", 30)?
            .set_default("mode", "observe")?
            .set_default("proposer", "model")?
            .set_default("allowlist_path", "config/allowlist.json")?
            .set_default("profiles_path", "config/pool_profiles.json")?
            .set_default("decision_buffer", 1000)?
            .set_default("max_concurrent_pools", 4)?
            .set_default("baseline_target_ratio_bps", 5000)?
            .set_default("baseline_band_bps", 500)?
            .set_default("baseline_size_bps", 1000)?
            .set_default("backoff_max_s", 30)?;
        if let Some(url) = database_url {
            builder = builder.set_default("database_url", url)?;
        }
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
                return Err(invalid(key, "must be an http:// or https:// URL"));
            }
        }
        if self.tick_interval_s == 0 {
            return Err(invalid("tick_interval_s", "must be at least 1"));
        }
        for (key, v) in [
            ("hub_timeout_ms", self.hub_timeout_ms),
            ("inference_timeout_ms", self.inference_timeout_ms),
            ("backoff_max_s", self.backoff_max_s),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(invalid("temperature", "must be between 0 and 2"));
        }
        if self.max_tokens == 0 {
            return Err(invalid("max_tokens", "must be at least 1"));
        }
        if self.decision_buffer == 0 {
            return Err(invalid("decision_buffer", "must be at least 1"));
        }
        if self.max_concurrent_pools == 0 {
            return Err(invalid("max_concurrent_pools", "must be at least 1"));
        }
        for (key, v) in [
            ("baseline_target_ratio_bps", self.baseline_target_ratio_bps),
            ("baseline_band_bps", self.baseline_band_bps),
            ("baseline_size_bps", self.baseline_size_bps),
        ] {
            if v > 10_000 {
                return Err(invalid(key, "basis points must be at most 10000"));
            }
        }
        if self.database_url.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                "database_url",
                "required (or DATABASE_URL): decisions and leases live in Postgres",
            ));
        }
        if self.model.is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        Ok(())
    }

    /// The tick interval.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.tick_interval_s)
    }

    /// The baseline's settings.
    pub fn baseline(&self) -> BaselineConfig {
        BaselineConfig {
            target_ratio_bps: self.baseline_target_ratio_bps,
            band_bps: self.baseline_band_bps,
            size_bps: self.baseline_size_bps,
        }
    }

    /// The worker id: configured, or `<host>-<pid>`.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "agent".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://postgres@127.0.0.1/pmm");

    fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        std::iter::once(DB)
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn load_str(name: &str, toml: &str) -> Result<AgentConfig, ConfigError> {
        let path =
            std::env::temp_dir().join(format!("pmm-agent-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, toml).expect("write temp config");
        let loaded = AgentConfig::load_from(Some(&path), env(&[]));
        std::fs::remove_file(&path).ok();
        loaded
    }

    #[test]
    fn defaults_are_valid_and_other_daemons_variables_are_ignored() {
        let cfg = AgentConfig::load_from(
            None,
            env(&[("PMM_LLAMA_DIR", "/var/tmp/x"), ("PMM_CHAIN", "devnet")]),
        )
        .expect("defaults load");
        assert_eq!(cfg.mode, Mode::Observe);
        assert_eq!(cfg.proposer, Proposer::Model);
        assert_eq!(cfg.health_listen.to_string(), "127.0.0.1:3003");
        assert_eq!(cfg.interval(), Duration::from_secs(30));
        assert_eq!(cfg.baseline(), BaselineConfig::default());
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
        let cfg = AgentConfig::load_from(
            Some(&path),
            env(&[
                ("PMM_MODE", "execute"),
                ("PMM_TICK_INTERVAL_S", "7"),
                ("PMM_HUB_TOKEN", "secret-hub-token"),
            ]),
        );
        std::fs::remove_file(&path).ok();
        let cfg = cfg.expect("loads");
        assert_eq!(cfg.mode, Mode::Execute);
        assert_eq!(cfg.tick_interval_s, 7);
        assert_eq!(cfg.hub_token.as_deref(), Some("secret-hub-token"));
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("secret-hub-token") && !debug.contains("postgres://"),
            "{debug}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (toml, key) in [
            ("hub_url = \"ftp://x\"\n", "hub_url"),
            ("tick_interval_s = 0\n", "tick_interval_s"),
            ("mode = \"yolo\"\n", "mode"),
            ("proposer = \"oracle\"\n", "proposer"),
            ("hub_ulr = \"http://x\"\n", "hub_ulr"),
            ("temperature = 3.5\n", "temperature"),
            ("baseline_band_bps = 20000\n", "baseline_band_bps"),
            ("decision_buffer = 0\n", "decision_buffer"),
        ] {
            let err = load_str(key, toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let err = AgentConfig::load_from(None, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url"), "{err}");
    }
}
