//! The hub's logic, shared by `/mcp` and `/mcp/call`: every tool runs through [`Hub::invoke`],
//! which checks the role, times the call, counts it and queues its `tool_calls` row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use pmm_chain::abi::IDODOV2Shares;
use pmm_chain::{ChainClient, InterfaceReport, PoolRead, PoolType, ReadSpec};
use pmm_core::config::{Allowlist, PoolEntry, PoolProfiles};
use pmm_core::keys::{BreakerState, daily_cap_scope, utc_day};
use pmm_core::math::{self, LiquidityState, ONE, PmmState};
use pmm_core::policy::{
    ActionProposal, ExpectedOutcome, PolicyInput, RiskReport, Verdict, evaluate,
};
use pmm_core::schema::{Amount, ChainName, OracleKind, PoolState, normalize};
use pmm_store::{PgStore, RedisStore, ToolCall, ToolOutcome};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Caller, Role};
use crate::config::HubConfig;
use crate::error::ToolError;
use crate::toollog::{ToolLog, ToolLogStatus};
use crate::tools::*;

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
}

struct Inner {
    chain: ChainClient,
    chain_name: ChainName,
    allowlist: Allowlist,
    redis: Option<RedisStore>,
    pg: Option<PgStore>,
    log: ToolLog,
    executor: Address,
    detected: Mutex<HashMap<Address, PoolType>>,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("chain", &self.inner.chain)
            .finish_non_exhaustive()
    }
}

fn now_s() -> u64 {
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
        let redis = match &cfg.redis_url {
            Some(url) => Some(RedisStore::connect(url, cfg.redis_namespace.clone())?),
            None => None,
        };
        let (pg, log) = match &cfg.database_url {
            Some(url) => {
                let pg = PgStore::connect(url, 4)?;
                (Some(pg.clone()), ToolLog::spawn(pg, cfg.tool_log_buffer))
            }
            None => (None, ToolLog::disabled()),
        };
        tracing::info!(
            chain = cfg.chain.name(),
            rpc = chain.endpoint(),
            "hub connected"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                chain,
                chain_name,
                allowlist,
                redis,
                pg,
                log,
                executor: cfg.executor.unwrap_or(Address::ZERO),
                detected: Mutex::default(),
            }),
        })
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
            trace_id: None,
        });
    }

    /// `/mcp/call`: decodes `params` for `tool` and runs it through [`Hub::invoke`].
    pub async fn dispatch(
        &self,
        caller: &Caller,
        tool: &str,
        params: Value,
    ) -> Result<Value, ToolError> {
        fn decode<P: DeserializeOwned>(params: &Value) -> Result<P, ToolError> {
            let v = if params.is_null() {
                Value::Object(Default::default())
            } else {
                params.clone()
            };
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let at = if path == "." {
                    "params".to_owned()
                } else {
                    format!("params.{path}")
                };
                ToolError::InvalidParams(format!("{at}: {}", e.into_inner()))
            })
        }
        fn out<O: Serialize>(o: O) -> Value {
            serde_json::to_value(o).unwrap_or(Value::Null)
        }
        let decoded = match tool {
            GET_POOL_STATE | IDENTIFY | RESUME => decode::<PoolParams>(&params).map(Decoded::Pool),
            QUOTE_ADD => decode::<QuoteAddParams>(&params).map(Decoded::Quote),
            RISK_CHECK => decode::<RiskCheckParams>(&params).map(Decoded::Risk),
            SIMULATE => decode::<SimulateParams>(&params).map(Decoded::Simulate),
            PAUSE => decode::<PauseParams>(&params).map(Decoded::Pause),
            other => Err(ToolError::UnknownTool(other.chars().take(128).collect())),
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                self.record_rejected(caller, tool, params, &e);
                return Err(e);
            }
        };
        // Each tool's future is its own type, so every arm needs its own `invoke`.
        macro_rules! run {
            ($tool:expr, $p:ident, $method:ident) => {
                self.invoke(caller, $tool, &$p, self.$method(&$p))
                    .await
                    .map(out)
            };
        }
        match decoded {
            Decoded::Pool(p) => match tool {
                GET_POOL_STATE => run!(GET_POOL_STATE, p, get_pool_state),
                IDENTIFY => run!(IDENTIFY, p, identify),
                _ => run!(RESUME, p, resume_pool),
            },
            Decoded::Quote(p) => run!(QUOTE_ADD, p, quote_add_liquidity),
            Decoded::Risk(p) => run!(RISK_CHECK, p, risk_check),
            Decoded::Simulate(p) => run!(SIMULATE, p, simulate_action),
            Decoded::Pause(p) => run!(PAUSE, p, pause_pool),
        }
    }

    // ---- tools ---------------------------------------------------------------------------

    /// `dodo.get_pool_state`: one batched read, normalized.
    pub async fn get_pool_state(&self, p: &PoolParams) -> Result<PoolState, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        Ok(self.read_state(pool).await?.1)
    }

    /// `dodo.identify_pool_interface`.
    pub async fn identify(&self, p: &PoolParams) -> Result<InterfaceReport, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        Ok(self.inner.chain.identify_pool_interface(pool).await?)
    }

    /// `dodo.quote_add_liquidity`: exact `buyShares` outcome of depositing the amounts.
    pub async fn quote_add_liquidity(
        &self,
        p: &QuoteAddParams,
    ) -> Result<AddLiquidityQuote, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        if p.base_amount.is_zero() {
            return Err(ToolError::InvalidParams(
                "base_amount: must be greater than 0 (buyShares needs base input)".into(),
            ));
        }
        let (read, _, _) = self.read_state(pool).await?;
        let (kind, liq) = liquidity_of(&read)?;
        let base_balance = add(read.base_balance, p.base_amount.0, "base_amount")?;
        let quote_balance = add(read.quote_balance, p.quote_amount.0, "quote_amount")?;
        let bs = math::buy_shares(kind, &liq, base_balance, quote_balance)?;
        let mid = mid_after_deposit(
            kind,
            &pmm_of(&read)?,
            base_balance,
            quote_balance,
            bs.targets.map(|t| (t.base, t.quote)),
        );
        Ok(AddLiquidityQuote {
            pool,
            block_number: read.block.number,
            shares: Amount(bs.received),
            minted: Amount(bs.minted),
            base_taken: Amount(bs.base_input.saturating_sub(bs.donated_base)),
            quote_taken: Amount(bs.quote_input.saturating_sub(bs.donated_quote)),
            base_donated: Amount(bs.donated_base),
            quote_donated: Amount(bs.donated_quote),
            base_input: Amount(bs.base_input),
            quote_input: Amount(bs.quote_input),
            new_total_supply: Amount(bs.new_total_supply),
            resulting_inventory_ratio: mid
                .and_then(|m| inventory_ratio(base_balance, quote_balance, m)),
            resulting_mid_price_raw: mid.map(Amount),
        })
    }

    /// `dodo.risk_check`: the policy over the live state and the store's counters.
    pub async fn risk_check(&self, p: &RiskCheckParams) -> Result<RiskReport, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let action = p.action.clone().unwrap_or(ActionProposal::Hold {
            reason: "risk check".into(),
        });
        if let Some(target) = action.pool()
            && target != pool
        {
            return Err(ToolError::InvalidParams(format!(
                "action.pool {target} differs from pool {pool}"
            )));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let expected = self.expected_outcome(&read, &action).ok();
        self.evaluate_policy(&read, &state, &action, expected).await
    }

    /// `dodo.simulate_action`: exact math, a dry run on the node, and the policy. Never signs.
    pub async fn simulate_action(&self, p: &SimulateParams) -> Result<SimulationResult, ToolError> {
        let action = &p.action;
        let Some(pool) = action.pool() else {
            return Err(ToolError::InvalidParams(
                "action: hold names no pool and has nothing to simulate; dodo.risk_check {pool} checks a pool"
                    .into(),
            ));
        };
        let (read, state, _) = self.read_state(pool).await?;
        let expected = self.expected_outcome(&read, action);
        let (predicted, dry_run) = match &expected {
            Ok(_) => self.dry_run(&read, action).await?,
            Err(e) => (
                None,
                ChainDryRun {
                    error: Some(e.to_string()),
                    ..ChainDryRun::empty(read.block.number)
                },
            ),
        };
        let report = self
            .evaluate_policy(&read, &state, action, expected.ok())
            .await?;
        let (verdict, denied_by) = if report.verdict == Verdict::Deny {
            (Verdict::Deny, rule_name(report.decided_by))
        } else if dry_run.error.is_some() || dry_run.matches_math == Some(false) {
            (Verdict::Deny, Some("simulation".to_owned()))
        } else {
            (Verdict::Allow, None)
        };
        Ok(SimulationResult {
            verdict,
            denied_by,
            risk: report,
            predicted,
            dry_run: Some(dry_run),
        })
    }

    /// `dodo.pause_pool` (operator): trips the breaker.
    pub async fn pause_pool(&self, p: &PauseParams) -> Result<BreakerResult, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let redis = self.redis_required()?;
        let st = redis
            .trip_breaker(&self.inner.chain_name, pool, &p.reason, now_s())
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        Ok(BreakerResult {
            pool,
            tripped: st.tripped,
            reason: st.reason,
        })
    }

    /// `dodo.resume_pool` (operator): clears the breaker.
    pub async fn resume_pool(&self, p: &PoolParams) -> Result<BreakerResult, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let redis = self.redis_required()?;
        redis
            .reset_breaker(&self.inner.chain_name, pool)
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        Ok(BreakerResult {
            pool,
            tripped: false,
            reason: String::new(),
        })
    }

    // ---- plumbing ------------------------------------------------------------------------

    fn redis_required(&self) -> Result<&RedisStore, ToolError> {
        self.inner.redis.as_ref().ok_or_else(|| {
            ToolError::Store("no REDIS_URL configured: breaker state is unavailable".into())
        })
    }

    /// Pool family: the allowlist's, else detected once and remembered.
    async fn pool_type(&self, pool: Address) -> Result<(PoolType, Option<&PoolEntry>), ToolError> {
        if let Some(entry) = self.inner.allowlist.pool(pool) {
            return Ok((entry.pool_type, Some(entry)));
        }
        if let Some(t) = self
            .inner
            .detected
            .lock()
            .ok()
            .and_then(|m| m.get(&pool).copied())
        {
            return Ok((t, None));
        }
        let report = self.inner.chain.identify_pool_interface(pool).await?;
        let kind = report.detected_profile.kind().ok_or_else(|| {
            ToolError::Unsupported(format!(
                "{pool} is not a recognised DODO pool: {}",
                report.notes.join("; ")
            ))
        })?;
        if let Ok(mut m) = self.inner.detected.lock() {
            m.insert(pool, kind);
        }
        Ok((kind, None))
    }

    /// One batched read, checked against the allowlist and normalized.
    pub async fn read_state(
        &self,
        pool: Address,
    ) -> Result<(Arc<PoolRead>, PoolState, Option<&PoolEntry>), ToolError> {
        let (kind, entry) = self.pool_type(pool).await?;
        let feed = entry.and_then(|e| match e.oracle.kind {
            OracleKind::Chainlink => e.oracle.address,
            _ => None,
        });
        let spec = ReadSpec {
            pool,
            kind,
            feed,
            fee_trader: self.inner.executor,
        };
        let read = self.inner.chain.read_pool(&spec).await?;
        if let Some(e) = entry {
            read.check_entry(e)?;
        }
        let profile = entry.map_or_else(|| format!("detected:{kind}"), |e| e.profile.clone());
        let raw = read.to_raw(
            self.inner.chain_name.clone(),
            &profile,
            entry.map(|e| &e.oracle),
        )?;
        let state = normalize(raw)?;
        Ok((read, state, entry))
    }

    fn expected_outcome(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<ExpectedOutcome, ToolError> {
        match action {
            ActionProposal::Hold { .. } => {
                Err(ToolError::Unsupported("hold has no outputs".into()))
            }
            ActionProposal::AddLiquidity {
                base_amount,
                quote_amount,
                ..
            } => {
                let (kind, liq) = liquidity_of(read)?;
                let bs = math::buy_shares(
                    kind,
                    &liq,
                    add(read.base_balance, base_amount.0, "base_amount")?,
                    add(read.quote_balance, quote_amount.0, "quote_amount")?,
                )?;
                Ok(ExpectedOutcome::Add {
                    shares: Amount(bs.received),
                })
            }
            ActionProposal::RemoveLiquidity { shares, .. } => {
                let (kind, liq) = liquidity_of(read)?;
                // The executor's holding bounds the burn; the dry run checks it on chain.
                let ss = math::sell_shares(
                    kind,
                    &liq,
                    read.base_balance,
                    read.quote_balance,
                    shares.0,
                    shares.0,
                )?;
                Ok(ExpectedOutcome::Remove {
                    base: Amount(ss.base_amount),
                    quote: Amount(ss.quote_amount),
                })
            }
        }
    }

    /// Breaker, cooldown and the daily usage of `now`'s UTC day from Redis (`None` = unknown,
    /// which denies writes). Keys name the chain as the allowlist does; usage is read under
    /// `daily_cap_scope`, the scope a write reserves under.
    async fn store_inputs(
        &self,
        pool: Address,
        write: bool,
        now: u64,
    ) -> Result<(Option<BreakerState>, Option<u64>, Option<Amount>), ToolError> {
        let Some(redis) = &self.inner.redis else {
            return Ok((None, None, None));
        };
        let chain = &self.inner.chain_name;
        let breaker = redis.breaker(chain, pool).await;
        let cooldown = redis.cooldown(chain, pool).await;
        let used = redis
            .daily_cap_used(&daily_cap_scope(chain, pool), utc_day(now))
            .await;
        if write && (breaker.is_err() || cooldown.is_err() || used.is_err()) {
            metrics::counter!("pmm_hub_store_failures_total").increment(1);
        }
        let breaker = breaker.ok().map(|b| b.unwrap_or_else(BreakerState::clear));
        Ok((
            breaker,
            cooldown.ok().map(|c| c.unwrap_or(0)),
            used.ok().map(|u| Amount(U256::from(u))),
        ))
    }

    async fn evaluate_policy(
        &self,
        read: &PoolRead,
        state: &PoolState,
        action: &ActionProposal,
        expected: Option<ExpectedOutcome>,
    ) -> Result<RiskReport, ToolError> {
        let pool = read.pool;
        let now = now_s();
        let (breaker, cooldown_until, daily_used) =
            self.store_inputs(pool, action.is_write(), now).await?;
        let gas_price_wei = self.inner.chain.provider().get_gas_price().await.ok();
        let report = evaluate(&PolicyInput {
            proposal: action,
            state,
            allowlist: &self.inner.allowlist,
            expected,
            oracle: state.oracle_price.as_ref(),
            breaker: breaker.as_ref(),
            cooldown_until,
            daily_used,
            gas_price_wei,
            now,
        });
        // The policy alone decides a trip (deviation, stale or missing feed); the hub stores it.
        if let (Some(reason), Some(redis)) = (&report.trip_breaker, &self.inner.redis) {
            match redis
                .trip_breaker(&self.inner.chain_name, pool, reason, now)
                .await
            {
                Ok(_) => {
                    metrics::counter!("pmm_hub_breaker_trips_total").increment(1);
                    tracing::warn!(%pool, reason, "circuit breaker tripped");
                }
                Err(e) => tracing::error!(%pool, error = %e, "could not trip the circuit breaker"),
            }
        }
        Ok(report)
    }

    async fn dry_run(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<(Option<PredictedState>, ChainDryRun), ToolError> {
        let chain = &self.inner.chain;
        let from = self.inner.executor;
        let pool = read.pool;
        let (kind, liq) = liquidity_of(read)?;
        let mut run = ChainDryRun::empty(read.block.number);
        match action {
            ActionProposal::AddLiquidity {
                base_amount,
                quote_amount,
                ..
            } => {
                let bb = add(read.base_balance, base_amount.0, "base_amount")?;
                let qb = add(read.quote_balance, quote_amount.0, "quote_amount")?;
                let bs = math::buy_shares(kind, &liq, bb, qb)?;
                let ratio = mid_after_deposit(
                    kind,
                    &pmm_of(read)?,
                    bb,
                    qb,
                    bs.targets.map(|t| (t.base, t.quote)),
                )
                .and_then(|m| inventory_ratio(bb, qb, m));
                let predicted = PredictedState {
                    base_reserve: Amount(bb),
                    quote_reserve: Amount(qb),
                    total_shares: Amount(bs.new_total_supply),
                    inventory_ratio: ratio,
                };
                let overrides = chain
                    .balance_overrides(&[
                        (read.base_token.address, pool, bb),
                        (read.quote_token.address, pool, qb),
                    ])
                    .await;
                let tx = tx_of(
                    from,
                    pool,
                    IDODOV2Shares::buySharesCall { to: from }.abi_encode(),
                );
                match overrides {
                    Err(e) => run.error = Some(e.to_string()),
                    Ok(ov) => match chain.simulate(&tx, Some(read.block.number), Some(ov)).await {
                        Ok(sim) => {
                            match IDODOV2Shares::buySharesCall::abi_decode_returns(&sim.output) {
                                Ok(r) => {
                                    run.gas_estimate = Some(sim.gas);
                                    run.primary_output = Some(Amount(r.shares));
                                    run.matches_math = Some(r.shares == bs.received);
                                }
                                Err(e) => {
                                    run.error = Some(format!("undecodable buyShares return: {e}"))
                                }
                            }
                        }
                        Err(e) => run.error = Some(e.to_string()),
                    },
                }
                Ok((Some(predicted), run))
            }
            ActionProposal::RemoveLiquidity {
                shares,
                min_base,
                min_quote,
                ..
            } => {
                let ss = math::sell_shares(
                    kind,
                    &liq,
                    read.base_balance,
                    read.quote_balance,
                    shares.0,
                    shares.0,
                )?;
                let predicted = PredictedState {
                    base_reserve: Amount(ss.new_base_reserve),
                    quote_reserve: Amount(ss.new_quote_reserve),
                    total_shares: Amount(ss.new_total_supply),
                    inventory_ratio: read.mid_price.and_then(|m| {
                        inventory_ratio(ss.new_base_reserve, ss.new_quote_reserve, m)
                    }),
                };
                let call = IDODOV2Shares::sellSharesCall {
                    shareAmount: shares.0,
                    to: from,
                    baseMinAmount: min_base.0,
                    quoteMinAmount: min_quote.0,
                    data: Bytes::new(),
                    deadline: U256::from(read.block.timestamp.saturating_add(600)),
                };
                let tx = tx_of(from, pool, call.abi_encode());
                match chain.simulate(&tx, Some(read.block.number), None).await {
                    Ok(sim) => match IDODOV2Shares::sellSharesCall::abi_decode_returns(&sim.output)
                    {
                        Ok(r) => {
                            run.gas_estimate = Some(sim.gas);
                            run.primary_output = Some(Amount(r.baseAmount));
                            run.secondary_output = Some(Amount(r.quoteAmount));
                            run.matches_math = Some(
                                r.baseAmount == ss.base_amount && r.quoteAmount == ss.quote_amount,
                            );
                        }
                        Err(e) => run.error = Some(format!("undecodable sellShares return: {e}")),
                    },
                    Err(e) => run.error = Some(e.to_string()),
                }
                Ok((Some(predicted), run))
            }
            ActionProposal::Hold { .. } => Ok((None, run)),
        }
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
        }
    }
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
}

enum Decoded {
    Pool(PoolParams),
    Quote(QuoteAddParams),
    Risk(RiskCheckParams),
    Simulate(SimulateParams),
    Pause(PauseParams),
}

fn add(a: U256, b: U256, field: &str) -> Result<U256, ToolError> {
    a.checked_add(b).ok_or_else(|| {
        ToolError::InvalidParams(format!("{field}: pool balance plus amount exceeds 2^256-1"))
    })
}

fn tx_of(from: Address, to: Address, input: Vec<u8>) -> TransactionRequest {
    TransactionRequest::default()
        .from(from)
        .to(to)
        .input(Bytes::from(input).into())
}

/// Share math inputs of a pool with LP shares.
fn liquidity_of(read: &PoolRead) -> Result<(math::PoolKind, LiquidityState), ToolError> {
    let kind = match read.kind {
        PoolType::Dvm => math::PoolKind::Dvm,
        PoolType::Dsp | PoolType::Gsp => math::PoolKind::Dsp,
        other => {
            return Err(ToolError::Unsupported(format!(
                "{other} pools have no LP shares: liquidity is owner-managed (reset)"
            )));
        }
    };
    let (base_reserve, quote_reserve) = read
        .vault_reserve
        .ok_or_else(|| ToolError::Unsupported("no vault reserve".into()))?;
    let (b0, q0) = read.stored_targets.unwrap_or_default();
    Ok((
        kind,
        LiquidityState {
            total_supply: read.total_shares.unwrap_or_default(),
            base_reserve,
            quote_reserve,
            i: read.stored_i.unwrap_or_default(),
            b0,
            q0,
        },
    ))
}

/// The pool's V2 PMM state; a pool without one, or with an R state outside 0..=2, is a pool
/// these tools do not handle.
fn pmm_of(read: &PoolRead) -> Result<PmmState, ToolError> {
    read.pmm
        .ok_or_else(|| ToolError::Unsupported("pool has no V2 PMM state".into()))?
        .to_pmm_state(read.pool)
        .map_err(|e| ToolError::Unsupported(e.to_string()))
}

/// The mid price once a deposit leaves the pool holding `base` and `quote`, `None` where the
/// math defines none. Reserves become the balances; a DVM re-derives its targets, a DSP
/// stores the new ones `buyShares` computed.
fn mid_after_deposit(
    kind: math::PoolKind,
    before: &PmmState,
    base: U256,
    quote: U256,
    targets: Option<(U256, U256)>,
) -> Option<U256> {
    let after = match (kind, targets) {
        (math::PoolKind::Dvm, _) => PmmState::dvm(before.i, before.k, base, quote),
        (math::PoolKind::Dsp, Some((b0, q0))) => PmmState {
            b: base,
            q: quote,
            b0,
            q0,
            ..*before
        },
        (math::PoolKind::Dsp, None) => PmmState {
            b: base,
            q: quote,
            ..*before
        },
    };
    math::mid_price(&after).ok()
}

/// base value / (base value + quote), base valued at `mid` (1e18 on raw units).
fn inventory_ratio(base: U256, quote: U256, mid: U256) -> Option<f64> {
    let base_value = base.checked_mul(mid)? / ONE;
    let total = base_value.checked_add(quote)?;
    if total.is_zero() {
        return None;
    }
    Some(f64::from(base_value) / f64::from(total))
}
