//! MCP over Streamable HTTP (rmcp): the same tools as `/mcp/call`, through [`Hub::invoke`].

use axum::http::request::Parts;
use pmm_chain::InterfaceReport;
use pmm_core::policy::RiskReport;
use pmm_core::schema::PoolState;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use crate::auth::Caller;
use crate::error::ToolError;
use crate::hub::Hub;
use crate::tools::*;

/// The rmcp server: one per session, all sharing one [`Hub`].
#[derive(Clone)]
pub struct McpServer {
    hub: Hub,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").finish_non_exhaustive()
    }
}

/// The caller the auth middleware attached; a request that bypassed it is refused `tool`.
fn caller_of(parts: &Parts, tool: &str) -> Result<Caller, CallToolResult> {
    parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
        failure(ToolError::Forbidden {
            tool: tool.to_owned(),
            needed: "agent",
        })
    })
}

/// A tool failure as an `isError` result with the same `{code, message}` body `/mcp/call` sends.
fn failure(e: ToolError) -> CallToolResult {
    let body = serde_json::json!({"error": e.body()});
    let mut r = CallToolResult::error(vec![ContentBlock::text(body.to_string())]);
    r.structured_content = Some(body);
    r
}

#[tool_router(router = tool_router)]
impl McpServer {
    /// A server over `hub`.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "dodo.get_pool_state",
        description = "Normalized state of a DODO pool at the latest block: tokens, mid and oracle price, reserves, inventory ratio, fees, PMM parameters (exact values as decimal strings). One batched chain read.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_pool_state(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<PoolParams>,
    ) -> Result<Json<PoolState>, CallToolResult> {
        let c = caller_of(&parts, GET_POOL_STATE)?;
        self.hub
            .invoke(&c, GET_POOL_STATE, &p, self.hub.get_pool_state(&p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.identify_pool_interface",
        description = "Probe any address for DODO pool interfaces (works for pools in no allowlist): functions found, detected profile (dvm, dsp, dpp, dpp_oracle, gsp, v1, unknown) and notes.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn identify_pool_interface(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<PoolParams>,
    ) -> Result<Json<InterfaceReport>, CallToolResult> {
        let c = caller_of(&parts, IDENTIFY)?;
        self.hub
            .invoke(&c, IDENTIFY, &p, self.hub.identify(&p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.quote_add_liquidity",
        description = "Exact outcome of depositing base_amount and quote_amount (raw units, decimal strings) into a DVM/DSP/GSP: shares received, amounts actually taken, excess donated to other LPs, resulting inventory ratio.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn quote_add_liquidity(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<QuoteAddParams>,
    ) -> Result<Json<AddLiquidityQuote>, CallToolResult> {
        let c = caller_of(&parts, QUOTE_ADD)?;
        self.hub
            .invoke(&c, QUOTE_ADD, &p, self.hub.quote_add_liquidity(&p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.risk_check",
        description = "Policy report for a pool and an optional proposed action (default hold): verdict, deciding rule, score, every rule's outcome. Changes nothing: breakers are tripped by the hub's pool monitor, and this reports what it decided.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn risk_check(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<RiskCheckParams>,
    ) -> Result<Json<RiskReport>, CallToolResult> {
        let c = caller_of(&parts, RISK_CHECK)?;
        self.hub
            .invoke(&c, RISK_CHECK, &p, self.hub.risk_check(&p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.simulate_action",
        description = "Dry-run a proposed action: predicted post-state from exact math, the node's eth_call and gas estimate, and the policy verdict. Never signs or sends.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn simulate_action(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<SimulateParams>,
    ) -> Result<Json<SimulationResult>, CallToolResult> {
        let c = caller_of(&parts, SIMULATE)?;
        self.hub
            .invoke(&c, SIMULATE, &p, self.hub.simulate_action(&p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.pause_pool",
        description = "Operator only: trip the pool's circuit breaker (\"pool\": \"*\" pauses every pool) so every write is denied until resumed. An earlier trip's reason is kept.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn pause_pool(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<PauseParams>,
    ) -> Result<Json<BreakerResult>, CallToolResult> {
        let c = caller_of(&parts, PAUSE)?;
        self.hub
            .invoke(&c, PAUSE, &p, self.hub.pause_pool(&c, &p))
            .await
            .map(Json)
            .map_err(failure)
    }

    #[tool(
        name = "dodo.resume_pool",
        description = "Operator only: clear the pool's circuit breaker (\"pool\": \"*\" ends the global pause), allowing writes again. Recorded with the operator's name.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn resume_pool(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(p): Parameters<ResumeParams>,
    ) -> Result<Json<BreakerResult>, CallToolResult> {
        let c = caller_of(&parts, RESUME)?;
        self.hub
            .invoke(&c, RESUME, &p, self.hub.resume_pool(&c, &p))
            .await
            .map(Json)
            .map_err(failure)
    }
}

#[tool_handler(router = self.tool_router)]
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

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<Caller>().cloned());
        let name = request.name.to_string();
        let args = request
            .arguments
            .clone()
            .map(serde_json::Value::Object)
            .unwrap_or(serde_json::Value::Null);
        let tcc = ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        // Undecodable arguments never reach `invoke`: log them here, once.
        if let (Some(c), Ok(CallToolResponse::Complete(r))) = (&caller, &result)
            && r.is_error == Some(true)
            && r.structured_content.is_none()
        {
            let msg = r
                .content
                .iter()
                .filter_map(|b| b.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join(" ");
            self.hub
                .record_rejected(c, &name, args, &ToolError::InvalidParams(msg));
        }
        result
    }
}
