//! The chat request for one pool tick: what the model sees, and the hash that identifies it.

use pmm_core::policy::Limits;
use pmm_core::schema::{PoolState, action_proposal_schema};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Bumped whenever the wording or the shape of the request changes; stored in every decision.
pub const PROMPT_VERSION: &str = "agent-prompt-v1";

const SYSTEM: &str = "You manage liquidity for one DODO PMM pool. Each tick you get the pool's \
state, its limits and your recent decisions. Answer with exactly one JSON object: \
{\"action\":\"hold\",\"reason\":...} when nothing should change, or add_liquidity / \
remove_liquidity for this pool. Amounts are raw integer token units written as decimal strings. \
Keep every amount inside the limits: max_notional_per_tx is in raw quote units. Keep the reason \
short.";

/// A past decision as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastDecision {
    /// Tick number.
    pub tick: u64,
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
        "pool_type": s.pool_type,
        "block": s.block_number,
        "base": {"symbol": s.base_token.symbol, "decimals": s.base_token.decimals},
        "quote": {"symbol": s.quote_token.symbol, "decimals": s.quote_token.decimals},
        "mid_price": s.mid_price,
        "oracle_price": s.oracle_price.as_ref().map(|o| o.price),
        "inventory_ratio": s.inventory_ratio,
        "reserves_raw": {"base": s.reserves.base, "quote": s.reserves.quote},
        "fee_rate": s.fee_rate,
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
    let recent: Vec<Value> = history
        .iter()
        .map(|d| {
            json!({
                "tick": d.tick,
                "action": d.proposal.as_ref().and_then(|p| p.get("action")).cloned(),
                "verdict": d.verdict,
                "rule": d.rule,
            })
        })
        .collect();
    let user = json!({
        "state": state_view(state),
        "limits": limits,
        "recent_decisions": recent,
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
