//! Agent worker (5703): ticks each allowlisted pool through the hub and the inference proxy.
//!
//! One tick of one pool: `dodo.get_pool_state` -> `dodo.risk_check` -> a deterministic baseline
//! -> a chat request for an `ActionProposal` (constrained by pmm-core's JSON Schema) -> parse
//! and validate -> `dodo.simulate_action` -> in `execute` mode and on `allow`, the write tool
//! with an idempotency key. Each tick of each pool leaves one `agent_decisions` row. The agent
//! speaks MCP to the hub and the OpenAI API to the proxy; it holds no key and never touches the
//! chain itself.
//!
//! Endpoints on `health_listen`: `GET /health` (200 only while the hub and the proxy answer and
//! ticks finish), `GET /metrics` (Prometheus text).

pub mod config;
pub mod http;
pub mod hub;
pub mod inference;
pub mod prompt;
pub mod sink;
pub mod tick;
pub mod trace;
pub mod worker;

pub use config::{AgentConfig, Mode};

use pmm_store::Decision;

/// One human-readable line per decision: pool, the model's proposal, the baseline, the verdict
/// and its rule, and the simulated shares (the demo prints these).
pub fn decision_line(d: &Decision) -> String {
    fn short(pool: &str) -> String {
        if pool.len() > 12 {
            format!("{}..{}", &pool[..6], &pool[pool.len() - 4..])
        } else {
            pool.to_owned()
        }
    }
    fn describe(p: Option<&serde_json::Value>) -> String {
        let Some(p) = p else { return "-".into() };
        let action = p["action"].as_str().unwrap_or("?");
        match action {
            "add_liquidity" => format!(
                "add base={} quote={} min_shares={}",
                p["base_amount"].as_str().unwrap_or("?"),
                p["quote_amount"].as_str().unwrap_or("?"),
                p["min_shares"].as_str().unwrap_or("?")
            ),
            "remove_liquidity" => format!(
                "remove shares={} min_base={} min_quote={}",
                p["shares"].as_str().unwrap_or("?"),
                p["min_base"].as_str().unwrap_or("?"),
                p["min_quote"].as_str().unwrap_or("?")
            ),
            other => other.to_owned(),
        }
    }
    let pool_type = d.state["pool_type"].as_str().unwrap_or("?");
    let llm = if d.verdict == "no_proposal" {
        format!(
            "none ({})",
            d.matched_rule.as_deref().unwrap_or("no_proposal")
        )
    } else {
        describe(d.proposal.as_ref())
    };
    let rule = d
        .matched_rule
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let verdict = if d.verdict == "no_proposal" {
        "no_proposal".to_owned()
    } else {
        format!("{}{rule}", d.verdict)
    };
    let shares = d
        .simulation
        .as_ref()
        .and_then(|s| s["dry_run"]["primary_output"].as_str().map(str::to_owned))
        .filter(|_| {
            d.proposal
                .as_ref()
                .is_some_and(|p| p["action"] == "add_liquidity")
        })
        .unwrap_or_else(|| "-".into());
    let tx = d
        .tx_hash
        .as_deref()
        .map(|h| format!(" | tx {h}"))
        .unwrap_or_default();
    format!(
        "tick {} | {} {:<10} | llm: {} | baseline: {} | verdict: {} | sim shares: {}{}",
        d.tick,
        short(&d.pool),
        pool_type,
        llm,
        describe(d.baseline_proposal.as_ref()),
        verdict,
        shares,
        tx
    )
}
