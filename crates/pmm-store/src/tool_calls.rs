//! `tool_calls`: the hub's append-only audit of every tool call.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::pg::PgStore;

/// Rows per statement in a batched insert: keeps each statement's arrays well under the
/// protocol's message limits while amortizing the round trip.
pub const TOOL_CALL_BATCH_ROWS: usize = 5_000;

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// The tool answered with this result.
    Ok(Value),
    /// The tool failed with this message.
    Err(String),
}

/// One row of `tool_calls`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Unique id, chosen by the writer so retries do not duplicate.
    pub id: Uuid,
    /// When the call started.
    pub called_at: DateTime<Utc>,
    /// Who called (client name or agent id).
    pub caller: String,
    /// Tool name, e.g. `dodo.get_pool_state`.
    pub tool: String,
    /// Arguments as received.
    pub params: Value,
    /// Result or error.
    pub outcome: ToolOutcome,
    /// Policy verdict, for tools that ran the policy.
    pub verdict: Option<String>,
    /// Rule that decided the verdict.
    pub matched_rule: Option<String>,
    /// Wall time of the call in milliseconds.
    pub latency_ms: u32,
    /// Trace id linking the call to an agent tick.
    pub trace_id: Option<String>,
}

impl ToolCall {
    fn result_and_error(&self) -> (Option<&Value>, Option<&str>) {
        match &self.outcome {
            ToolOutcome::Ok(v) => (Some(v), None),
            ToolOutcome::Err(e) => (None, Some(e.as_str())),
        }
    }

    fn from_row(row: &Row) -> Result<Self> {
        let result: Option<Value> = row.try_get("result")?;
        let error: Option<String> = row.try_get("error")?;
        let outcome = match (result, error) {
            (Some(v), None) => ToolOutcome::Ok(v),
            (None, Some(e)) => ToolOutcome::Err(e),
            _ => {
                return Err(StoreError::Corrupt {
                    location: "tool_calls.result/error".into(),
                    reason: "exactly one of result and error must be set".into(),
                });
            }
        };
        let latency: i64 = row.try_get("latency_ms")?;
        Ok(Self {
            id: row.try_get("id")?,
            called_at: row.try_get("called_at")?,
            caller: row.try_get("caller")?,
            tool: row.try_get("tool")?,
            params: row.try_get("params")?,
            outcome,
            verdict: row.try_get("verdict")?,
            matched_rule: row.try_get("matched_rule")?,
            latency_ms: u32::try_from(latency).map_err(|_| StoreError::Corrupt {
                location: "tool_calls.latency_ms".into(),
                reason: format!("{latency} out of range"),
            })?,
            trace_id: row.try_get("trace_id")?,
        })
    }
}

const COLUMNS: &str = "id, called_at, caller, tool, params, result, error, verdict, matched_rule, latency_ms, trace_id";

impl PgStore {
    /// Writes one tool call; a row whose id is already stored is left as it is (a replay).
    /// Prefer [`PgStore::insert_tool_calls`] on hot paths.
    pub async fn insert_tool_call(&self, call: &ToolCall) -> Result<()> {
        let (result, error) = call.result_and_error();
        self.conn()
            .await?
            .execute(
                &format!(
                    "INSERT INTO tool_calls ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO NOTHING"
                ),
                &[
                    &call.id,
                    &call.called_at,
                    &call.caller,
                    &call.tool,
                    &call.params,
                    &result,
                    &error,
                    &call.verdict,
                    &call.matched_rule,
                    &i64::from(call.latency_ms),
                    &call.trace_id,
                ],
            )
            .await?;
        Ok(())
    }

    /// Writes many tool calls with one multi-row `INSERT ... SELECT FROM unnest(...)` per
    /// [`TOOL_CALL_BATCH_ROWS`] rows, all in one transaction: either every row is written or
    /// none is. Returns the number of rows newly written.
    ///
    /// Idempotent by id: a row whose id is already stored (a batch replayed after its commit
    /// reply was lost, or an id repeated within the batch) is skipped, not an error, so a
    /// writer that retries failed batches cannot loop on a duplicate key. Ids are random per
    /// call, so a skipped row is the same call, never a different one.
    pub async fn insert_tool_calls(&self, calls: &[ToolCall]) -> Result<u64> {
        if calls.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO tool_calls ({COLUMNS}) \
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], \
                 $5::jsonb[], $6::jsonb[], $7::text[], $8::text[], $9::text[], $10::int8[], \
                 $11::text[]) \
                 ON CONFLICT (id) DO NOTHING"
            ))
            .await?;
        let mut written = 0;
        for chunk in calls.chunks(TOOL_CALL_BATCH_ROWS) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut times = Vec::with_capacity(chunk.len());
            let mut callers = Vec::with_capacity(chunk.len());
            let mut tools = Vec::with_capacity(chunk.len());
            let mut params = Vec::with_capacity(chunk.len());
            let mut results = Vec::with_capacity(chunk.len());
            let mut errors = Vec::with_capacity(chunk.len());
            let mut verdicts = Vec::with_capacity(chunk.len());
            let mut rules = Vec::with_capacity(chunk.len());
            let mut latencies = Vec::with_capacity(chunk.len());
            let mut traces = Vec::with_capacity(chunk.len());
            for call in chunk {
                let (result, error) = call.result_and_error();
                ids.push(call.id);
                times.push(call.called_at);
                callers.push(call.caller.as_str());
                tools.push(call.tool.as_str());
                params.push(&call.params);
                results.push(result);
                errors.push(error);
                verdicts.push(call.verdict.as_deref());
                rules.push(call.matched_rule.as_deref());
                latencies.push(i64::from(call.latency_ms));
                traces.push(call.trace_id.as_deref());
            }
            written += tx
                .execute(
                    &statement,
                    &[
                        &ids, &times, &callers, &tools, &params, &results, &errors, &verdicts,
                        &rules, &latencies, &traces,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Every call of one trace, oldest first.
    pub async fn tool_calls_by_trace(&self, trace_id: &str) -> Result<Vec<ToolCall>> {
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM tool_calls WHERE trace_id = $1 ORDER BY called_at, id"
                ),
                &[&trace_id],
            )
            .await?
            .iter()
            .map(ToolCall::from_row)
            .collect()
    }

    /// The tool calls one agent decision caused, oldest first: the hub files each call under
    /// the trace id of the request's `traceparent`, the agent stores the same id in its row.
    pub async fn tool_calls_of_decision(&self, decision: Uuid) -> Result<Vec<ToolCall>> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {} FROM agent_decisions d JOIN tool_calls t ON t.trace_id = d.trace_id \
                     WHERE d.id = $1 ORDER BY t.called_at, t.id",
                    columns.join(", ")
                ),
                &[&decision],
            )
            .await?
            .iter()
            .map(ToolCall::from_row)
            .collect()
    }

    /// The most recent calls, newest first, optionally of one tool.
    pub async fn recent_tool_calls(&self, tool: Option<&str>, limit: u32) -> Result<Vec<ToolCall>> {
        self.conn()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM tool_calls WHERE ($1::text IS NULL OR tool = $1) \
                     ORDER BY called_at DESC, id LIMIT $2"
                ),
                &[&tool, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(ToolCall::from_row)
            .collect()
    }

    /// Number of rows in `tool_calls`.
    pub async fn count_tool_calls(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .await?
            .query_one("SELECT count(*) FROM tool_calls", &[])
            .await?
            .try_get(0)?;
        crate::error::from_i64("count(tool_calls)", n)
    }
}
