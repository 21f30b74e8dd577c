//! The proxy's one typed configuration: a TOML/JSON file plus `PMM_INFERENCE__*` env overrides.
//!
//! Env keys use `__` between path segments, e.g. `PMM_INFERENCE__LISTEN`,
//! `PMM_INFERENCE__LIMITS__MAX_CONCURRENT`, `PMM_INFERENCE__AUTH__TOKENS=a,b`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override file values.
pub const ENV_PREFIX: &str = "PMM_INFERENCE";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an env value could not be read or deserialized (the message names the key).
    #[error("cannot load config: {0}")]
    Load(#[from] config::ConfigError),
    /// A value was read but is not acceptable.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `limits.max_concurrent`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Which API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindSetting {
    /// Probe `/info` (TGI) then `/props` (llama.cpp) to find out.
    #[default]
    Auto,
    /// llama.cpp `llama-server`.
    Llamacpp,
    /// Hugging Face text-generation-inference.
    Tgi,
}

/// One inference server behind the proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Short unique name used in logs and metric labels (never the URL, which may hold secrets).
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Backend kind, configured or detected.
    #[serde(default)]
    pub kind: KindSetting,
}

/// One model clients can ask for by `model`, and the upstreams that serve it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The id clients send as `model` and `/v1/models` lists.
    pub name: String,
    /// Other ids accepted for this model (not listed by `/v1/models`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Names of the upstreams serving it, in order: the first is tried first, the others are
    /// its fallbacks.
    pub upstreams: Vec<String>,
}

/// Concurrency, queue and deadline limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests forwarded upstream at the same time.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a slot; beyond this the proxy answers 429.
    pub max_queue: usize,
    /// Longest wait in the queue before shedding with 429.
    pub queue_timeout_ms: u64,
    /// Overall deadline of one request, streams included.
    pub request_timeout_ms: u64,
    /// Deadline of one upstream attempt up to its first byte: the first stream event, or for a
    /// non-streamed answer the start of its body (which llama.cpp sends only once it is done).
    /// A stall is answered 504 when it passes, and trips the upstream's breaker at once.
    pub first_byte_timeout_ms: u64,
    /// Longest silence between two stream chunks.
    pub stream_idle_timeout_ms: u64,
    /// Upstream attempts per request (across upstreams), all before the first byte.
    pub max_attempts: u32,
    /// Value of `Retry-After` on 429/503.
    pub retry_after_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            max_queue: 64,
            queue_timeout_ms: 30_000,
            request_timeout_ms: 300_000,
            first_byte_timeout_ms: 30_000,
            stream_idle_timeout_ms: 30_000,
            max_attempts: 3,
            retry_after_secs: 1,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Queue wait bound.
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }
    /// Overall request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// Per-attempt first-byte deadline.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    /// Idle bound between stream chunks.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.stream_idle_timeout_ms)
    }
    /// `Retry-After` value.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.retry_after_secs)
    }
}

/// Circuit breaker settings, one breaker per upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker rejects before letting one probe through.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            open_ms: 15_000,
        }
    }
}

/// Bearer-token authentication.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Must be set explicitly to run without tokens (local mode): no tokens is otherwise an error.
    pub disabled: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Complete proxy configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address of the front (`host:port`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Upstream servers.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Models and their upstreams; a request for any other model is 404 `model_not_found`.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Log request bodies (prompts). Off by default: prompts may carry sensitive data.
    #[serde(default)]
    pub log_prompts: bool,
    /// Interval of the upstream health poll.
    #[serde(default = "default_health_interval")]
    pub health_interval_ms: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8000".to_owned()
}

fn default_health_interval() -> u64 {
    2_000
}

impl Config {
    /// A configuration with defaults, the given models and upstreams, auth disabled (tests,
    /// local mode).
    pub fn local(models: Vec<ModelConfig>, upstreams: Vec<UpstreamConfig>) -> Self {
        Self {
            listen: default_listen(),
            upstreams,
            models,
            limits: Limits::default(),
            breaker: BreakerConfig::default(),
            auth: AuthConfig {
                tokens: Vec::new(),
                disabled: true,
            },
            log_prompts: false,
            health_interval_ms: default_health_interval(),
        }
    }

    /// Loads from an optional file plus the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Config::load`] but with an explicit env map instead of the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env_source = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("auth.tokens")
            .source(env);
        let cfg: Config = builder.add_source(env_source).build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e| invalid("listen", format!("not a host:port socket address: {e}")))
    }

    /// Health poll interval.
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }

    /// Checks every value; errors name the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.upstreams.is_empty() {
            return Err(invalid("upstreams", "at least one upstream is required"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err(invalid(format!("upstreams[{i}].name"), "must not be empty"));
            }
            if !names.insert(u.name.as_str()) {
                return Err(invalid(
                    format!("upstreams[{i}].name"),
                    format!("duplicate upstream name `{}`", u.name),
                ));
            }
            let url = reqwest::Url::parse(&u.url)
                .map_err(|e| invalid(format!("upstreams[{i}].url"), format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(
                    format!("upstreams[{i}].url"),
                    "must be an http(s) URL with a host",
                ));
            }
        }
        self.validate_models()?;
        let l = &self.limits;
        let positive: [(&str, u64); 7] = [
            ("limits.max_concurrent", l.max_concurrent as u64),
            ("limits.queue_timeout_ms", l.queue_timeout_ms),
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.first_byte_timeout_ms", l.first_byte_timeout_ms),
            ("limits.stream_idle_timeout_ms", l.stream_idle_timeout_ms),
            ("limits.max_attempts", u64::from(l.max_attempts)),
            ("limits.max_body_bytes", l.max_body_bytes as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if l.first_byte_timeout_ms > l.request_timeout_ms {
            return Err(invalid(
                "limits.first_byte_timeout_ms",
                "must not exceed limits.request_timeout_ms",
            ));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(invalid(
                "breaker.failure_threshold",
                "must be greater than 0",
            ));
        }
        if self.breaker.open_ms == 0 {
            return Err(invalid("breaker.open_ms", "must be greater than 0"));
        }
        if self.health_interval_ms == 0 {
            return Err(invalid("health_interval_ms", "must be greater than 0"));
        }
        if !self.auth.disabled && self.auth.tokens.is_empty() {
            return Err(invalid(
                "auth.tokens",
                "no bearer tokens configured; set tokens or auth.disabled = true",
            ));
        }
        if let Some(i) = self.auth.tokens.iter().position(|t| t.trim().is_empty()) {
            return Err(invalid(format!("auth.tokens[{i}]"), "must not be empty"));
        }
        Ok(())
    }

    /// Every model has a unique name and aliases and known upstreams; every upstream serves a
    /// model (an unused one would be a config entry that does nothing).
    fn validate_models(&self) -> Result<(), ConfigError> {
        if self.models.is_empty() {
            return Err(invalid("models", "at least one model is required"));
        }
        let mut ids = std::collections::HashSet::new();
        let mut used = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            for (key, id) in std::iter::once((format!("models[{i}].name"), &m.name)).chain(
                m.aliases
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (format!("models[{i}].aliases[{j}]"), a)),
            ) {
                if id.trim().is_empty() {
                    return Err(invalid(key, "must not be empty"));
                }
                if !ids.insert(id.as_str()) {
                    return Err(invalid(key, format!("model id `{id}` is used twice")));
                }
            }
            if m.upstreams.is_empty() {
                return Err(invalid(
                    format!("models[{i}].upstreams"),
                    "at least one upstream is required",
                ));
            }
            let mut mine = std::collections::HashSet::new();
            for (j, name) in m.upstreams.iter().enumerate() {
                let key = format!("models[{i}].upstreams[{j}]");
                if !self.upstreams.iter().any(|u| &u.name == name) {
                    return Err(invalid(key, format!("no upstream is named `{name}`")));
                }
                if !mine.insert(name.as_str()) {
                    return Err(invalid(key, format!("upstream `{name}` is listed twice")));
                }
                used.insert(name.as_str());
            }
        }
        if let Some(i) = self
            .upstreams
            .iter()
            .position(|u| !used.contains(u.name.as_str()))
        {
            return Err(invalid(
                format!("upstreams[{i}]"),
                format!("upstream `{}` serves no model", self.upstreams[i].name),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("inference.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pmm-inference-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    const BASE: &str = r#"
listen = "127.0.0.1:8000"
[auth]
tokens = ["file-token"]
[[upstreams]]
name = "a"
url = "http://127.0.0.1:8080"
kind = "llamacpp"
[[upstreams]]
name = "b"
url = "http://127.0.0.1:8081"
kind = "tgi"
[[models]]
name = "smollm2"
aliases = ["default"]
upstreams = ["a", "b"]
"#;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn file_plus_env_overrides() {
        let dir = temp_dir("ok");
        let path = write(&dir, BASE);
        let cfg = Config::load_with_env(
            Some(&path),
            env(&[
                ("PMM_INFERENCE__LISTEN", "127.0.0.1:9000"),
                ("PMM_INFERENCE__LIMITS__MAX_CONCURRENT", "3"),
                ("PMM_INFERENCE__AUTH__TOKENS", "x1,x2"),
            ]),
        )
        .expect("valid config");
        assert_eq!(cfg.listen, "127.0.0.1:9000");
        assert_eq!(cfg.limits.max_concurrent, 3);
        assert_eq!(cfg.limits.max_queue, Limits::default().max_queue);
        assert_eq!(cfg.auth.tokens, ["x1", "x2"]);
        assert_eq!(cfg.upstreams[1].kind, KindSetting::Tgi);
        assert_eq!(cfg.models[0].upstreams, ["a", "b"]);
        assert!(
            !format!("{cfg:?}").contains("x1"),
            "tokens must not be printed"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inference.example.toml");
        let cfg = Config::load_with_env(Some(&path), env(&[])).expect("example config loads");
        assert_eq!(cfg.upstreams.len(), 3);
        assert_eq!(cfg.upstreams[1].kind, KindSetting::Auto);
        assert_eq!(cfg.models.len(), 2);
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for file in ["config/inference.toml", "deploy/inference.compose.toml"] {
            let cfg = Config::load_with_env(
                Some(&root.join(file)),
                env(&[("PMM_INFERENCE__AUTH__TOKENS", "t")]),
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(cfg.models[0].name, "smollm2", "{file}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let dir = temp_dir("bad");
        let path = write(&dir, BASE);
        let cases: [(&str, &str, &str); 4] = [
            (
                "PMM_INFERENCE__LIMITS__MAX_CONCURRENT",
                "0",
                "limits.max_concurrent",
            ),
            ("PMM_INFERENCE__LISTEN", "nowhere", "listen"),
            (
                "PMM_INFERENCE__LIMITS__FIRST_BYTE_TIMEOUT_MS",
                "999999999",
                "limits.first_byte_timeout_ms",
            ),
            (
                "PMM_INFERENCE__BREAKER__FAILURE_THRESHOLD",
                "0",
                "breaker.failure_threshold",
            ),
        ];
        for (key, value, named) in cases {
            let err = Config::load_with_env(Some(&path), env(&[(key, value)]))
                .expect_err("invalid config");
            assert!(err.to_string().contains(named), "{key}: {err}");
        }
        let bad_url = write(
            &dir,
            &BASE.replace("http://127.0.0.1:8081", "ftp://127.0.0.1:8081"),
        );
        let err = Config::load_with_env(Some(&bad_url), env(&[])).expect_err("bad url");
        assert!(err.to_string().contains("upstreams[1].url"), "{err}");
        let no_auth = write(&dir, &BASE.replace("tokens = [\"file-token\"]", ""));
        let err = Config::load_with_env(Some(&no_auth), env(&[])).expect_err("no tokens");
        assert!(err.to_string().contains("auth.tokens"), "{err}");
        for (from, to, named) in [
            (
                "upstreams = [\"a\", \"b\"]",
                "upstreams = [\"a\", \"c\"]",
                "models[0].upstreams[1]",
            ),
            (
                "upstreams = [\"a\", \"b\"]",
                "upstreams = [\"a\"]",
                "upstreams[1]",
            ),
            (
                "aliases = [\"default\"]",
                "aliases = [\"smollm2\"]",
                "models[0].aliases[0]",
            ),
        ] {
            let bad = write(&dir, &BASE.replace(from, to));
            let err = Config::load_with_env(Some(&bad), env(&[])).expect_err(named);
            assert!(err.to_string().contains(named), "{named}: {err}");
        }
        let typo = write(&dir, &format!("{BASE}\nmax_concurent = 3\n"));
        let err = Config::load_with_env(Some(&typo), env(&[])).expect_err("unknown key");
        assert!(err.to_string().contains("max_concurent"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
