//! MCP over Streamable HTTP (rmcp): the tools of [`crate::tools::TOOLS`] with their
//! descriptions, hints and advertised schemas; every call goes through [`Hub::dispatch`], the
//! path `/mcp/call` takes, so validation, results and errors are the same on both.

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::auth::Caller;
use crate::error::ToolError;
use crate::hub::Hub;
use crate::tools::*;

/// What `tools/list` says of a tool beyond its schemas.
struct ToolInfo {
    name: &'static str,
    description: &'static str,
    /// read-only, destructive, idempotent, open-world.
    hints: [bool; 4],
}

const INFO: [ToolInfo; 10] = [
    ToolInfo {
        name: GET_POOL_STATE,
        description: "Normalized state of a DODO pool at the latest block: tokens, mid and oracle price, reserves, inventory ratio, fees, PMM parameters (exact values as decimal strings). One batched chain read.",
        hints: [true, false, true, true],
    },
    ToolInfo {
        name: IDENTIFY,
        description: "Probe any address for DODO pool interfaces (works for pools in no allowlist): functions found, detected profile (dvm, dsp, dpp, dpp_oracle, gsp, v1, unknown) and notes.",
        hints: [true, false, true, true],
    },
    ToolInfo {
        name: QUOTE_ADD,
        description: "Exact outcome of depositing base_amount and quote_amount (raw units, decimal strings) into a DVM/DSP/GSP: shares received, amounts actually taken, excess donated to other LPs, resulting inventory ratio.",
        hints: [true, false, true, true],
    },
    ToolInfo {
        name: RISK_CHECK,
        description: "Policy report for a pool and an optional proposed action (default hold): verdict, deciding rule, score, every rule's outcome. Changes nothing: breakers are tripped by the hub's pool monitor, and this reports what it decided.",
        hints: [true, false, true, true],
    },
    ToolInfo {
        name: SIMULATE,
        description: "Dry-run a proposed action: predicted post-state from exact math, the node's eth_call and gas estimate, and the policy verdict. Never signs or sends.",
        hints: [true, false, true, true],
    },
    ToolInfo {
        name: PAUSE,
        description: "Operator only: trip the pool's circuit breaker (\"pool\": \"*\" pauses every pool) so every write is denied until resumed. An earlier trip's reason is kept.",
        hints: [false, false, true, false],
    },
    ToolInfo {
        name: RESUME,
        description: "Operator only: clear the pool's circuit breaker (\"pool\": \"*\" ends the global pause), allowing writes again. Recorded with the operator's name.",
        hints: [false, true, true, false],
    },
    ToolInfo {
        name: ADD_LIQUIDITY,
        description: "Deposit base and quote into a DVM or DSP through DODO's proxy in one transaction (balanced amounts, minimums, deadline). Runs build, dry_run, policy, reserve, intent, send, receipt, settle, outcome; refused unless ALLOW_WRITE and EXECUTION_ARMED. Same idempotency_key = same result, never sent twice.",
        hints: [false, true, true, true],
    },
    ToolInfo {
        name: REMOVE_LIQUIDITY,
        description: "Burn LP shares with sellShares (minimums and a deadline), through the same named steps and gates as dodo.add_liquidity.",
        hints: [false, true, true, true],
    },
    ToolInfo {
        name: RESET_POOL,
        description: "Operator only: reset a DPP / DPP Oracle the signer owns (new i, k, LP fee rate; withdrawals bounded by minimum reserves), through the same named steps and gates as the other writes.",
        hints: [false, true, true, true],
    },
];

/// The `tools/list` entry of `info`.
fn tool(info: &ToolInfo) -> Option<Tool> {
    let s = crate::validate::schemas(info.name)?;
    let [read_only, destructive, idempotent, open_world] = info.hints;
    Some(
        Tool::new_with_raw(info.name, Some(info.description.into()), s.input.clone())
            .with_raw_output_schema(s.output.clone())
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(read_only)
                    .destructive(destructive)
                    .idempotent(idempotent)
                    .open_world(open_world),
            ),
    )
}

/// The rmcp server: one per session, all sharing one [`Hub`].
#[derive(Clone)]
pub struct McpServer {
    hub: Hub,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").finish_non_exhaustive()
    }
}

impl McpServer {
    /// A server over `hub`.
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

/// A tool failure as the spec and every SDK expect it: `isError` with the `{code, message,
/// field}` body `/mcp/call` sends as the text content, and no `structuredContent` (it would
/// have to conform to the tool's `outputSchema`, which describes a success).
pub fn failure(e: &ToolError) -> CallToolResult {
    let body = serde_json::to_string(&e.body()).unwrap_or_else(|_| e.to_string());
    CallToolResult::error(vec![ContentBlock::text(body)])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("pmm-hub", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "DODO PMM liquidity tools. Amounts are raw token units as decimal strings. \
             Reads and simulations never sign; writes go through the policy engine."
                .into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            INFO.iter().filter_map(tool).collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        INFO.iter().find(|i| i.name == name).and_then(tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The auth middleware attaches the caller; a request without one is refused.
        let caller = context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<Caller>().cloned());
        let Some(caller) = caller else {
            return Ok(failure(&ToolError::Forbidden {
                tool: request.name.chars().take(128).collect(),
                needed: "agent",
            })
            .into());
        };
        let args = request
            .arguments
            .map(serde_json::Value::Object)
            .unwrap_or(serde_json::Value::Null);
        match self.hub.dispatch(&caller, &request.name, args).await {
            Ok(v) => Ok(CallToolResult::structured(v).into()),
            // An unknown tool is a protocol error (the spec's -32602), with the same body.
            Err(e @ ToolError::UnknownTool(_)) => Err(ErrorData::invalid_params(
                e.to_string(),
                serde_json::to_value(e.body()).ok(),
            )),
            Err(e) => Ok(failure(&e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_once_with_its_schemas() {
        let mut listed: Vec<&str> = INFO.iter().map(|i| i.name).collect();
        listed.sort_unstable();
        let mut table: Vec<&str> = TOOLS.iter().map(|(n, _)| *n).collect();
        table.sort_unstable();
        assert_eq!(listed, table);
        for i in &INFO {
            let t = tool(i).unwrap_or_else(|| panic!("{} has no schemas", i.name));
            assert_eq!(
                t.input_schema.get("type"),
                Some(&serde_json::json!("object"))
            );
            assert!(t.output_schema.is_some(), "{}", i.name);
        }
    }

    #[test]
    fn an_error_result_has_no_structured_content_and_carries_the_body() {
        let r = failure(&ToolError::Forbidden {
            tool: PAUSE.into(),
            needed: "operator",
        });
        assert_eq!(r.is_error, Some(true));
        assert!(r.structured_content.is_none());
        let text = r.content[0]
            .as_text()
            .map(|t| t.text.clone())
            .unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(body["code"], "forbidden");
        assert_eq!(
            body["message"],
            "tool dodo.pause_pool needs the operator role"
        );
        assert!(body["field"].is_null());
    }
}
