//! The one axum router: `/mcp` (MCP Streamable HTTP), `/mcp/call`, `/health`, `/metrics`.
//! Errors map to status codes in one place ([`ToolError::status`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{Authenticator, Caller, CallerGate, require_caller};
use crate::guard::{self, Guard, HttpLimits, RateLimiter, error_response};
use crate::hub::Hub;
use crate::mcp::McpServer;
use crate::sessions::{Sessions, session_gate};

/// Largest request body accepted on `/mcp/call`.
const MAX_BODY: usize = 1 << 20;
/// Upper bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST /mcp/call` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// Tool name, e.g. `dodo.get_pool_state`.
    pub tool: String,
    /// Tool parameters.
    #[serde(default)]
    pub params: serde_json::Value,
}

/// What the router needs.
#[derive(Clone)]
pub struct AppState {
    /// The hub.
    pub hub: Hub,
    /// Prometheus renderer.
    pub metrics: Option<Arc<PrometheusHandle>>,
    /// MCP sessions (for `/health`); [`router`] sets them.
    pub sessions: Option<Arc<Sessions>>,
}

/// Transport settings of `/mcp`.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// Ends in-flight MCP responses and the session sweeper on shutdown.
    pub cancel: CancellationToken,
}

/// Builds the router. Layers, outermost first: [`guard::guard`] (Host/Origin, concurrency,
/// body-read timeout, JSON 4xx, `Connection: close` on an unread body), the request timeout,
/// the body size limit; the tool routes then authenticate and rate-limit the caller.
pub fn router(
    mut state: AppState,
    auth: Authenticator,
    mcp: McpSettings,
    limits: &HttpLimits,
) -> Router {
    let hub = state.hub.clone();
    // Host and Origin are checked by the guard on every route, so rmcp's own checks (which
    // refused a same-origin browser request) are off.
    // rmcp serves every request statelessly; sessions are the hub's own ([`Sessions`]).
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY)
        .with_cancellation_token(mcp.cancel.clone());
    let sessions = Arc::new(Sessions::new(
        limits.mcp_session_idle,
        limits.mcp_max_sessions,
    ));
    sessions.spawn_sweeper(mcp.cancel);
    state.sessions = Some(sessions.clone());
    let service: StreamableHttpService<McpServer, NeverSessionManager> = StreamableHttpService::new(
        move || Ok(McpServer::new(hub.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let mcp_route = Router::new()
        .fallback_service(service)
        .layer(middleware::from_fn_with_state(sessions, session_gate));
    let gate = CallerGate {
        auth,
        limiter: Arc::new(RateLimiter::new(limits)),
    };
    let authed = Router::new()
        .route("/mcp/call", post(call))
        .nest_service("/mcp", mcp_route)
        .layer(middleware::from_fn_with_state(gate, require_caller));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(authed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn_with_state(
            Guard::new(limits),
            guard::guard,
        ))
        .with_state(state)
}

async fn call(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CallRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error_response(e.status(), "invalid_request", &e.body_text());
        }
    };
    match state.hub.dispatch(&caller, &req.tool, req.params).await {
        Ok(result) => (
            StatusCode::OK,
            Json(serde_json::json!({"tool": req.tool, "result": result})),
        )
            .into_response(),
        Err(e) => (
            e.status(),
            Json(serde_json::json!({"tool": req.tool, "error": e.body()})),
        )
            .into_response(),
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let mut report = state.hub.health().await;
    report.mcp_sessions = state.sessions.as_ref().map(|s| s.stats());
    let code = if report.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            h.render(),
        )
            .into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics recorder not installed",
        ),
    }
}
