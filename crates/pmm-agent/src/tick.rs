//! One tick of one pool: state -> risk -> baseline -> model proposal -> validation ->
//! simulation -> (execute mode, allowed) write, recorded as one `agent_decisions` row.

use std::collections::BTreeMap;
use std::time::Instant;

use pmm_core::agent::{BaselinePlan, baseline, validate_proposal};
use pmm_core::config::PoolEntry;
use pmm_core::policy::{ActionProposal, Limits, notional_of};
use pmm_core::schema::{Amount, PoolState};
use pmm_store::Decision;
use serde_json::{Value, json};

use crate::config::{AgentConfig, Mode, Proposer};
use crate::hub::{HubClient, HubError};
use crate::inference::InferenceClient;
use crate::prompt::{PROMPT_VERSION, PastDecision, chat_body, hash_json, seed_for};
use crate::trace::Trace;

/// Names the hub's tool surface this agent was written against; stored in every decision.
pub const TOOL_SURFACE_VERSION: &str = "dodo-tools-v1";

/// Everything a tick needs besides its pool.
#[derive(Debug)]
pub struct TickContext {
    /// The hub.
    pub hub: HubClient,
    /// The inference proxy.
    pub inference: InferenceClient,
    /// The config.
    pub cfg: AgentConfig,
    /// Chain id the pools live on.
    pub chain_id: u64,
    /// This worker's id.
    pub worker: String,
}

/// One pool's tick to run.
#[derive(Debug, Clone)]
pub struct PoolTick {
    /// The allowlist entry.
    pub entry: PoolEntry,
    /// Tick number.
    pub tick: u64,
    /// Fence of the lease held on the pool.
    pub fence: Option<u64>,
    /// The pool's latest decisions, newest first.
    pub history: Vec<PastDecision>,
}

/// What a tick produced.
#[derive(Debug)]
pub enum TickOutcome {
    /// A decision to store.
    Decided(Box<Decision>),
    /// The hub could not be reached: nothing is recorded, the worker backs off.
    HubDown(HubError),
}

/// How the model's turn ended.
enum ModelTurn {
    /// A proposal that parsed and validated.
    Proposal(ActionProposal),
    /// No usable proposal, with the stable reason code and the detail.
    None { code: &'static str, detail: String },
}

/// Wall time per step, in milliseconds, stored as `latencies_ms`.
#[derive(Default)]
struct Steps(BTreeMap<&'static str, u64>);

impl Steps {
    fn record(&mut self, step: &'static str, started: Instant) {
        let elapsed = started.elapsed();
        metrics::histogram!("pmm_agent_step_seconds", "step" => step).record(elapsed.as_secs_f64());
        self.0
            .insert(step, u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    fn json(&self) -> Value {
        json!(self.0)
    }
}

fn kind(p: &ActionProposal) -> &'static str {
    match p {
        ActionProposal::Hold { .. } => "hold",
        ActionProposal::AddLiquidity { .. } => "add_liquidity",
        ActionProposal::RemoveLiquidity { .. } => "remove_liquidity",
    }
}

/// Notional of a write at `mid`, raw quote units; `None` for hold or without a mid price.
fn proposal_notional(p: &ActionProposal, mid: Option<Amount>) -> Option<Amount> {
    let mid = mid?;
    match p {
        ActionProposal::Hold { .. } => None,
        ActionProposal::AddLiquidity {
            base_amount,
            quote_amount,
            ..
        } => notional_of(*base_amount, *quote_amount, mid),
        ActionProposal::RemoveLiquidity {
            min_base,
            min_quote,
            ..
        } => notional_of(*min_base, *min_quote, mid),
    }
}

/// Gap between two proposals' notionals, basis points of the baseline's; `None` unless both
/// are writes of the same kind.
fn drift_bps(model: &ActionProposal, base: &ActionProposal, mid: Option<Amount>) -> Option<i64> {
    if kind(model) != kind(base) {
        return None;
    }
    let (m, b) = (
        proposal_notional(model, mid)?,
        proposal_notional(base, mid)?,
    );
    if b.is_zero() {
        return None;
    }
    let gap = if m.0 > b.0 { m.0 - b.0 } else { b.0 - m.0 };
    let bps = gap.saturating_mul(alloy_primitives::U256::from(10_000u32)) / b.0;
    Some(i64::try_from(bps).unwrap_or(i64::MAX))
}

/// The write tool's parameters: the proposal's fields without `action` and `reason`, plus the
/// idempotency key, so a retried tick can never execute twice.
fn write_params(p: &ActionProposal, idempotency_key: &str) -> Option<(&'static str, Value)> {
    let mut v = serde_json::to_value(p).ok()?;
    let obj = v.as_object_mut()?;
    obj.remove("action");
    obj.remove("reason");
    obj.insert("idempotency_key".into(), json!(idempotency_key));
    let tool = match p {
        ActionProposal::Hold { .. } => return None,
        ActionProposal::AddLiquidity { .. } => "dodo.add_liquidity",
        ActionProposal::RemoveLiquidity { .. } => "dodo.remove_liquidity",
    };
    Some((tool, v))
}

/// An amount field of a hub answer.
fn amount_at(v: &Value, field: &str) -> Result<Amount, String> {
    serde_json::from_value(v[field].clone()).map_err(|e| format!("{field}: {e}"))
}

/// The baseline's hold when its deposit cannot be quoted, with the reason cut to what a
/// proposal's reason may hold.
fn hold_because(why: String) -> ActionProposal {
    ActionProposal::Hold {
        reason: format!("baseline: {why}").chars().take(500).collect(),
    }
}

impl TickContext {
    /// Runs one tick of one pool.
    pub async fn run(&self, job: &PoolTick) -> TickOutcome {
        let started = Instant::now();
        let trace = Trace::new();
        let pool = job.entry.address;
        let pool_s = pool.to_string();
        let limits = job.entry.effective_limits();
        let mut steps = Steps::default();
        let mut d = Decision {
            id: uuid::Uuid::new_v4(),
            decided_at: chrono::Utc::now(),
            tick: job.tick,
            chain_id: self.chain_id,
            pool: pool_s.clone(),
            input_hash: hash_json(&Value::Null),
            state: Value::Null,
            model: self.cfg.model.clone(),
            prompt_version: PROMPT_VERSION.into(),
            tool_surface_version: TOOL_SURFACE_VERSION.into(),
            proposal: None,
            baseline_proposal: None,
            action_matches_baseline: None,
            drift_bps: None,
            drift: None,
            verdict: "error".into(),
            matched_rule: None,
            simulation: None,
            tx_hash: None,
            mode: self.cfg.mode.as_str().into(),
            trace_id: Some(trace.trace_id()),
            error: None,
            block_number: None,
            prompt_hash: None,
            model_digest: None,
            seed: None,
            temperature: None,
            raw_output: None,
            parse_error: None,
            risk: None,
            latencies_ms: None,
            worker: Some(self.worker.clone()),
            lease_fence: job.fence,
        };
        macro_rules! hub {
            ($step:literal, $tool:literal, $args:expr) => {{
                let t = Instant::now();
                let r = self.hub.call($tool, $args, &trace).await;
                steps.record($step, t);
                match r {
                    Err(e) if e.is_unavailable() => return TickOutcome::HubDown(e),
                    other => other,
                }
            }};
        }

        let state_json = match hub!(
            "get_pool_state",
            "dodo.get_pool_state",
            json!({"pool": pool_s})
        ) {
            Ok(v) => v,
            Err(e) => return self.finish(d, steps, started, Some(e.to_string())),
        };
        let state: PoolState = match serde_json::from_value(state_json.clone()) {
            Ok(s) => s,
            Err(e) => {
                d.state = state_json;
                return self.finish(
                    d,
                    steps,
                    started,
                    Some(format!("pool state does not parse: {e}")),
                );
            }
        };
        d.input_hash = hash_json(&state_json);
        d.state = state_json;
        d.block_number = Some(state.block_number);

        match hub!("risk_check", "dodo.risk_check", json!({"pool": pool_s})) {
            Ok(v) => d.risk = Some(v),
            Err(e) => d.risk = Some(json!({"error": e.to_string()})),
        }

        let base = self.baseline(&state, &limits, &trace, &mut steps).await;
        let base = match base {
            Ok(p) => p,
            Err(e) => return TickOutcome::HubDown(e),
        };
        d.baseline_proposal = serde_json::to_value(&base).ok();

        let turn = match self.cfg.proposer {
            Proposer::Model => {
                self.model_turn(&mut d, &state, &limits, job, &trace, &mut steps)
                    .await
            }
            Proposer::Baseline => {
                d.model = Proposer::Baseline.as_str().into();
                match validate_proposal(&base, &state, &limits) {
                    Ok(()) => ModelTurn::Proposal(base.clone()),
                    Err(e) => ModelTurn::None {
                        code: "invalid_proposal",
                        detail: e.to_string(),
                    },
                }
            }
        };

        let proposal = match turn {
            ModelTurn::None { code, detail } => {
                if code.starts_with("invalid") {
                    metrics::counter!("pmm_agent_invalid_outputs_total", "reason" => code)
                        .increment(1);
                    d.parse_error = Some(detail);
                } else {
                    d.error = Some(detail);
                }
                metrics::counter!("pmm_agent_proposals_total", "kind" => "none").increment(1);
                d.verdict = "no_proposal".into();
                d.matched_rule = Some(code.into());
                return self.finish(d, steps, started, None);
            }
            ModelTurn::Proposal(p) => p,
        };
        metrics::counter!("pmm_agent_proposals_total", "kind" => kind(&proposal)).increment(1);
        d.proposal = serde_json::to_value(&proposal).ok();
        d.action_matches_baseline = Some(kind(&proposal) == kind(&base));
        d.drift_bps = drift_bps(&proposal, &base, state.mid_price_raw);
        d.drift = Some(json!({
            "model": kind(&proposal),
            "baseline": kind(&base),
            "model_notional": proposal_notional(&proposal, state.mid_price_raw),
            "baseline_notional": proposal_notional(&base, state.mid_price_raw),
        }));

        if !proposal.is_write() {
            // Nothing to simulate: a hold is judged by the pool's risk report of this tick.
            d.verdict = d
                .risk
                .as_ref()
                .and_then(|r| r["verdict"].as_str())
                .unwrap_or("deny")
                .to_owned();
            d.matched_rule = d
                .risk
                .as_ref()
                .and_then(|r| r["decided_by"].as_str())
                .map(str::to_owned);
            return self.finish(d, steps, started, None);
        }
        let sim = match hub!(
            "simulate",
            "dodo.simulate_action",
            json!({"action": proposal})
        ) {
            Ok(v) => v,
            Err(e) => return self.finish(d, steps, started, Some(e.to_string())),
        };
        let verdict = sim["verdict"].as_str().unwrap_or("deny").to_owned();
        let rule = sim["denied_by"].as_str().map(str::to_owned);
        if verdict != "allow" {
            metrics::counter!("pmm_agent_denials_total", "rule" => rule.clone().unwrap_or_else(|| "unknown".into())).increment(1);
        }
        d.simulation = Some(sim);
        d.verdict = verdict;
        d.matched_rule = rule;

        if self.cfg.mode == Mode::Execute && d.verdict == "allow" {
            let key = format!("agent:{}:{pool_s}:{}", self.chain_id, job.tick);
            if let Some((tool, params)) = write_params(&proposal, &key) {
                let t = Instant::now();
                let r = self.hub.call(tool, params, &trace).await;
                steps.record("execute", t);
                match r {
                    Ok(v) => {
                        d.tx_hash = v["tx_hash"].as_str().map(str::to_owned);
                        // The write re-runs the policy at send time; its refusal is the verdict.
                        if v["verdict"].as_str() == Some("deny") {
                            d.verdict = "deny".into();
                            d.matched_rule = v["denied_by"].as_str().map(str::to_owned);
                        }
                        if let Some(sim) = d.simulation.as_mut() {
                            sim["execution"] = v;
                        }
                    }
                    Err(e) => d.error = Some(e.to_string()),
                }
            }
        }
        self.finish(d, steps, started, None)
    }

    /// Asks the model for a proposal and parses and validates its answer, filling the
    /// decision's prompt and model fields.
    async fn model_turn(
        &self,
        d: &mut Decision,
        state: &PoolState,
        limits: &Limits,
        job: &PoolTick,
        trace: &Trace,
        steps: &mut Steps,
    ) -> ModelTurn {
        let seed = seed_for(&d.pool, job.tick);
        let body = chat_body(
            &self.cfg.model,
            state,
            limits,
            &job.history,
            self.cfg.temperature,
            seed,
            self.cfg.max_tokens,
        );
        d.prompt_hash = Some(hash_json(&body));
        d.seed = Some(seed);
        d.temperature = Some(self.cfg.temperature);
        let t = Instant::now();
        let reply = self.inference.chat(&body, trace).await;
        steps.record("inference", t);
        match reply {
            Err(e) => ModelTurn::None {
                code: e.reason_code(),
                detail: e.to_string(),
            },
            Ok(r) => {
                if !r.model.is_empty() {
                    d.model = r.model;
                }
                d.model_digest = r.fingerprint;
                d.raw_output = Some(r.content.clone());
                match serde_json::from_str::<ActionProposal>(&r.content) {
                    Err(e) => {
                        let cut = if r.finish_reason.as_deref() == Some("length") {
                            " (output cut at max_tokens)"
                        } else {
                            ""
                        };
                        ModelTurn::None {
                            code: "invalid_output",
                            detail: format!("not an ActionProposal{cut}: {e}"),
                        }
                    }
                    Ok(p) => match validate_proposal(&p, state, limits) {
                        Err(e) => {
                            d.proposal = serde_json::to_value(&p).ok();
                            ModelTurn::None {
                                code: "invalid_proposal",
                                detail: e.to_string(),
                            }
                        }
                        Ok(()) => ModelTurn::Proposal(p),
                    },
                }
            }
        }
    }

    /// The baseline proposal. A deposit is quoted on the hub twice: the planned amounts for the
    /// balanced deposit DODO's proxy would make of them (so nothing is donated), then that
    /// deposit for its `min_shares`. Only a hub that is down is an error: a quote the hub
    /// refuses makes the baseline hold, saying why.
    async fn baseline(
        &self,
        state: &PoolState,
        limits: &Limits,
        trace: &Trace,
        steps: &mut Steps,
    ) -> Result<ActionProposal, HubError> {
        let plan = baseline(state, limits, &self.cfg.baseline());
        let t = Instant::now();
        let planned = match self.quote_deposit(state, limits, &plan, trace).await? {
            Ok(q) => q,
            Err(settled) => return Ok(settled),
        };
        let plan = match (
            amount_at(&planned, "balanced_base_amount"),
            amount_at(&planned, "balanced_quote_amount"),
        ) {
            (Ok(b), Ok(q)) => plan.balanced(b, q),
            (Err(e), _) | (_, Err(e)) => return Ok(hold_because(format!("quote: {e}"))),
        };
        let balanced = match self.quote_deposit(state, limits, &plan, trace).await? {
            Ok(q) => q,
            Err(settled) => return Ok(settled),
        };
        steps.record("baseline_quote", t);
        Ok(match amount_at(&balanced, "shares") {
            Ok(shares) => plan.into_proposal(state, limits, shares),
            Err(e) => hold_because(format!("quote: {e}")),
        })
    }

    /// `dodo.quote_add_liquidity` of a deposit: the quote, or the hold the baseline falls back
    /// to when the hub refuses it.
    /// The hub's quote of `plan`'s deposit, or the proposal the tick settles on instead: the
    /// plan itself when it deposits nothing, a hold when the deposit cannot be quoted.
    async fn quote_deposit(
        &self,
        state: &PoolState,
        limits: &Limits,
        plan: &BaselinePlan,
        trace: &Trace,
    ) -> Result<Result<Value, ActionProposal>, HubError> {
        let BaselinePlan::Add {
            base_amount,
            quote_amount,
            ..
        } = plan
        else {
            return Ok(Err(plan.clone().into_proposal(state, limits, Amount::ZERO)));
        };
        let quote = self
            .hub
            .call(
                "dodo.quote_add_liquidity",
                json!({
                    "pool": state.pool_address.to_string(),
                    "base_amount": base_amount,
                    "quote_amount": quote_amount,
                }),
                trace,
            )
            .await;
        match quote {
            Ok(q) => Ok(Ok(q)),
            Err(e) if e.is_unavailable() => Err(e),
            Err(e) => Ok(Err(hold_because(format!("cannot quote the deposit: {e}")))),
        }
    }

    fn finish(
        &self,
        mut d: Decision,
        mut steps: Steps,
        started: Instant,
        error: Option<String>,
    ) -> TickOutcome {
        if let Some(e) = error {
            d.error = Some(e);
        }
        steps.record("total", started);
        d.latencies_ms = Some(steps.json());
        d.decided_at = chrono::Utc::now();
        TickOutcome::Decided(Box::new(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_params_are_the_proposal_fields_and_the_key() {
        let p: ActionProposal = serde_json::from_value(json!({
            "action": "add_liquidity",
            "pool": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "base_amount": "10",
            "quote_amount": "20",
            "min_shares": "5",
            "reason": "r"
        }))
        .unwrap();
        let (tool, params) = write_params(&p, "k1").unwrap();
        assert_eq!(tool, "dodo.add_liquidity");
        assert_eq!(
            params,
            json!({
                "pool": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "base_amount": "10",
                "quote_amount": "20",
                "min_shares": "5",
                "idempotency_key": "k1"
            })
        );
        let hold = ActionProposal::Hold { reason: "x".into() };
        assert!(write_params(&hold, "k").is_none());
    }

    #[test]
    fn drift_compares_notionals_of_the_same_kind_only() {
        let add = |base: u64, quote: u64| ActionProposal::AddLiquidity {
            pool: alloy_primitives::Address::ZERO,
            base_amount: Amount::from(u128::from(base)),
            quote_amount: Amount::from(u128::from(quote)),
            min_shares: Amount::ZERO,
            reason: String::new(),
        };
        let mid = Some(Amount::from(1_000_000_000_000_000_000u128));
        assert_eq!(drift_bps(&add(0, 150), &add(0, 100), mid), Some(5_000));
        assert_eq!(drift_bps(&add(0, 150), &add(0, 100), None), None);
        assert_eq!(drift_bps(&add(0, 100), &add(0, 100), mid), Some(0));
        let hold = ActionProposal::Hold {
            reason: String::new(),
        };
        assert_eq!(drift_bps(&hold, &add(0, 100), mid), None);
    }
}
