//! Typed proxy errors and their one mapping to HTTP responses (OpenAI error shape).

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a proxied request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's request is malformed.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The concurrency cap and the queue are full (or the queue wait timed out).
    #[error("proxy is at capacity, retry later")]
    Overloaded {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// No upstream can take the request (all down, loading or with an open breaker).
    #[error("no upstream is available")]
    NoUpstream {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// The upstream refused the request itself (4xx); passed through unchanged.
    #[error("upstream rejected the request with status {status}")]
    UpstreamRejected {
        /// Upstream status code.
        status: StatusCode,
        /// Upstream body.
        body: Bytes,
    },
    /// Every attempt failed before a usable answer.
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
    /// The overall deadline passed.
    #[error("request deadline exceeded")]
    DeadlineExceeded,
}

impl ProxyError {
    /// HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NoUpstream { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRejected { status, .. } => *status,
            Self::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request_error",
            Self::Unauthorized => "authentication_error",
            Self::Overloaded { .. } => "rate_limit_error",
            Self::NoUpstream { .. } => "unavailable_error",
            Self::UpstreamRejected { .. } | Self::UpstreamFailed(_) => "upstream_error",
            Self::DeadlineExceeded => "timeout_error",
        }
    }

    /// The OpenAI-style error object (`{"error": {...}}`), also used as an SSE error event.
    pub fn to_json(&self) -> serde_json::Value {
        error_json(&self.to_string(), self.error_type(), self.status().as_u16())
    }
}

/// Builds an OpenAI-style error object.
pub fn error_json(message: &str, kind: &str, code: u16) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind, "code": code}})
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::UpstreamRejected { body, .. } => (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response(),
            _ => (status, axum::Json(self.to_json())).into_response(),
        };
        let retry_after = match &self {
            Self::Overloaded { retry_after } | Self::NoUpstream { retry_after } => {
                Some(retry_after.as_secs().max(1))
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
