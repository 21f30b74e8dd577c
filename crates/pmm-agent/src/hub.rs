//! The hub, as the agent sees it: an MCP client (rmcp, Streamable HTTP on `/mcp`) with the
//! agent's bearer token. Every tool call carries the tick's W3C `traceparent`, both in the
//! request's `_meta` (MCP SEP-414) and as the HTTP header, so the hub can file its `tool_calls`
//! rows under the decision's trace id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientConfig, ClientJsonRpcMessage, RequestMetaObject, RequestParamsMeta,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::trace::Trace;

/// How a hub call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// The hub could not be reached or the session broke: retry later, with backoff.
    #[error("hub unavailable: {0}")]
    Unavailable(String),
    /// The tool ran and refused (`isError`): its `{code, message}`.
    #[error("{tool} failed: {code}: {message}")]
    Tool {
        /// Tool name.
        tool: String,
        /// The hub's error code (`invalid_params`, `unsupported`, ...).
        code: String,
        /// The hub's message.
        message: String,
    },
}

impl HubError {
    /// Whether the failure is the hub being away rather than a tool's answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// reqwest under rmcp's transport, copying each request's `_meta.traceparent` into the HTTP
/// `traceparent` header: rmcp's headers are fixed per transport, the trace changes per call.
#[derive(Clone, Default)]
struct TracingHttp(reqwest::Client);

fn with_traceparent(
    message: &ClientJsonRpcMessage,
    mut headers: HashMap<HeaderName, HeaderValue>,
) -> HashMap<HeaderName, HeaderValue> {
    let tp = serde_json::to_value(message).ok().and_then(|v| {
        v.pointer("/params/_meta/traceparent")
            .and_then(Value::as_str)
            .and_then(|s| HeaderValue::from_str(s).ok())
    });
    if let Some(tp) = tp {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
    headers
}

impl StreamableHttpClient for TracingHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message(uri, message, session_id, auth_header, headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

type Session = RunningService<RoleClient, ClientConfig>;

/// An MCP session to the hub, opened on first use and reopened after a transport failure.
pub struct HubClient {
    mcp_url: String,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
    session: Mutex<Option<Arc<Session>>>,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("mcp_url", &self.mcp_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HubClient {
    /// A client of the hub at `base_url` (`/mcp` is appended); `token` is the agent-role bearer
    /// token; each call may take at most `timeout`.
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            mcp_url: format!("{}/mcp", base_url.trim_end_matches('/')),
            token,
            timeout,
            http,
            session: Mutex::new(None),
        }
    }

    async fn session(&self) -> Result<Arc<Session>, HubError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let mut cfg = StreamableHttpClientTransportConfig::with_uri(self.mcp_url.clone());
        if let Some(t) = &self.token {
            cfg = cfg.auth_header(t.clone());
        }
        let transport =
            StreamableHttpClientTransport::with_client(TracingHttp(self.http.clone()), cfg);
        let session = tokio::time::timeout(self.timeout, ClientConfig::default().serve(transport))
            .await
            .map_err(|_| {
                HubError::Unavailable(format!("MCP initialize timed out after {:?}", self.timeout))
            })?
            .map_err(|e| HubError::Unavailable(format!("MCP initialize: {e}")))?;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn drop_session(&self) {
        self.session.lock().await.take();
    }

    /// Calls `tool` with `args` under `trace` and returns its structured result.
    pub async fn call(&self, tool: &str, args: Value, trace: &Trace) -> Result<Value, HubError> {
        let session = self.session().await?;
        let Value::Object(args) = args else {
            return Err(HubError::Tool {
                tool: tool.to_owned(),
                code: "invalid_params".into(),
                message: "arguments must be a JSON object".into(),
            });
        };
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        let mut meta = RequestMetaObject::new();
        meta.set_traceparent(trace.traceparent());
        params.set_meta(meta);
        let result = match tokio::time::timeout(self.timeout, session.call_tool(params)).await {
            Err(_) => {
                self.drop_session().await;
                return Err(HubError::Unavailable(format!(
                    "{tool} timed out after {:?}",
                    self.timeout
                )));
            }
            Ok(Err(e)) => {
                self.drop_session().await;
                return Err(HubError::Unavailable(format!("{tool}: {e}")));
            }
            Ok(Ok(r)) => r,
        };
        let body = result.structured_content.clone().unwrap_or_else(|| {
            result
                .content
                .iter()
                .find_map(|c| c.as_text().map(|t| t.text.clone()))
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null)
        });
        if result.is_error == Some(true) {
            let err = &body["error"];
            return Err(HubError::Tool {
                tool: tool.to_owned(),
                code: err["code"].as_str().unwrap_or("error").to_owned(),
                message: err["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| body.to_string()),
            });
        }
        Ok(body)
    }

    async fn probe(&self) -> Option<reqwest::StatusCode> {
        let url = self.mcp_url.trim_end_matches("/mcp").to_owned() + "/health";
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        r.ok().map(|r| r.status())
    }

    /// Whether the hub answers `GET /health` with a success status (all its parts are up).
    pub async fn healthy(&self) -> bool {
        self.probe().await.is_some_and(|s| s.is_success())
    }

    /// Whether the hub answers HTTP at all, even degraded: enough to try ticking again.
    pub async fn reachable(&self) -> bool {
        self.probe().await.is_some()
    }

    /// Ends the MCP session (best effort).
    pub async fn close(&self) {
        if let Some(s) = self.session.lock().await.take()
            && let Ok(s) = Arc::try_unwrap(s)
        {
            let _ = s.cancel().await;
        }
    }
}
