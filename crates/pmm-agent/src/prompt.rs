//! The chat request for one pool tick: what the model sees, and the hash that identifies it.

use pmm_core::policy::Limits;
use pmm_core::schema::{PoolState, action_proposal_schema};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Bumped whenever the wording or the shape of the request changes; stored in every decision.
pub const PROMPT_VERSION: &str = "agent-prompt-v1";

const SYSTEM: &str = "You manage one DODO PMM pool. Reply with one JSON object: hold, or \
add_liquidity / remove_liquidity for this pool. Amounts are raw integer units as decimal \
strings; the notional must stay under max_notional_per_tx (raw quote units). Short reason.";

/// A past decision as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastDecision {
    /// The model's proposal, if it made a valid one.
    pub proposal: Option<Value>,
    /// The policy's verdict (or `no_proposal`).
    pub verdict: String,
    /// The deciding rule or reason.
    pub rule: Option<String>,
}

/// The compact view of the state the model sees: display values plus the exact amounts it
/// needs to size a proposal (the full state is stored with the decision).
fn state_view(s: &PoolState) -> Value {
    json!({
        "pool": s.pool_address.to_string(),
        "type": s.pool_type,
        "base_decimals": s.base_token.decimals,
        "quote_decimals": s.quote_token.decimals,
        "mid_price": s.mid_price,
        "oracle_price": s.oracle_price.as_ref().map(|o| o.price),
        "inventory_ratio": s.inventory_ratio,
        "base_reserve": s.reserves.base,
        "quote_reserve": s.reserves.quote,
    })
}

/// The `/v1/chat/completions` body: the model's input and `response_format` `json_schema` with
/// pmm-core's `ActionProposal` schema, so a conforming server constrains the output to it.
pub fn chat_body(
    model: &str,
    state: &PoolState,
    limits: &Limits,
    history: &[PastDecision],
    temperature: f64,
    seed: u64,
    max_tokens: u32,
) -> Value {
    // Compact on purpose: prompt tokens are most of a small model's latency on a CPU.
    let recent: Vec<Value> = history
        .iter()
        .map(|d| {
            json!([
                d.proposal.as_ref().and_then(|p| p.get("action")).cloned(),
                d.verdict,
                d.rule,
            ])
        })
        .collect();
    let user = json!({
        "state": state_view(state),
        "limits": {
            "max_notional_per_tx": limits.max_notional_per_tx,
            "max_slippage_bps": limits.max_slippage_bps,
        },
        "recent": recent,
    });
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user.to_string()},
        ],
        "temperature": temperature,
        "seed": seed,
        "max_tokens": max_tokens,
        "stream": false,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "ActionProposal",
                "strict": true,
                "schema": action_proposal_schema(),
            },
        },
    })
}

/// `sha256:<hex>` of a JSON value's compact serialization.
pub fn hash_json(v: &Value) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    )
}

/// A seed that is the same for a replay of the same pool and tick, and differs between ticks.
pub fn seed_for(pool: &str, tick: u64) -> u64 {
    let d = Sha256::digest(format!("{pool}:{tick}").as_bytes());
    // 31 bits: every backend accepts it, and it fits the BIGINT column.
    u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_pmm_cores_schema_and_a_stable_seed() {
        let schema = action_proposal_schema();
        println!("{schema}");
        let rf = json!({"type": "json_schema", "json_schema": {"name": "ActionProposal", "strict": true, "schema": schema}});
        assert_eq!(rf["json_schema"]["schema"], action_proposal_schema());
        assert_eq!(seed_for("0xa", 7), seed_for("0xa", 7));
        assert_ne!(seed_for("0xa", 7), seed_for("0xa", 8));
        assert!(seed_for("0xa", 7) < 1 << 31);
        assert!(hash_json(&json!({"a": 1})).starts_with("sha256:"));
    }
}
