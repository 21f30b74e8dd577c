//! `agent_decisions`: one append-only row per agent decision.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Result, from_i64, to_i64};
use crate::pg::PgStore;

/// One row of `agent_decisions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Unique id, chosen by the agent.
    pub id: Uuid,
    /// When the decision was made.
    pub decided_at: DateTime<Utc>,
    /// Tick counter of the agent loop.
    pub tick: u64,
    /// Chain id.
    pub chain_id: u64,
    /// Pool address.
    pub pool: String,
    /// Hash of the input snapshot the model saw.
    pub input_hash: String,
    /// Normalized pool state the decision was made on.
    pub state: Value,
    /// Model id.
    pub model: String,
    /// Prompt version.
    pub prompt_version: String,
    /// Tool-surface version.
    pub tool_surface_version: String,
    /// The model's proposal, when it produced a valid one.
    pub proposal: Option<Value>,
    /// The deterministic baseline's proposal.
    pub baseline_proposal: Option<Value>,
    /// Whether the model chose the same action kind as the baseline.
    pub action_matches_baseline: Option<bool>,
    /// Drift between model and baseline, in basis points.
    pub drift_bps: Option<i64>,
    /// Further drift detail.
    pub drift: Option<Value>,
    /// Policy verdict.
    pub verdict: String,
    /// Rule that decided the verdict.
    pub matched_rule: Option<String>,
    /// Simulation result.
    pub simulation: Option<Value>,
    /// Hash of the sent transaction, if one was sent.
    pub tx_hash: Option<String>,
    /// Agent mode (observe, dry-run, execute ...).
    pub mode: String,
    /// Trace id of the tick.
    pub trace_id: Option<String>,
    /// Error that ended the tick early, if any.
    pub error: Option<String>,
    /// Block the state was read at.
    pub block_number: Option<u64>,
    /// Hash of the exact request sent to the model.
    pub prompt_hash: Option<String>,
    /// Fingerprint of the model build that answered, where the inference side reports one.
    pub model_digest: Option<String>,
    /// Sampling seed sent with the request.
    pub seed: Option<u64>,
    /// Sampling temperature sent with the request.
    pub temperature: Option<f64>,
    /// The model's text exactly as returned.
    pub raw_output: Option<String>,
    /// Why the model's output was not a valid proposal.
    pub parse_error: Option<String>,
    /// The pool's risk report at the start of the tick.
    pub risk: Option<Value>,
    /// Milliseconds per step of the tick.
    pub latencies_ms: Option<Value>,
    /// Worker that made the decision.
    pub worker: Option<String>,
    /// Fence of the lease the worker held on the pool.
    pub lease_fence: Option<u64>,
}

const COLUMNS: &str = "id, decided_at, tick, chain_id, pool, input_hash, state, model, \
    prompt_version, tool_surface_version, proposal, baseline_proposal, action_matches_baseline, \
    drift_bps, drift, verdict, matched_rule, simulation, tx_hash, mode, trace_id, error, \
    block_number, prompt_hash, model_digest, seed, temperature, raw_output, parse_error, risk, \
    latencies_ms, worker, lease_fence";

fn opt_u64(location: &'static str, v: Option<i64>) -> Result<Option<u64>> {
    v.map(|v| from_i64(location, v)).transpose()
}

fn opt_i64(field: &'static str, v: Option<u64>) -> Result<Option<i64>> {
    v.map(|v| to_i64(field, v)).transpose()
}

impl Decision {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            decided_at: row.try_get("decided_at")?,
            tick: from_i64("agent_decisions.tick", row.try_get("tick")?)?,
            chain_id: from_i64("agent_decisions.chain_id", row.try_get("chain_id")?)?,
            pool: row.try_get("pool")?,
            input_hash: row.try_get("input_hash")?,
            state: row.try_get("state")?,
            model: row.try_get("model")?,
            prompt_version: row.try_get("prompt_version")?,
            tool_surface_version: row.try_get("tool_surface_version")?,
            proposal: row.try_get("proposal")?,
            baseline_proposal: row.try_get("baseline_proposal")?,
            action_matches_baseline: row.try_get("action_matches_baseline")?,
            drift_bps: row.try_get("drift_bps")?,
            drift: row.try_get("drift")?,
            verdict: row.try_get("verdict")?,
            matched_rule: row.try_get("matched_rule")?,
            simulation: row.try_get("simulation")?,
            tx_hash: row.try_get("tx_hash")?,
            mode: row.try_get("mode")?,
            trace_id: row.try_get("trace_id")?,
            error: row.try_get("error")?,
            block_number: opt_u64("agent_decisions.block_number", row.try_get("block_number")?)?,
            prompt_hash: row.try_get("prompt_hash")?,
            model_digest: row.try_get("model_digest")?,
            seed: opt_u64("agent_decisions.seed", row.try_get("seed")?)?,
            temperature: row.try_get("temperature")?,
            raw_output: row.try_get("raw_output")?,
            parse_error: row.try_get("parse_error")?,
            risk: row.try_get("risk")?,
            latencies_ms: row.try_get("latencies_ms")?,
            worker: row.try_get("worker")?,
            lease_fence: opt_u64("agent_decisions.lease_fence", row.try_get("lease_fence")?)?,
        })
    }
}

impl PgStore {
    /// Writes one decision. Returns `false`, writing nothing, when the pool already has a
    /// decision for that tick (or a row with that id): one decision per pool per tick.
    pub async fn insert_decision(&self, d: &Decision) -> Result<bool> {
        let tick = to_i64("tick", d.tick)?;
        let chain_id = to_i64("chain_id", d.chain_id)?;
        let block_number = opt_i64("block_number", d.block_number)?;
        let seed = opt_i64("seed", d.seed)?;
        let lease_fence = opt_i64("lease_fence", d.lease_fence)?;
        let n = self
            .conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO agent_decisions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
                     $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33) ON CONFLICT DO NOTHING"
                ),
                &[
                    &d.id,
                    &d.decided_at,
                    &tick,
                    &chain_id,
                    &d.pool,
                    &d.input_hash,
                    &d.state,
                    &d.model,
                    &d.prompt_version,
                    &d.tool_surface_version,
                    &d.proposal,
                    &d.baseline_proposal,
                    &d.action_matches_baseline,
                    &d.drift_bps,
                    &d.drift,
                    &d.verdict,
                    &d.matched_rule,
                    &d.simulation,
                    &d.tx_hash,
                    &d.mode,
                    &d.trace_id,
                    &d.error,
                    &block_number,
                    &d.prompt_hash,
                    &d.model_digest,
                    &seed,
                    &d.temperature,
                    &d.raw_output,
                    &d.parse_error,
                    &d.risk,
                    &d.latencies_ms,
                    &d.worker,
                    &lease_fence,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Every decision of ticks `from..=to` on `chain_id`, by tick then pool.
    pub async fn decisions_in_ticks(
        &self,
        chain_id: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<Decision>> {
        let chain_id = to_i64("chain_id", chain_id)?;
        let from = to_i64("from", from)?;
        let to = to_i64("to", to)?;
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM agent_decisions WHERE chain_id = $1 AND tick >= $2 \
                     AND tick <= $3 ORDER BY tick, pool"
                ),
                &[&chain_id, &from, &to],
            )
            .await?
            .iter()
            .map(Decision::from_row)
            .collect()
    }

    /// The latest decisions of one pool, newest first.
    pub async fn recent_decisions(
        &self,
        chain_id: u64,
        pool: &str,
        limit: u32,
    ) -> Result<Vec<Decision>> {
        let chain_id = to_i64("chain_id", chain_id)?;
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM agent_decisions WHERE chain_id = $1 AND pool = $2 \
                     ORDER BY decided_at DESC, id LIMIT $3"
                ),
                &[&chain_id, &pool, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(Decision::from_row)
            .collect()
    }

    /// Decisions in `[from, to)`, oldest first: the input of a replay run.
    pub async fn decisions_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Decision>> {
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM agent_decisions WHERE decided_at >= $1 \
                     AND decided_at < $2 ORDER BY decided_at, id LIMIT $3"
                ),
                &[&from, &to, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(Decision::from_row)
            .collect()
    }
}
