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
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{Authenticator, Caller, require_caller};
use crate::hub::Hub;
use crate::mcp::McpServer;

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
}

/// Transport settings of `/mcp`.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// Accepted `Host` values.
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin`s (others get 403).
    pub allowed_origins: Vec<String>,
    /// Stops open MCP sessions on shutdown.
    pub cancel: CancellationToken,
}

/// Builds the router.
pub fn router(state: AppState, auth: Authenticator, mcp: McpSettings) -> Router {
    let hub = state.hub.clone();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(mcp.allowed_hosts)
        .with_allowed_origins(mcp.allowed_origins)
        .enforce_origin_validation()
        .with_cancellation_token(mcp.cancel);
    let service: StreamableHttpService<McpServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(McpServer::new(hub.clone())),
        Default::default(),
        config,
    );
    let authed = Router::new()
        .route("/mcp/call", post(call))
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(auth, require_caller));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(authed)
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
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
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": {"code": "invalid_request", "message": e.body_text()}})),
            )
                .into_response();
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
    let report = state.hub.health().await;
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
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}
