//! The hub's one typed config: a TOML/JSON file plus `PMM_*` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, address};
use pmm_core::templates::{KnownTemplate, TemplateTable};
use serde::{Deserialize, Serialize};

/// A config that cannot be used; the message names the bad key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment did not parse.
    #[error("config: {0}")]
    Load(String),
    /// A key holds an unusable value.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Key name as written in the file (`PMM_<KEY>` in the environment).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Networks with known chain ids and DODO deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainPreset {
    /// Ethereum mainnet.
    Ethereum,
    /// BNB Smart Chain.
    Bsc,
    /// Arbitrum One.
    Arbitrum,
    /// Local anvil.
    Devnet,
}

/// DODO's deployed contracts on a preset chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DodoAddresses {
    /// DVM factory.
    pub dvm_factory: Address,
    /// DSP factory.
    pub dsp_factory: Address,
    /// DPP factory.
    pub dpp_factory: Address,
    /// GSP factory.
    pub gsp_factory: Address,
    /// DODOV2Proxy02 router.
    pub v2_proxy: Address,
    /// DODODspProxy (DSP deposits); `None` where no address is verified.
    pub dsp_proxy: Option<Address>,
    /// DODOApprove (token pulls of the proxies).
    pub approve: Address,
    /// V1 DODOZoo.
    pub v1_zoo: Address,
}

impl ChainPreset {
    /// The EVM chain id the RPC must report.
    pub fn chain_id(self) -> u64 {
        match self {
            Self::Ethereum => 1,
            Self::Bsc => 56,
            Self::Arbitrum => 42161,
            Self::Devnet => 31337,
        }
    }

    /// Short chain name used in state, keys and the allowlist.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ethereum => "ethereum",
            Self::Bsc => "bsc",
            Self::Arbitrum => "arbitrum",
            Self::Devnet => "devnet",
        }
    }

    /// DODO deployments (none on a devnet: its fixture pools are deployed per run).
    pub fn dodo(self) -> Option<DodoAddresses> {
        match self {
            Self::Ethereum => Some(DodoAddresses {
                dvm_factory: address!("72d220cE168C4f361dD4deE5D826a01AD8598f6C"),
                dsp_factory: address!("6fdDB76c93299D985f4d3FC7ac468F9A168577A4"),
                dpp_factory: address!("5336edE8F971339F6c0e304c66ba16F1296A2Fbe"),
                gsp_factory: address!("710409D2121B7C8EA4aCAdd6803FDE2D85DF6473"),
                v2_proxy: address!("a356867fDCEa8e71AEaF87805808803806231FdC"),
                // DODO's contract-request package (DODODspProxyWithoutGSP, chain 1).
                dsp_proxy: Some(address!("4599ed18F34cFE06820E3684bF0aACB8D75c644d")),
                approve: address!("CB859eA579b28e02B87A1FDE08d087ab9dbE5149"),
                v1_zoo: address!("3a97247df274a17c59a3bd12735ea3fcdfb49950"),
            }),
            Self::Bsc => Some(DodoAddresses {
                dvm_factory: address!("790B4A80Fb1094589A3c0eFC8740aA9b0C1733fB"),
                dsp_factory: address!("0fb9815938Ad069Bf90E14FE6C596c514BEDe767"),
                dpp_factory: address!("d9CAc3D964327e47399aebd8e1e6dCC4c251DaAE"),
                gsp_factory: address!("78d43a889F42a344Fe98C3fb9455791Dc8178d55"),
                v2_proxy: address!("8F8Dd7DB1bDA5eD3da8C9daf3bfa471c12d58486"),
                dsp_proxy: Some(address!("2442A8B5cdf1E659F3F949A7E454Caa554D4E65a")),
                approve: address!("a128Ba44B2738A558A1fdC06d6303d52D3Cef8c1"),
                v1_zoo: address!("CA459456a45e300AA7EF447DBB60F87CCcb42828"),
            }),
            Self::Arbitrum => Some(DodoAddresses {
                dvm_factory: address!("Da4c4411c55B0785e501332354A036c04833B72b"),
                dsp_factory: address!("C8fE2440744dcd733246a4dB14093664DEFD5A53"),
                dpp_factory: address!("a6Cf3d163358aF376ec5e8B7Cc5e102a05FdE63D"),
                gsp_factory: address!("46E55A974c5995675b025f7F607C3278B36f0c29"),
                v2_proxy: address!("88CBf433471A0CD8240D2a12354362988b4593E5"),
                dsp_proxy: Some(address!("36E5238B4479d1ba0bFE47550B0B8e4f4f500EAA")),
                approve: address!("A867241cDC8d3b0C07C85cC06F25a0cD3b5474d8"),
                v1_zoo: address!("BcC3401E16C25EaF4d3FeD632ce3288503883B1f"),
            }),
            Self::Devnet => None,
        }
    }
}

/// How callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Bearer tokens per role (the default).
    Tokens,
    /// No tokens; every caller is an agent (read + simulate). Only on a loopback address.
    None,
}

/// Everything the hub needs to start. `Debug` hides URLs and tokens (see its impl).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to bind; must be loopback when `auth = "none"`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Chain preset; the RPC must report its chain id.
    pub chain: ChainPreset,
    /// RPC endpoint (may carry credentials: it is never logged). Optional on a devnet when
    /// `devnet_file` names the file `just devnet` wrote.
    #[serde(default)]
    pub rpc_url: Option<String>,
    /// `var/devnet.json` from `just devnet`: supplies `rpc_url`, the deposit routers and the
    /// table of pool templates on a devnet.
    #[serde(default)]
    pub devnet_file: Option<PathBuf>,
    /// `config/allowlist.json`.
    #[serde(default = "default_allowlist")]
    pub allowlist_path: PathBuf,
    /// `config/pool_profiles.json`.
    #[serde(default = "default_profiles")]
    pub profiles_path: PathBuf,
    /// Redis for breaker, cooldown and daily caps; without it the hub serves reads statelessly.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix put verbatim before every Redis key (`cb:<chain>:<pool>`, ...): empty in
    /// production so every daemon and `pmm-state bootstrap` see the same keys; tests isolate
    /// themselves with a unique one.
    #[serde(default)]
    pub redis_namespace: String,
    /// Postgres for the `tool_calls` log.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Authentication mode.
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    /// JSON file `{"agent": ["token", ...], "operator": ["token", ...]}`.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// One agent token (usually from `PMM_AGENT_TOKEN`).
    #[serde(default)]
    pub agent_token: Option<String>,
    /// One operator token (usually from `PMM_OPERATOR_TOKEN`).
    #[serde(default)]
    pub operator_token: Option<String>,
    /// `Host` values accepted on `/mcp` (DNS-rebinding protection).
    #[serde(default = "default_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted on `/mcp`; any other present Origin gets 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Requests served at once; one more gets 503 with `Retry-After` instead of queueing.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Tool requests per second each authenticated caller may make on average; beyond the
    /// burst it gets 429 with `Retry-After`.
    #[serde(default = "default_rate_limit_per_s")]
    pub rate_limit_per_s: u32,
    /// Requests a caller may make at once above its average rate.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// Milliseconds a connection may take to send a request's headers before it is closed.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Milliseconds a request may take to send its body; slower gets 400 and `Connection: close`.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Seconds an MCP session may go without a request before it ends (its id then gets
    /// 404 and the client initializes again).
    #[serde(default = "default_mcp_session_idle_s")]
    pub mcp_session_idle_s: u64,
    /// MCP sessions open at once; one more `initialize` ends the session used longest ago.
    #[serde(default = "default_mcp_max_sessions")]
    pub mcp_max_sessions: usize,
    /// The account writes are signed by: fees are quoted for it, dry runs sent from it, and
    /// the `balance` rule checks its token balances and shares. Unset, every write-shaped
    /// check is denied under `balance`.
    #[serde(default)]
    pub executor: Option<Address>,
    /// How often the pool monitor asks the node for a new block, milliseconds; it reads every
    /// allowlisted pool once per new block.
    #[serde(default = "default_monitor_poll_ms")]
    pub monitor_poll_ms: u64,
    /// On slow chains: read every allowlisted pool every this many seconds instead of on
    /// each new block.
    #[serde(default)]
    pub monitor_interval_s: Option<u64>,
    /// Read tools, `dodo.risk_check` and `dodo.simulate_action` use the head the pool monitor
    /// last published (a block whose allowlisted pools it has read and cached, reported by the
    /// node within two `monitor_poll_ms`) instead of asking the node each call, so a call in
    /// that block costs no RPC; a call during the monitor's read of a new block waits for it.
    /// The price: a block mined since the monitor's last poll is seen up to one poll later.
    /// Off, or with `monitor_interval_s`, every call asks the node; writes always do.
    #[serde(default = "default_true")]
    pub tools_use_monitor_head: bool,
    /// How the pool monitor learns of new blocks: `"subscribe"` (default) to `eth_subscribe
    /// newHeads` over the websocket of `rpc_url` (`ws`/`wss` on the same host, port and
    /// path), so a block costs one batched read and no head polls; polling every
    /// `monitor_poll_ms` while the subscription is unavailable or dropped, retried with
    /// backoff. `"poll"` asks `eth_blockNumber` every `monitor_poll_ms`.
    #[serde(default)]
    pub monitor_heads: pmm_chain::HeadMode,
    /// Tool-call log rows kept in memory while Postgres is unreachable.
    #[serde(default = "default_log_buffer")]
    pub tool_log_buffer: usize,
    /// First write gate (`ALLOW_WRITE`): writes are refused unless this and
    /// `execution_armed` are both true. Read at start only.
    #[serde(default)]
    pub allow_write: bool,
    /// Second write gate (`EXECUTION_ARMED`).
    #[serde(default)]
    pub execution_armed: bool,
    /// Encrypted JSON keystore of the signer.
    #[serde(default)]
    pub keystore_path: Option<PathBuf>,
    /// File holding the keystore password; default: the systemd credential
    /// `keystore-password` under `$CREDENTIALS_DIRECTORY`.
    #[serde(default)]
    pub keystore_password_file: Option<PathBuf>,
    /// Take a raw signer key from `PMM_DEV_SIGNER_KEY` (chain `devnet` only).
    #[serde(default)]
    pub dev_signer_from_env: bool,
    /// Blocks on top of the inclusion block before a write counts as done (1 = included).
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// Seconds a write waits for its receipt before the call returns `pending` (the intent
    /// is finished later, by a retry or the next start).
    #[serde(default = "default_receipt_timeout")]
    pub receipt_timeout_s: u64,
    /// Seconds without a receipt before the transaction is replaced with higher fees.
    #[serde(default = "default_replace_after")]
    pub replace_after_s: u64,
    /// Seconds from now a write's on-chain deadline lies when the caller gives none.
    #[serde(default = "default_tx_deadline")]
    pub tx_deadline_s: u64,
}

fn default_confirmations() -> u64 {
    1
}
fn default_receipt_timeout() -> u64 {
    60
}
fn default_replace_after() -> u64 {
    20
}
fn default_tx_deadline() -> u64 {
    300
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}
fn default_allowlist() -> PathBuf {
    PathBuf::from("config/allowlist.json")
}
fn default_profiles() -> PathBuf {
    PathBuf::from("config/pool_profiles.json")
}
fn default_auth() -> AuthMode {
    AuthMode::Tokens
}
fn default_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}
fn default_max_concurrent_requests() -> usize {
    256
}
fn default_rate_limit_per_s() -> u32 {
    50
}
fn default_rate_limit_burst() -> u32 {
    100
}
fn default_header_read_timeout_ms() -> u64 {
    5_000
}
fn default_body_read_timeout_ms() -> u64 {
    10_000
}
fn default_mcp_session_idle_s() -> u64 {
    300
}
fn default_mcp_max_sessions() -> usize {
    1_000
}
fn default_log_buffer() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_monitor_poll_ms() -> u64 {
    1_000
}

/// Bearer tokens by role, as loaded. `Debug` shows only how many there are.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Tokens granting read and simulate.
    #[serde(default)]
    pub agent: Vec<String>,
    /// Tokens granting everything.
    #[serde(default)]
    pub operator: Vec<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("agent", &self.agent.len())
            .field("operator", &self.operator.len())
            .finish()
    }
}

/// `Some("<redacted>")` for a set secret: a config printed in a log must not carry
/// credentials (URLs may hold passwords or API keys).
fn redacted(v: &Option<String>) -> Option<&'static str> {
    v.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("listen", &self.listen)
            .field("chain", &self.chain)
            .field("rpc_url", &redacted(&self.rpc_url))
            .field("devnet_file", &self.devnet_file)
            .field("allowlist_path", &self.allowlist_path)
            .field("profiles_path", &self.profiles_path)
            .field("redis_url", &redacted(&self.redis_url))
            .field("redis_namespace", &self.redis_namespace)
            .field("database_url", &redacted(&self.database_url))
            .field("auth", &self.auth)
            .field("tokens_file", &self.tokens_file)
            .field("agent_token", &redacted(&self.agent_token))
            .field("operator_token", &redacted(&self.operator_token))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("body_read_timeout_ms", &self.body_read_timeout_ms)
            .field("mcp_session_idle_s", &self.mcp_session_idle_s)
            .field("mcp_max_sessions", &self.mcp_max_sessions)
            .field("executor", &self.executor)
            .field("monitor_poll_ms", &self.monitor_poll_ms)
            .field("monitor_interval_s", &self.monitor_interval_s)
            .field("tools_use_monitor_head", &self.tools_use_monitor_head)
            .field("monitor_heads", &self.monitor_heads)
            .field("tool_log_buffer", &self.tool_log_buffer)
            .field("allow_write", &self.allow_write)
            .field("execution_armed", &self.execution_armed)
            .field("keystore_path", &self.keystore_path)
            .field("keystore_password_file", &self.keystore_password_file)
            .field("dev_signer_from_env", &self.dev_signer_from_env)
            .field("confirmations", &self.confirmations)
            .field("receipt_timeout_s", &self.receipt_timeout_s)
            .field("replace_after_s", &self.replace_after_s)
            .field("tx_deadline_s", &self.tx_deadline_s)
            .finish()
    }
}

/// Every key of [`HubConfig`], for picking `PMM_<KEY>` variables out of the environment.
const KEYS: [&str; 37] = [
    "listen",
    "chain",
    "rpc_url",
    "devnet_file",
    "allowlist_path",
    "profiles_path",
    "redis_url",
    "redis_namespace",
    "database_url",
    "auth",
    "tokens_file",
    "agent_token",
    "operator_token",
    "allowed_hosts",
    "allowed_origins",
    "max_concurrent_requests",
    "rate_limit_per_s",
    "rate_limit_burst",
    "header_read_timeout_ms",
    "body_read_timeout_ms",
    "mcp_session_idle_s",
    "mcp_max_sessions",
    "executor",
    "monitor_poll_ms",
    "monitor_interval_s",
    "tools_use_monitor_head",
    "monitor_heads",
    "tool_log_buffer",
    "allow_write",
    "execution_armed",
    "keystore_path",
    "keystore_password_file",
    "dev_signer_from_env",
    "confirmations",
    "receipt_timeout_s",
    "replace_after_s",
    "tx_deadline_s",
];

/// The deployment-wide variables every daemon of the stack reads without a prefix; a
/// `PMM_<KEY>` variable still wins over them.
const UNPREFIXED: [&str; 6] = [
    "CHAIN",
    "RPC_URL",
    "REDIS_URL",
    "DATABASE_URL",
    "ALLOW_WRITE",
    "EXECUTION_ARMED",
];

/// Shortest token accepted: a short token is guessable whatever the compare.
const MIN_TOKEN_LEN: usize = 16;

impl HubConfig {
    /// Loads `path` (if any), then the conventional `CHAIN`, `RPC_URL`, `REDIS_URL` and
    /// `DATABASE_URL` variables, then `PMM_<KEY>` overrides (highest), then validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, std::env::vars())
    }

    /// [`HubConfig::load`] over an explicit environment, so tests need not touch the process's.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(p) = path {
            builder = builder.add_source(config::File::from(p));
        }
        // Other daemons share the PMM_ prefix (PMM_MODE, PMM_ANVIL, ...): only the hub's keys
        // are taken from the environment, so unknown keys in the file still fail.
        let mut plain = std::collections::HashMap::new();
        let mut prefixed = std::collections::HashMap::new();
        for (k, v) in env {
            if UNPREFIXED.contains(&k.as_str()) {
                plain.insert(k, v);
            } else if k
                .strip_prefix("PMM_")
                .is_some_and(|rest| KEYS.contains(&rest.to_ascii_lowercase().as_str()))
            {
                prefixed.insert(k, v);
            }
        }
        builder = builder
            .add_source(config::Environment::default().source(Some(plain)))
            .add_source(
                config::Environment::with_prefix("PMM")
                    .source(Some(prefixed))
                    .try_parsing(false)
                    .list_separator(",")
                    .with_list_parse_key("allowed_hosts")
                    .with_list_parse_key("allowed_origins"),
            );
        let cfg: Self = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every cross-key rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth == AuthMode::None && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "auth",
                "\"none\" is allowed only with a loopback `listen` address",
            ));
        }
        if self.rpc_url.is_none() && self.devnet_file.is_none() {
            return Err(invalid(
                "rpc_url",
                "missing (or set devnet_file on a devnet)",
            ));
        }
        if self.devnet_file.is_some() && self.chain != ChainPreset::Devnet && self.rpc_url.is_none()
        {
            return Err(invalid(
                "devnet_file",
                "only usable with chain = \"devnet\"",
            ));
        }
        if self.monitor_poll_ms == 0 {
            return Err(invalid("monitor_poll_ms", "must be at least 1"));
        }
        if self.monitor_interval_s == Some(0) {
            return Err(invalid("monitor_interval_s", "must be at least 1 when set"));
        }
        if self.tool_log_buffer == 0 {
            return Err(invalid("tool_log_buffer", "must be at least 1"));
        }
        if self.redis_namespace.contains(char::is_whitespace) {
            return Err(invalid("redis_namespace", "must not contain white space"));
        }
        if self.dev_signer_from_env && self.chain != ChainPreset::Devnet {
            return Err(invalid(
                "dev_signer_from_env",
                "a raw key from the environment is accepted only on chain \"devnet\"",
            ));
        }
        if self.dev_signer_from_env && self.keystore_path.is_some() {
            return Err(invalid(
                "dev_signer_from_env",
                "set either keystore_path or dev_signer_from_env, not both",
            ));
        }
        if self.confirmations == 0 {
            return Err(invalid("confirmations", "must be at least 1"));
        }
        for (key, v) in [
            ("receipt_timeout_s", self.receipt_timeout_s),
            ("replace_after_s", self.replace_after_s),
            ("tx_deadline_s", self.tx_deadline_s),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Whether both write gates are open.
    pub fn writes_enabled(&self) -> bool {
        self.allow_write && self.execution_armed
    }

    /// The deposit routers: the preset's DODO deployments, or on a devnet the fixtures named
    /// in `devnet_file`. Missing ones stay `None`, which refuses deposits with that reason.
    pub fn resolve_routers(&self) -> Result<pmm_chain::tx::Routers, ConfigError> {
        if let Some(d) = self.chain.dodo() {
            return Ok(pmm_chain::tx::Routers {
                v2_proxy: Some(d.v2_proxy),
                dsp_proxy: d.dsp_proxy,
                approve: Some(d.approve),
            });
        }
        let Some(path) = &self.devnet_file else {
            return Ok(pmm_chain::tx::Routers::default());
        };
        #[derive(Deserialize)]
        struct DevnetRouters {
            dodo_approve: Address,
            v2_proxy: Address,
            dsp_proxy: Address,
        }
        #[derive(Deserialize)]
        struct DevnetFile {
            #[serde(default)]
            routers: Option<DevnetRouters>,
        }
        let f: DevnetFile = read_devnet_file(path)?;
        Ok(f.routers
            .map_or_else(Default::default, |r| pmm_chain::tx::Routers {
                v2_proxy: Some(r.v2_proxy),
                dsp_proxy: Some(r.dsp_proxy),
                approve: Some(r.dodo_approve),
            }))
    }

    /// The templates whose clones the hub prices, with each one's generation. DODO publishes
    /// no template addresses for the public presets, so their tables are empty and every V2
    /// pool there is refused as a clone of an unknown template; a devnet's come from the
    /// `templates` its `devnet_file` lists (none without one).
    pub fn resolve_templates(&self) -> Result<TemplateTable, ConfigError> {
        let name = self.chain.name();
        if self.chain != ChainPreset::Devnet {
            return Ok(TemplateTable::new(name, Vec::new()));
        }
        let Some(path) = &self.devnet_file else {
            return Ok(TemplateTable::new(name, Vec::new()));
        };
        #[derive(Deserialize)]
        struct DevnetFile {
            #[serde(default)]
            templates: Vec<KnownTemplate>,
        }
        let f: DevnetFile = read_devnet_file(path)?;
        Ok(TemplateTable::new(name, f.templates))
    }

    /// When the pool monitor sweeps the allowlist.
    pub fn monitor(&self) -> crate::monitor::Schedule {
        match self.monitor_interval_s {
            Some(s) => crate::monitor::Schedule::Every(std::time::Duration::from_secs(s)),
            None => crate::monitor::Schedule::EachBlock {
                heads: self.monitor_heads,
                poll: std::time::Duration::from_millis(self.monitor_poll_ms),
            },
        }
    }

    /// How old a head the pool monitor published may be for a tool call to use it without
    /// asking the node; `None` when tool calls always ask.
    pub fn tool_head_max_age(&self) -> Option<std::time::Duration> {
        match self.monitor() {
            crate::monitor::Schedule::EachBlock { poll, .. } if self.tools_use_monitor_head => {
                Some(poll * 2)
            }
            _ => None,
        }
    }

    /// The RPC URL: `rpc_url`, else the devnet file's `rpc_url`.
    pub fn resolve_rpc_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.rpc_url {
            return Ok(url.clone());
        }
        let path = self
            .devnet_file
            .as_ref()
            .ok_or_else(|| invalid("rpc_url", "missing"))?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "devnet_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        #[derive(Deserialize)]
        struct DevnetFile {
            rpc_url: String,
        }
        let f: DevnetFile = serde_json::from_str(&text)
            .map_err(|e| invalid("devnet_file", format!("{}: {e}", path.display())))?;
        Ok(f.rpc_url)
    }

    /// Tokens from `tokens_file`, `agent_token` and `operator_token`; empty in `auth = "none"`.
    pub fn resolve_tokens(&self) -> Result<TokenFile, ConfigError> {
        if self.auth == AuthMode::None {
            return Ok(TokenFile::default());
        }
        let mut tokens = match &self.tokens_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "tokens_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                serde_json::from_str::<TokenFile>(&text)
                    .map_err(|e| invalid("tokens_file", format!("{}: {e}", path.display())))?
            }
            None => TokenFile::default(),
        };
        tokens.agent.extend(self.agent_token.clone());
        tokens.operator.extend(self.operator_token.clone());
        if tokens.agent.is_empty() && tokens.operator.is_empty() {
            return Err(invalid(
                "auth",
                "\"tokens\" needs at least one token (tokens_file, agent_token or operator_token)",
            ));
        }
        let key_of = |is_agent: bool| {
            if is_agent {
                "agent_token"
            } else {
                "operator_token"
            }
        };
        for (is_agent, t) in tokens
            .agent
            .iter()
            .map(|t| (true, t))
            .chain(tokens.operator.iter().map(|t| (false, t)))
        {
            if t.len() < MIN_TOKEN_LEN {
                return Err(invalid(
                    key_of(is_agent),
                    format!("tokens must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
        }
        // One secret granting two roles is a configuration mistake; refuse it rather than
        // guess which role was meant.
        if tokens.agent.iter().any(|a| tokens.operator.contains(a)) {
            return Err(invalid(
                "operator_token",
                "a token is listed for both the agent and the operator role",
            ));
        }
        Ok(tokens)
    }
}

/// Reads the part of a `devnet_file` that `T` names; the file is the devnet tool's output.
fn read_devnet_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            "devnet_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| invalid("devnet_file", format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HubConfig {
        serde_json::from_value(
            serde_json::json!({"chain": "devnet", "rpc_url": "http://127.0.0.1:8545"}),
        )
        .unwrap()
    }

    #[test]
    fn defaults_bind_loopback_3000_with_tokens() {
        let c = base();
        assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.auth, AuthMode::Tokens);
        assert_eq!(ChainPreset::Bsc.chain_id(), 56);
        assert!(ChainPreset::Devnet.dodo().is_none());
        assert_eq!(
            ChainPreset::Ethereum.dodo().unwrap().v2_proxy,
            address!("a356867fDCEa8e71AEaF87805808803806231FdC")
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn chain_and_urls_come_from_the_conventional_variables() {
        let c = HubConfig::load_from(
            None,
            env(&[
                ("CHAIN", "bsc"),
                ("RPC_URL", "http://127.0.0.1:9545"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/pmm"),
                ("MODE", "ignored: not a hub key"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.chain, ChainPreset::Bsc);
        assert_eq!(c.rpc_url.as_deref(), Some("http://127.0.0.1:9545"));
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://postgres@127.0.0.1/pmm")
        );
    }

    #[test]
    fn pmm_variables_win_over_the_conventional_ones() {
        let c = HubConfig::load_from(
            None,
            env(&[
                ("CHAIN", "bsc"),
                ("PMM_CHAIN", "arbitrum"),
                ("RPC_URL", "http://127.0.0.1:1"),
                ("PMM_RPC_URL", "http://127.0.0.1:2"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.chain, ChainPreset::Arbitrum);
        assert_eq!(c.rpc_url.as_deref(), Some("http://127.0.0.1:2"));
        let err = HubConfig::load_from(None, env(&[("CHAIN", "solana"), ("RPC_URL", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("solana"), "{err}");
    }

    #[test]
    fn the_committed_deployment_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hub.toml");
        let c = HubConfig::load_from(
            Some(&path),
            env(&[("RPC_URL", "https://rpc.example.invalid")]),
        )
        .expect("config/hub.toml loads");
        assert_eq!(c.chain, ChainPreset::Ethereum);
        assert_eq!(c.auth, AuthMode::Tokens);
        assert!(c.listen.ip().is_loopback());
    }

    #[test]
    fn auth_none_requires_loopback() {
        let mut c = base();
        c.auth = AuthMode::None;
        assert!(c.validate().is_ok());
        c.listen = "0.0.0.0:3000".parse().unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`auth`"), "{err}");
    }

    #[test]
    fn tokens_required_and_long() {
        let mut c = base();
        assert!(
            c.resolve_tokens()
                .unwrap_err()
                .to_string()
                .contains("`auth`")
        );
        c.agent_token = Some("short".into());
        assert!(
            c.resolve_tokens()
                .unwrap_err()
                .to_string()
                .contains("agent_token")
        );
        c.agent_token = Some("a".repeat(32));
        assert_eq!(c.resolve_tokens().unwrap().agent.len(), 1);
        c.operator_token = Some("a".repeat(32));
        let err = c.resolve_tokens().unwrap_err().to_string();
        assert!(err.contains("both the agent and the operator"), "{err}");
    }

    #[test]
    fn debug_hides_urls_and_tokens() {
        let mut c = base();
        c.rpc_url = Some("https://rpc.example.org/v2/RPCKEY".into());
        c.database_url = Some("postgres://u:DBPASS@127.0.0.1/pmm".into());
        c.agent_token = Some("AGENTTOKEN-0123456789".into());
        let text = format!("{c:?}");
        for secret in ["RPCKEY", "DBPASS", "AGENTTOKEN"] {
            assert!(!text.contains(secret), "{text}");
        }
        let tokens = TokenFile {
            agent: vec!["AGENTTOKEN-0123456789".into()],
            operator: Vec::new(),
        };
        assert!(!format!("{tokens:?}").contains("AGENTTOKEN"));
    }

    #[test]
    fn monitor_heads_default_to_subscribe_and_refuse_unknown_values() {
        assert_eq!(base().monitor_heads, pmm_chain::HeadMode::Subscribe);
        let c = HubConfig::load_from(
            None,
            env(&[
                ("CHAIN", "devnet"),
                ("RPC_URL", "http://127.0.0.1:8545"),
                ("PMM_MONITOR_HEADS", "poll"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.monitor_heads, pmm_chain::HeadMode::Poll);
        let err = HubConfig::load_from(
            None,
            env(&[
                ("CHAIN", "devnet"),
                ("RPC_URL", "http://127.0.0.1:8545"),
                ("PMM_MONITOR_HEADS", "push"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("push") && err.contains("monitor_heads"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let r: Result<HubConfig, _> = serde_json::from_value(
            serde_json::json!({"chain": "devnet", "rpc_url": "x", "lisen": "1"}),
        );
        assert!(r.unwrap_err().to_string().contains("lisen"));
    }
}
