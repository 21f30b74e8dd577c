//! The hub itself: start-up checks, the shared state every tool reads, [`Hub::invoke`] (role
//! check, timing, metrics, the `tool_calls` row) and `/health`. The tools live in [`crate::tools`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use pmm_chain::{ChainClient, PoolType};
use pmm_core::config::{Allowlist, PoolProfiles};
use pmm_core::math::Generation;
use pmm_core::schema::ChainName;
use pmm_core::templates::{TemplateTable, check_pin};
use pmm_store::{PgStore, RedisStore, ToolCall, ToolOutcome};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{Caller, Role};
use crate::config::HubConfig;
use crate::error::ToolError;
use crate::toollog::{ToolLog, ToolLogStatus};
use crate::tools::{audit_fields, required_role};

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A config file does not validate.
    #[error("{file}: {source}")]
    File {
        /// Which file.
        file: String,
        /// Why.
        source: pmm_core::config::ConfigError,
    },
    /// The RPC is unreachable.
    #[error(transparent)]
    Chain(#[from] pmm_chain::ChainError),
    /// The RPC serves another chain than configured.
    #[error("chain id mismatch: config says {preset} ({expected}), the RPC reports {found}")]
    ChainIdMismatch {
        /// Preset name.
        preset: &'static str,
        /// Expected id.
        expected: u64,
        /// Reported id.
        found: u64,
    },
    /// The allowlist's `chain_id` differs from the configured chain's.
    #[error("chain id mismatch: config says {preset} ({expected}), the allowlist says {found}")]
    AllowlistChainIdMismatch {
        /// Preset name.
        preset: &'static str,
        /// Expected id.
        expected: u64,
        /// The allowlist's `chain_id`.
        found: u64,
    },
    /// The allowlist is for another chain than configured.
    #[error("chain name mismatch: config says {preset}, the allowlist says {allowlist}")]
    ChainNameMismatch {
        /// Preset name.
        preset: &'static str,
        /// The allowlist's `chain`.
        allowlist: String,
    },
    /// A store URL is invalid.
    #[error("store: {0}")]
    Store(#[from] pmm_store::StoreError),
    /// The signer could not be loaded.
    #[error("signer: {0}")]
    Signer(#[from] crate::signer::SignerError),
    /// Writes are enabled without what they need.
    #[error("writes enabled but {0}")]
    Writes(&'static str),
    /// An allowlisted pool is not what its entry claims (`version()` or the probed interface
    /// of another family, a template of unknown code or of another generation than the entry
    /// pins), or cannot be probed.
    #[error("allowlist {entry} ({pool}): {why}")]
    AllowlistEntry {
        /// `pools[<index>]`.
        entry: String,
        /// The pool.
        pool: Address,
        /// What does not match.
        why: String,
    },
}

pub(crate) struct Inner {
    pub(crate) chain: ChainClient,
    pub(crate) chain_name: ChainName,
    pub(crate) allowlist: Allowlist,
    pub(crate) profiles: PoolProfiles,
    pub(crate) redis: Option<RedisStore>,
    pub(crate) pg: Option<PgStore>,
    pub(crate) log: ToolLog,
    /// The account writes would be signed by; `None` denies every write under `balance`.
    pub(crate) executor: Option<Address>,
    /// The chain's known pool templates, which name each V2 pool's generation.
    pub(crate) templates: TemplateTable,
    /// Family and generation per pool: the allowlist's, checked at start, and those of other
    /// pools once probed (neither changes: a clone's code is fixed).
    pub(crate) identities: Mutex<HashMap<Address, PoolIdentity>>,
    pub(crate) writes: crate::tools::WriteSetup,
    pub(crate) monitor: crate::monitor::MonitorState,
    /// How old a head the monitor published may be for tool calls to use it.
    pub(crate) tool_head_max_age: Option<std::time::Duration>,
}

/// What the hub established about a pool before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolIdentity {
    /// Pool family.
    pub(crate) kind: PoolType,
    /// Its template's generation; `None` for V1 pools.
    pub(crate) generation: Option<Generation>,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("chain", &self.inner.chain)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Hub {
    /// Connects to the chain (refusing a chain-id mismatch) and the configured stores.
    pub async fn start(cfg: &HubConfig) -> Result<Self, StartError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| StartError::File {
                file: path.display().to_string(),
                source: pmm_core::config::ConfigError {
                    path: "(file)".into(),
                    message: e.to_string(),
                },
            })
        };
        let profiles =
            PoolProfiles::from_json_str(&read(&cfg.profiles_path)?).map_err(|source| {
                StartError::File {
                    file: cfg.profiles_path.display().to_string(),
                    source,
                }
            })?;
        let allowlist =
            Allowlist::from_json_str(&read(&cfg.allowlist_path)?, &profiles).map_err(|source| {
                StartError::File {
                    file: cfg.allowlist_path.display().to_string(),
                    source,
                }
            })?;
        let chain = ChainClient::connect(&cfg.resolve_rpc_url()?).await?;
        let expected = cfg.chain.chain_id();
        if chain.chain_id() != expected {
            return Err(StartError::ChainIdMismatch {
                preset: cfg.chain.name(),
                expected,
                found: chain.chain_id(),
            });
        }
        if let Some(found) = allowlist.chain_id.filter(|&id| id != expected) {
            return Err(StartError::AllowlistChainIdMismatch {
                preset: cfg.chain.name(),
                expected,
                found,
            });
        }
        let chain_name =
            ChainName::new(cfg.chain.name()).map_err(|e| crate::config::ConfigError::Invalid {
                key: "chain",
                message: e.to_string(),
            })?;
        // Redis keys and the policy's allowlist check both name the chain; one name for both.
        if allowlist.chain != chain_name {
            return Err(StartError::ChainNameMismatch {
                preset: cfg.chain.name(),
                allowlist: allowlist.chain.to_string(),
            });
        }
        let templates = cfg.resolve_templates()?;
        let identities = check_allowlisted_pools(&chain, &allowlist, &profiles, &templates).await?;
        let redis = match &cfg.redis_url {
            Some(url) => Some(RedisStore::connect(url, cfg.redis_namespace.clone())?),
            None => None,
        };
        let (pg, log) = match &cfg.database_url {
            Some(url) => {
                let pg = PgStore::connect(url, 16)?;
                (Some(pg.clone()), ToolLog::spawn(pg, cfg.tool_log_buffer))
            }
            None => (None, ToolLog::disabled()),
        };
        let signer = match (&cfg.keystore_path, cfg.dev_signer_from_env) {
            (Some(path), _) => {
                let password = crate::signer::read_password(cfg.keystore_password_file.as_deref())?;
                Some(crate::signer::HubSigner::from_keystore(path, password).await?)
            }
            (None, true) => Some(crate::signer::HubSigner::from_dev_env(cfg.chain)?),
            (None, false) => None,
        };
        if cfg.writes_enabled() {
            if signer.is_none() {
                return Err(StartError::Writes(
                    "no signer (keystore_path or dev_signer_from_env)",
                ));
            }
            if redis.is_none() || pg.is_none() {
                return Err(StartError::Writes("writes need redis_url and database_url"));
            }
        }
        if let (Some(s), Some(e)) = (&signer, cfg.executor)
            && s.address() != e
        {
            return Err(StartError::Writes(
                "executor differs from the signer's address",
            ));
        }
        let executor = signer.as_ref().map(|s| s.address()).or(cfg.executor);
        let writes = crate::tools::WriteSetup {
            allow_write: cfg.allow_write,
            execution_armed: cfg.execution_armed,
            signer,
            routers: cfg.resolve_routers()?,
            confirmations: cfg.confirmations,
            receipt_timeout: std::time::Duration::from_secs(cfg.receipt_timeout_s),
            replace_after: std::time::Duration::from_secs(cfg.replace_after_s),
            tx_deadline_s: cfg.tx_deadline_s,
            local: Arc::default(),
        };
        tracing::info!(
            chain = cfg.chain.name(),
            rpc = chain.endpoint(),
            allow_write = cfg.allow_write,
            execution_armed = cfg.execution_armed,
            signer = ?writes.signer.as_ref().map(|s| s.address()),
            "hub connected"
        );
        let hub = Self {
            inner: Arc::new(Inner {
                chain,
                chain_name,
                allowlist,
                profiles,
                redis,
                pg,
                log,
                executor,
                templates,
                identities: Mutex::new(identities),
                writes,
                monitor: crate::monitor::MonitorState::default(),
                tool_head_max_age: cfg.tool_head_max_age(),
            }),
        };
        crate::monitor::spawn(&hub, cfg.monitor());
        Ok(hub)
    }

    /// The account fees are quoted for and dry runs sent from: the executor, else the zero
    /// address (reads need some account; writes without an executor are denied).
    pub(crate) fn fee_trader(&self) -> Address {
        self.inner.executor.unwrap_or(Address::ZERO)
    }

    /// Waits, at most `within`, for queued `tool_calls` rows to reach Postgres; returns how
    /// many are left (0 when all were written).
    pub async fn flush_log(&self, within: std::time::Duration) -> usize {
        let log = &self.inner.log;
        if log.flush(within).await {
            0
        } else {
            log.status().pending
        }
    }

    /// The head a tool call reads at: the pool monitor's when it is fresh, else the node's,
    /// asked now. [`HeadView::step`](crate::monitor::HeadView::step) says when a call waits
    /// for the monitor; a head is never used older than its maximum age, so a monitor that
    /// cannot reach the node never serves stale state as current.
    pub(crate) async fn current_head(&self) -> Result<pmm_chain::Head, ToolError> {
        use crate::monitor::HeadStep;
        let Some(max_age) = self.inner.tool_head_max_age else {
            return Ok(self.inner.chain.head().await?);
        };
        let mut view = self.inner.monitor.head_view();
        let start = tokio::time::Instant::now();
        let mut joined = None;
        loop {
            let step = view.borrow_and_update().step(max_age, &mut joined);
            let wait = match step {
                HeadStep::Use(head) => {
                    metrics::counter!("pmm_hub_tool_heads_total", "source" => "monitor")
                        .increment(1);
                    return Ok(head);
                }
                HeadStep::Wait(wait) => wait,
                HeadStep::AskNode => break,
            };
            match tokio::time::timeout_at(start + wait, view.changed()).await {
                Ok(Ok(())) => continue,
                // The wait is over, or the monitor is gone.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        metrics::counter!("pmm_hub_tool_heads_total", "source" => "node").increment(1);
        Ok(self.inner.chain.head().await?)
    }

    /// The chain client (benchmarks and tests read through it).
    pub fn chain(&self) -> &ChainClient {
        &self.inner.chain
    }

    /// Runs one tool for `caller`: role check, timing, metrics and the `tool_calls` row.
    pub async fn invoke<P, O, F>(
        &self,
        caller: &Caller,
        tool: &'static str,
        params: &P,
        run: F,
    ) -> Result<O, ToolError>
    where
        P: Serialize,
        O: Serialize,
        F: Future<Output = Result<O, ToolError>>,
    {
        let started = Instant::now();
        let called_at = chrono::Utc::now();
        let params_json = serde_json::to_value(params).unwrap_or(Value::Null);
        let result = match required_role(tool) {
            Some(needed) if caller.role < needed => Err(ToolError::Forbidden {
                tool: tool.to_owned(),
                needed: if needed == Role::Operator {
                    "operator"
                } else {
                    "agent"
                },
            }),
            Some(_) => run.await,
            None => Err(ToolError::UnknownTool(tool.to_owned())),
        };
        let outcome = match &result {
            Ok(v) => ToolOutcome::Ok(serde_json::to_value(v).unwrap_or(Value::Null)),
            Err(e) => ToolOutcome::Err(format!("{}: {e}", e.code())),
        };
        self.record(caller, tool, params_json, outcome, started, called_at);
        result
    }

    /// Records a call that failed before it reached a tool (unknown tool, undecodable params).
    pub fn record_rejected(&self, caller: &Caller, tool: &str, params: Value, err: &ToolError) {
        self.record(
            caller,
            tool,
            params,
            ToolOutcome::Err(format!("{}: {err}", err.code())),
            Instant::now(),
            chrono::Utc::now(),
        );
    }

    fn record(
        &self,
        caller: &Caller,
        tool: &str,
        params: Value,
        outcome: ToolOutcome,
        started: Instant,
        called_at: chrono::DateTime<chrono::Utc>,
    ) {
        let elapsed = started.elapsed();
        let status = if matches!(outcome, ToolOutcome::Ok(_)) {
            "ok"
        } else {
            "error"
        };
        // A caller picks the name of an unknown tool: as a label it would grow the metric set
        // without bound, so every unknown name counts under one label.
        let label = if required_role(tool).is_some() {
            tool.to_owned()
        } else {
            "unknown".to_owned()
        };
        metrics::counter!("pmm_hub_tool_calls_total", "tool" => label.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("pmm_hub_tool_call_seconds", "tool" => label)
            .record(elapsed.as_secs_f64());
        let (verdict, matched_rule) = match &outcome {
            ToolOutcome::Ok(v) => audit_fields(v),
            // A closed gate is a verdict an operator looks for, not just an error.
            ToolOutcome::Err(e) if e.starts_with("gate_closed:") => {
                (Some("gate_closed".to_owned()), None)
            }
            ToolOutcome::Err(_) => (None, None),
        };
        self.inner.log.record(ToolCall {
            id: uuid::Uuid::new_v4(),
            called_at,
            caller: caller.name.clone(),
            tool: tool.to_owned(),
            params,
            outcome,
            verdict,
            matched_rule,
            latency_ms: u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX),
            trace_id: caller.trace_id.clone(),
        });
    }

    pub(crate) fn redis_required(&self) -> Result<&RedisStore, ToolError> {
        self.inner.redis.as_ref().ok_or_else(|| {
            ToolError::Store("no REDIS_URL configured: breaker state is unavailable".into())
        })
    }

    /// Status for `/health`: chain, Redis, Postgres, and the tool-call log.
    pub async fn health(&self) -> HealthReport {
        let chain = match self.inner.chain.block_number().await {
            Ok(n) => ComponentStatus::ok(format!("block {n}")),
            Err(e) => ComponentStatus::down(e.to_string()),
        };
        let redis = match &self.inner.redis {
            None => ComponentStatus::not_configured(),
            Some(r) => match r.ping().await {
                Ok(()) => ComponentStatus::ok(r.endpoint().to_owned()),
                Err(e) => ComponentStatus::down(e.to_string()),
            },
        };
        let postgres = match &self.inner.pg {
            None => ComponentStatus::not_configured(),
            Some(p) => match p.ping().await {
                Ok(()) => ComponentStatus::ok(p.endpoint().to_owned()),
                Err(e) => ComponentStatus::down(e.to_string()),
            },
        };
        let ok = chain.status == "ok" && redis.status != "down";
        HealthReport {
            status: if ok { "ok" } else { "degraded" },
            chain_name: self.inner.chain_name.to_string(),
            chain_id: self.inner.chain.chain_id(),
            rpc: self.inner.chain.endpoint().to_owned(),
            chain,
            redis,
            postgres,
            tool_log: self.inner.log.status(),
            writes: WriteGates {
                allow_write: self.inner.writes.allow_write,
                execution_armed: self.inner.writes.execution_armed,
                signer: self.inner.writes.signer.as_ref().map(|s| s.address()),
            },
            monitor_block: self.inner.monitor.last_block(),
            mcp_sessions: None,
        }
    }
}

/// The write gates in `/health` (the signer's address is public; its key never appears).
#[derive(Debug, Clone, Serialize)]
pub struct WriteGates {
    /// `ALLOW_WRITE`.
    pub allow_write: bool,
    /// `EXECUTION_ARMED`.
    pub execution_armed: bool,
    /// Signer address, when one is loaded.
    pub signer: Option<Address>,
}

/// Refuses to start when an allowlisted pool is not what its entry claims: its `version()`
/// must select a profile of the entry's `pool_type`, probing its interface must detect that
/// family too (a DVM listed as a DSP would otherwise be read with DSP math), and its template
/// must be a known one of the generation the entry pins, if it pins one. Returns what it
/// established about each pool.
async fn check_allowlisted_pools(
    chain: &ChainClient,
    allowlist: &Allowlist,
    profiles: &PoolProfiles,
    templates: &TemplateTable,
) -> Result<HashMap<Address, PoolIdentity>, StartError> {
    let mut identities = HashMap::new();
    for (idx, entry) in allowlist.pools.iter().enumerate() {
        let fail = |why: String| StartError::AllowlistEntry {
            entry: format!("pools[{idx}]"),
            pool: entry.address,
            why,
        };
        let report = chain
            .identify_pool_interface(entry.address)
            .await
            .map_err(|e| fail(format!("cannot probe the pool: {e}")))?;
        let version = report.version.clone().unwrap_or_default();
        profiles
            .check_version(&version, entry.pool_type)
            .map_err(|why| fail(format!("pool_type {}: the pool's {why}", entry.pool_type)))?;
        if report.detected_profile.kind() != Some(entry.pool_type) {
            return Err(fail(format!(
                "pool_type {}: probing the pool detects {:?}",
                entry.pool_type, report.detected_profile
            )));
        }
        let generation = templates
            .generation_of(entry.pool_type, report.template_code())
            .and_then(|g| check_pin(g, entry.generation).map(|()| g))
            .map_err(|e| fail(format!("generation: {e}")))?;
        identities.insert(
            entry.address,
            PoolIdentity {
                kind: entry.pool_type,
                generation,
            },
        );
    }
    Ok(identities)
}

/// One dependency in `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    /// `ok`, `down` or `not_configured`.
    pub status: &'static str,
    /// Endpoint or error text (never credentials).
    pub detail: String,
}

impl ComponentStatus {
    fn ok(detail: String) -> Self {
        Self {
            status: "ok",
            detail,
        }
    }
    fn down(detail: String) -> Self {
        Self {
            status: "down",
            detail,
        }
    }
    fn not_configured() -> Self {
        Self {
            status: "not_configured",
            detail: String::new(),
        }
    }
}

/// Body of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Write gates and signer.
    pub writes: WriteGates,
    /// Chain short name.
    pub chain_name: String,
    /// Chain id.
    pub chain_id: u64,
    /// RPC origin without credentials.
    pub rpc: String,
    /// RPC status.
    pub chain: ComponentStatus,
    /// Redis status.
    pub redis: ComponentStatus,
    /// Postgres status.
    pub postgres: ComponentStatus,
    /// The tool-call log buffer.
    pub tool_log: ToolLogStatus,
    /// Block of the pool monitor's last completed sweep of the allowlist.
    pub monitor_block: Option<u64>,
    /// Open MCP sessions and their cap (set by the HTTP layer, which owns them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_sessions: Option<crate::sessions::SessionStats>,
}
