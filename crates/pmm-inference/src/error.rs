//! Typed proxy errors and their one mapping to HTTP responses in OpenAI's error shape:
//! `{"error": {"message", "type", "param", "code"}}`, `code` a string or null, `type` derived from
//! the status alone so that every layer (validation, routing, transport, upstream) agrees.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Everything a proxied request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's request is malformed or asks for something the route cannot do.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for a human.
        message: String,
        /// The offending parameter (`messages[0].role`), if one.
        param: Option<String>,
        /// OpenAI-style machine code (`invalid_value`, `empty_array`, ...), if one.
        code: Option<&'static str>,
    },
    /// The request body is over `limits.max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The requested model is not configured.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// No route has this path.
    #[error("unknown URL: {method} {path}")]
    UnknownRoute {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The route exists but not for this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The concurrency cap and the queue are full (or the queue wait timed out), or every
    /// upstream answered 429.
    #[error("{message}")]
    Overloaded {
        /// What was full.
        message: String,
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// No upstream of the model can take the request (down, loading or breaker open).
    #[error("{message}")]
    NoUpstream {
        /// Why, naming the model.
        message: String,
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// The upstream refused the request itself (4xx): its status, its message in our shape.
    #[error("{message}")]
    UpstreamRejected {
        /// Upstream status code.
        status: StatusCode,
        /// The upstream's error message (or its raw body when it had none).
        message: String,
        /// The upstream's `param`, if it gave one.
        param: Option<String>,
        /// The upstream's `code`, if it was a string.
        code: Option<String>,
    },
    /// Every attempt failed before a usable answer.
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
    /// No first byte within the first-byte deadline, or the overall deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// A bug in the proxy (a handler panicked).
    #[error("internal error in the proxy")]
    Internal,
}

impl ProxyError {
    /// A 400 with a parameter and a code.
    pub fn invalid(message: impl Into<String>, param: &str, code: &'static str) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: Some(param.to_owned()),
            code: Some(code),
        }
    }

    /// HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ModelNotFound(_) | Self::UnknownRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NoUpstream { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRejected { status, .. } => *status,
            Self::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            Self::BadRequest { param, .. } | Self::UpstreamRejected { param, .. } => param.clone(),
            Self::ModelNotFound(_) => Some("model".to_owned()),
            _ => None,
        }
    }

    fn code(&self) -> Option<String> {
        let code = match self {
            Self::BadRequest { code, .. } => *code,
            Self::UpstreamRejected { code, .. } => return code.clone(),
            Self::PayloadTooLarge { .. } => Some("request_too_large"),
            Self::Unauthorized => Some("invalid_api_key"),
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::UnknownRoute { .. } => Some("unknown_url"),
            Self::MethodNotAllowed { .. } => Some("method_not_allowed"),
            Self::Overloaded { .. } => Some("rate_limit_exceeded"),
            Self::NoUpstream { .. } => Some("upstream_unavailable"),
            Self::UpstreamFailed(_) => Some("upstream_error"),
            Self::Timeout(_) => Some("timeout"),
            Self::Internal => Some("internal_error"),
        };
        code.map(str::to_owned)
    }

    /// The OpenAI error object (`{"error": {...}}`), also used as an SSE error event.
    pub fn to_json(&self) -> Value {
        error_json(
            self.status(),
            &self.to_string(),
            self.param().as_deref(),
            self.code().as_deref(),
        )
    }

    /// The upstream's 4xx answer in our shape: its message, `param` and string `code` are kept,
    /// an integer `code` (llama.cpp sends the status there) is dropped, `type` follows the status.
    pub fn from_upstream_4xx(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let message = err
            .and_then(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .or_else(|| e.as_str())
            })
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
                format!("upstream answered {status}: {text}")
            });
        let field = |k: &str| {
            err.and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self::UpstreamRejected {
            status,
            message,
            param: field("param"),
            code: field("code"),
        }
    }
}

/// OpenAI's `type` for a status: one mapping for every error the proxy sends.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// Builds an OpenAI error object.
pub fn error_json(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({"error": {
        "message": message,
        "type": error_type(status),
        "param": param,
        "code": code,
    }})
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.to_json())).into_response();
        let retry_after = match &self {
            Self::Overloaded { retry_after, .. } | Self::NoUpstream { retry_after, .. } => {
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
        // Both can answer before the request body was read to its end: the rest of it is still on
        // the connection, so the server drops it. Saying so keeps a keep-alive client from sending
        // its next request into a connection that is about to close.
        if matches!(self, Self::PayloadTooLarge { .. } | Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_the_four_fields_with_string_or_null_code() {
        let e = ProxyError::ModelNotFound("gpt-x".into()).to_json();
        assert_eq!(e["error"]["type"], "not_found_error");
        assert_eq!(e["error"]["code"], "model_not_found");
        assert_eq!(e["error"]["param"], "model");
        let e = ProxyError::UpstreamFailed("x".into()).to_json();
        assert!(e["error"]["param"].is_null());
        assert_eq!(e["error"]["type"], "server_error");
    }

    #[test]
    fn answers_before_the_body_is_read_close_the_connection() {
        for e in [
            ProxyError::PayloadTooLarge { limit: 1 },
            ProxyError::Unauthorized,
        ] {
            let r = e.into_response();
            assert_eq!(r.headers()[header::CONNECTION], "close");
        }
        let r = ProxyError::ModelNotFound("m".into()).into_response();
        assert!(r.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn upstream_4xx_is_normalised() {
        let body = br#"{"error":{"code":400,"message":"context too long","type":"invalid_request_error"}}"#;
        let e = ProxyError::from_upstream_4xx(StatusCode::BAD_REQUEST, body).to_json();
        assert_eq!(e["error"]["message"], "context too long");
        assert!(e["error"]["code"].is_null());
        let e = ProxyError::from_upstream_4xx(StatusCode::FORBIDDEN, b"nope").to_json();
        assert_eq!(e["error"]["type"], "permission_error");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("nope")
        );
    }
}
