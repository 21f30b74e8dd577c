//! The tool table: names, roles, parameter and result types, and [`Hub::dispatch`], the surface
//! both transports share. Each tool's body lives beside it: [`read`], [`risk`], [`operator`].

use alloy::primitives::Address;
use pmm_core::policy::{ActionProposal, RiskReport, Rule, Verdict};
use pmm_core::schema::Amount;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Caller, Role};
use crate::error::ToolError;
use crate::hub::Hub;

mod operator;
mod read;
mod risk;
mod write;

pub use write::{
    AddLiquidityParams, RemoveLiquidityParams, ResetPoolParams, Step, WritePrediction, WriteResult,
    WriteSetup, WriteStatus,
};

/// `dodo.get_pool_state`.
pub const GET_POOL_STATE: &str = "dodo.get_pool_state";
/// `dodo.identify_pool_interface`.
pub const IDENTIFY: &str = "dodo.identify_pool_interface";
/// `dodo.quote_add_liquidity`.
pub const QUOTE_ADD: &str = "dodo.quote_add_liquidity";
/// `dodo.risk_check`.
pub const RISK_CHECK: &str = "dodo.risk_check";
/// `dodo.simulate_action`.
pub const SIMULATE: &str = "dodo.simulate_action";
/// `dodo.pause_pool`.
pub const PAUSE: &str = "dodo.pause_pool";
/// `dodo.resume_pool`.
pub const RESUME: &str = "dodo.resume_pool";
/// `dodo.add_liquidity`.
pub const ADD_LIQUIDITY: &str = "dodo.add_liquidity";
/// `dodo.remove_liquidity`.
pub const REMOVE_LIQUIDITY: &str = "dodo.remove_liquidity";
/// `dodo.reset_pool`.
pub const RESET_POOL: &str = "dodo.reset_pool";

/// Every tool with the least role that may call it, in `tools/list` order.
pub const TOOLS: [(&str, Role); 10] = [
    (ADD_LIQUIDITY, Role::Agent),
    (GET_POOL_STATE, Role::Agent),
    (IDENTIFY, Role::Agent),
    (PAUSE, Role::Operator),
    (QUOTE_ADD, Role::Agent),
    (REMOVE_LIQUIDITY, Role::Agent),
    (RESET_POOL, Role::Operator),
    (RESUME, Role::Operator),
    (RISK_CHECK, Role::Agent),
    (SIMULATE, Role::Agent),
];

/// The role a tool needs; `None` for an unknown tool.
pub fn required_role(tool: &str) -> Option<Role> {
    TOOLS.iter().find(|(n, _)| *n == tool).map(|(_, r)| *r)
}

pub(crate) fn address_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^0x[0-9a-fA-F]{40}$",
        "description": "20-byte EVM address, 0x-prefixed hex; mixed case must be a valid EIP-55 checksum."
    })
}

fn breaker_target_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^(0x[0-9a-fA-F]{40}|\\*)$",
        "description": "Pool address (0x-prefixed hex; mixed case must be a valid EIP-55 checksum), or \"*\" for every pool (the global pause)."
    })
}

/// Parses a pause/resume target: a pool address, or `*` (every pool: `None`).
pub fn parse_breaker_target(s: &str) -> Result<Option<Address>, ToolError> {
    if s == pmm_core::keys::GLOBAL_POOL {
        return Ok(None);
    }
    parse_address("pool", s).map(Some)
}

/// Parses an address parameter with an error naming the field.
pub fn parse_address(field: &str, s: &str) -> Result<Address, ToolError> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
    match hex {
        Some(h) if h.len() == 40 && h.chars().all(|c| c.is_ascii_hexdigit()) => s
            .parse::<Address>()
            .map_err(|e| ToolError::InvalidParams(format!("{field}: {e}"))),
        _ => Err(ToolError::InvalidParams(format!(
            "{field}: {:?} is not a 20-byte 0x-prefixed hex address",
            s.chars().take(64).collect::<String>()
        ))),
    }
}

/// `{pool}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolParams {
    /// Pool contract.
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
}

/// `{pool, base_amount, quote_amount}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteAddParams {
    /// Pool contract (DVM, DSP or GSP).
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
    /// Base to deposit, raw units, decimal string, > 0.
    pub base_amount: Amount,
    /// Quote to deposit, raw units, decimal string.
    pub quote_amount: Amount,
}

/// `{pool, action?}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskCheckParams {
    /// Pool contract.
    #[schemars(schema_with = "address_schema")]
    pub pool: String,
    /// Proposal to evaluate; absent = `hold` (a risk check of the pool itself).
    #[serde(default)]
    pub action: Option<ActionProposal>,
}

/// `{action}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateParams {
    /// The proposal to dry-run.
    pub action: ActionProposal,
}

/// `{pool}` for resume: a pool, or `"*"` to end the global pause.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeParams {
    /// Pool contract, or `"*"`.
    #[schemars(schema_with = "breaker_target_schema")]
    pub pool: String,
}

/// `{pool, reason}` for pause: a pool, or `"*"` to pause every pool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseParams {
    /// Pool contract, or `"*"`.
    #[schemars(schema_with = "breaker_target_schema")]
    pub pool: String,
    /// Why writes are paused (stored with the breaker).
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

/// Result of `dodo.quote_add_liquidity`, exact amounts as decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AddLiquidityQuote {
    /// Pool quoted.
    #[schemars(schema_with = "address_schema")]
    pub pool: Address,
    /// Block of the state the quote is computed from.
    pub block_number: u64,
    /// Shares `buyShares` returns to the depositor.
    pub shares: Amount,
    /// Increase of total supply (includes the 1001 locked on a first deposit).
    pub minted: Amount,
    /// Base counted towards the shares (input minus donation).
    pub base_taken: Amount,
    /// Quote counted towards the shares.
    pub quote_taken: Amount,
    /// Base given to all LPs beyond the proportional contribution.
    pub base_donated: Amount,
    /// Quote given to all LPs beyond the proportional contribution.
    pub quote_donated: Amount,
    /// Base the pool sees as input (balance minus reserve, including earlier stray transfers).
    pub base_input: Amount,
    /// Quote the pool sees as input.
    pub quote_input: Amount,
    /// Base of the balanced deposit: what DODO's proxy would transfer for these amounts (the
    /// over-contributing side scaled to the pool's ratio), so nothing is donated.
    pub balanced_base_amount: Amount,
    /// Quote of the balanced deposit.
    pub balanced_quote_amount: Amount,
    /// Total supply afterwards.
    pub new_total_supply: Amount,
    /// Share of the pool's value held in base afterwards, at the new mid price; `null` when
    /// the pool would hold no value.
    pub resulting_inventory_ratio: Option<f64>,
    /// Mid price afterwards, 1e18 fixed point on raw units; `null` when undefined.
    pub resulting_mid_price_raw: Option<Amount>,
}

/// Predicted pool after the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictedState {
    /// Base reserve afterwards.
    pub base_reserve: Amount,
    /// Quote reserve afterwards.
    pub quote_reserve: Amount,
    /// Total shares afterwards.
    pub total_shares: Amount,
    /// Inventory ratio afterwards.
    pub inventory_ratio: Option<f64>,
}

/// What the node said when the action was dry-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChainDryRun {
    /// Block the dry run was pinned to.
    pub block_number: u64,
    /// `eth_estimateGas` of the pool call (the token transfers of a deposit are not included).
    pub gas_estimate: Option<u64>,
    /// Whether the node's result equals the exact math to the wei.
    pub matches_math: Option<bool>,
    /// Shares (add) or base (remove) the node returned.
    pub primary_output: Option<Amount>,
    /// Quote returned by a removal.
    pub secondary_output: Option<Amount>,
    /// Revert reason or RPC failure; a failed dry run denies.
    pub error: Option<String>,
}

impl ChainDryRun {
    /// A dry run at `block_number` that has produced nothing yet.
    pub(crate) fn empty(block_number: u64) -> Self {
        Self {
            block_number,
            gas_estimate: None,
            matches_math: None,
            primary_output: None,
            secondary_output: None,
            error: None,
        }
    }
}

/// Result of `dodo.simulate_action`. Never signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SimulationResult {
    /// Final verdict: the policy's, turned to deny when the dry run failed.
    pub verdict: Verdict,
    /// Rule that decided a deny, or `simulation` when the dry run failed.
    pub denied_by: Option<String>,
    /// The policy report.
    pub risk: RiskReport,
    /// Predicted post-state from the exact math; `null` for `hold`.
    pub predicted: Option<PredictedState>,
    /// The node's dry run; `null` for `hold`.
    pub dry_run: Option<ChainDryRun>,
}

/// Result of `dodo.pause_pool` / `dodo.resume_pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BreakerResult {
    /// Pool, or `"*"` for the global pause.
    #[schemars(schema_with = "breaker_target_schema")]
    pub pool: String,
    /// Whether writes are now blocked.
    pub tripped: bool,
    /// Stored reason (an earlier trip's, when the breaker was already tripped).
    pub reason: String,
    /// Whether this call changed the breaker (false: it was already in that state).
    pub changed: bool,
}

/// Verdict and rule of a result, for the `tool_calls` row.
pub fn audit_fields(value: &serde_json::Value) -> (Option<String>, Option<String>) {
    let pick = |v: &serde_json::Value| {
        let verdict = v.get("verdict").and_then(|x| x.as_str()).map(str::to_owned);
        let rule = v
            .get("denied_by")
            .or_else(|| v.get("decided_by"))
            .and_then(|x| x.as_str())
            .map(str::to_owned);
        (verdict, rule)
    };
    let (verdict, rule) = pick(value);
    if verdict.is_some() {
        return (verdict, rule);
    }
    value.get("risk").map(pick).unwrap_or((None, None))
}

/// The stable name of a rule, for results.
pub fn rule_name(rule: Option<Rule>) -> Option<String> {
    rule.map(|r| r.as_str().to_owned())
}

impl Hub {
    /// Both transports: checks `params` against `tool`'s advertised input schema
    /// ([`crate::validate`]), decodes them, and runs the tool through [`Hub::invoke`].
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
                ToolError::InvalidField {
                    field: if path == "." {
                        "params".to_owned()
                    } else {
                        path
                    },
                    message: e.into_inner().to_string(),
                }
            })
        }
        fn out<O: Serialize>(o: O) -> Value {
            serde_json::to_value(o).unwrap_or(Value::Null)
        }
        let decoded = crate::validate::check(tool, &params).and_then(|()| match tool {
            GET_POOL_STATE | IDENTIFY => decode::<PoolParams>(&params).map(Decoded::Pool),
            RESUME => decode::<ResumeParams>(&params).map(Decoded::Resume),
            QUOTE_ADD => decode::<QuoteAddParams>(&params).map(Decoded::Quote),
            RISK_CHECK => decode::<RiskCheckParams>(&params).map(Decoded::Risk),
            SIMULATE => decode::<SimulateParams>(&params).map(Decoded::Simulate),
            PAUSE => decode::<PauseParams>(&params).map(Decoded::Pause),
            ADD_LIQUIDITY => decode::<AddLiquidityParams>(&params).map(Decoded::Add),
            REMOVE_LIQUIDITY => decode::<RemoveLiquidityParams>(&params).map(Decoded::Remove),
            RESET_POOL => decode::<ResetPoolParams>(&params).map(Decoded::Reset),
            other => Err(ToolError::UnknownTool(other.chars().take(128).collect())),
        });
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                // Rejected input is the caller's, of any size: the row keeps a bounded view.
                let name: String = tool.chars().take(128).collect();
                self.record_rejected(caller, &name, crate::validate::bounded(&params), &e);
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
        // A write runs to its end whatever its caller does ([`Self::to_the_end`]).
        macro_rules! run_to_end {
            ($tool:expr, $p:ident, $method:ident) => {
                self.to_the_end(caller, async move |hub, caller| {
                    hub.invoke(&caller, $tool, &$p, hub.$method(&$p))
                        .await
                        .map(out)
                })
                .await
            };
        }
        match decoded {
            Decoded::Pool(p) => match tool {
                GET_POOL_STATE => run!(GET_POOL_STATE, p, get_pool_state),
                _ => run!(IDENTIFY, p, identify),
            },
            // Operator tools record who acted.
            Decoded::Resume(p) => self
                .invoke(caller, RESUME, &p, self.resume_pool(caller, &p))
                .await
                .map(out),
            Decoded::Pause(p) => self
                .invoke(caller, PAUSE, &p, self.pause_pool(caller, &p))
                .await
                .map(out),
            Decoded::Quote(p) => run!(QUOTE_ADD, p, quote_add_liquidity),
            Decoded::Risk(p) => run!(RISK_CHECK, p, risk_check),
            Decoded::Simulate(p) => run!(SIMULATE, p, simulate_action),
            Decoded::Add(p) => run_to_end!(ADD_LIQUIDITY, p, add_liquidity),
            Decoded::Remove(p) => run_to_end!(REMOVE_LIQUIDITY, p, remove_liquidity),
            Decoded::Reset(p) => run_to_end!(RESET_POOL, p, reset_pool),
        }
    }

    /// Runs a write in a task of its own, so it goes on to its receipt, settlement and
    /// outcome when its caller disconnects: dropped with the request, it would leave its
    /// intent open (sent, never settled) until the next restart.
    async fn to_the_end<F, Fut>(&self, caller: &Caller, write: F) -> Result<Value, ToolError>
    where
        F: FnOnce(Hub, Caller) -> Fut,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        tokio::spawn(write(self.clone(), caller.clone()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a write task failed");
                ToolError::Internal(format!("the write task failed: {e}"))
            })?
    }
}

enum Decoded {
    Pool(PoolParams),
    Resume(ResumeParams),
    Quote(QuoteAddParams),
    Risk(RiskCheckParams),
    Simulate(SimulateParams),
    Pause(PauseParams),
    Add(AddLiquidityParams),
    Remove(RemoveLiquidityParams),
    Reset(ResetPoolParams),
}
