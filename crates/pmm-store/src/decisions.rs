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
}

const COLUMNS: &str = "id, decided_at, tick, chain_id, pool, input_hash, state, model, \
    prompt_version, tool_surface_version, proposal, baseline_proposal, action_matches_baseline, \
    drift_bps, drift, verdict, matched_rule, simulation, tx_hash, mode, trace_id, error";

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
        })
    }
}

impl PgStore {
    /// Writes one decision.
    pub async fn insert_decision(&self, d: &Decision) -> Result<()> {
        let tick = to_i64("tick", d.tick)?;
        let chain_id = to_i64("chain_id", d.chain_id)?;
        self.conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO agent_decisions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
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
                ],
            )
            .await?;
        Ok(())
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
