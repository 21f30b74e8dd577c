//! HTTP hygiene in one place, as one axum middleware around every route: `Host` / `Origin`
//! checks (DNS-rebinding protection), a concurrency limit, the body-read timeout, JSON bodies
//! for every 4xx, and `Connection: close` on an error sent before the request body was read
//! (so a keep-alive client never reuses a connection whose unread body would be parsed as its
//! next request). The per-caller rate limit lives here too and is applied after authentication
//! ([`crate::auth::require_caller`]); the header-read timeout is set on the connection
//! ([`crate::serve_http`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, oneshot};

use crate::config::{ConfigError, HubConfig};

/// Longest transport error text kept when it is rewrapped as JSON.
const MAX_ERROR_TEXT: usize = 4096;

/// The hub's one error shape for responses that are not a tool's:
/// `{"error": {"code", "message", "field": null}}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "error": {"code": code, "message": message, "field": null}
        })),
    )
        .into_response()
}

/// The code of a transport error by its status.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "client_error",
    }
}

/// The HTTP limits of [`HubConfig`], checked.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Accepted `Host` names (`name` matches any port, `name:port` only that port).
    pub allowed_hosts: Vec<String>,
    /// Accepted cross-origin `Origin`s, exactly as browsers send them.
    pub allowed_origins: Vec<String>,
    /// Requests served at once.
    pub max_concurrent_requests: usize,
    /// Average requests per second per caller.
    pub rate_limit_per_s: u32,
    /// Requests above the average a caller may make at once.
    pub rate_limit_burst: u32,
    /// Connection header-read timeout.
    pub header_read_timeout: Duration,
    /// Request body-read timeout.
    pub body_read_timeout: Duration,
    /// MCP session idle timeout.
    pub mcp_session_idle: Duration,
    /// MCP sessions open at once.
    pub mcp_max_sessions: usize,
}

fn invalid(key: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.to_owned(),
    }
}

impl HttpLimits {
    /// The limits `cfg` sets; a zero limit is refused rather than meaning "none".
    pub fn from_config(cfg: &HubConfig) -> Result<Self, ConfigError> {
        if cfg.max_concurrent_requests == 0 {
            return Err(invalid("max_concurrent_requests", "must be at least 1"));
        }
        if cfg.rate_limit_per_s == 0 {
            return Err(invalid("rate_limit_per_s", "must be at least 1"));
        }
        if cfg.rate_limit_burst == 0 {
            return Err(invalid("rate_limit_burst", "must be at least 1"));
        }
        if cfg.header_read_timeout_ms == 0 {
            return Err(invalid("header_read_timeout_ms", "must be at least 1"));
        }
        if cfg.body_read_timeout_ms == 0 {
            return Err(invalid("body_read_timeout_ms", "must be at least 1"));
        }
        if cfg.mcp_session_idle_s == 0 {
            return Err(invalid("mcp_session_idle_s", "must be at least 1"));
        }
        if cfg.mcp_max_sessions == 0 {
            return Err(invalid("mcp_max_sessions", "must be at least 1"));
        }
        Ok(Self {
            allowed_hosts: cfg.allowed_hosts.clone(),
            allowed_origins: cfg.allowed_origins.clone(),
            max_concurrent_requests: cfg.max_concurrent_requests,
            rate_limit_per_s: cfg.rate_limit_per_s,
            rate_limit_burst: cfg.rate_limit_burst,
            header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(cfg.body_read_timeout_ms),
            mcp_session_idle: Duration::from_secs(cfg.mcp_session_idle_s),
            mcp_max_sessions: cfg.mcp_max_sessions,
        })
    }
}

/// State of [`guard`].
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Arc<Vec<String>>,
    origins: Arc<Vec<String>>,
    in_flight: Arc<Semaphore>,
    body_timeout: Duration,
}

impl Guard {
    /// A guard enforcing `limits`.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            hosts: Arc::new(
                limits
                    .allowed_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            ),
            origins: Arc::new(
                limits
                    .allowed_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            ),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            body_timeout: limits.body_read_timeout,
        }
    }

    /// The request's authority (`Host`, or the URI's for HTTP/2), lower-cased.
    fn authority(req: &Request) -> Option<String> {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
            .map(|a| a.to_ascii_lowercase())
    }

    /// Whether `authority` names an allowed host: `name` entries match any port,
    /// `name:port` entries only that port.
    fn host_allowed(&self, authority: &str) -> bool {
        let name = match authority.strip_prefix('[') {
            // `[::1]:3000` -> `::1`
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(n, _)| n),
        };
        self.hosts
            .iter()
            .any(|h| h == authority || h.trim_start_matches('[').trim_end_matches(']') == name)
    }

    /// Whether a present `Origin` may call: an allowed origin, or the same origin as the
    /// (already allowed) `Host`.
    fn origin_allowed(&self, origin: &str, authority: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest == authority)
    }
}

/// Whether the request carries a body at all (a bodiless request cannot leave one unread).
fn has_body(headers: &HeaderMap, body: &Body) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match content_length(headers) {
        Some(len) => len > 0,
        None => !body.is_end_stream(),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A request body that fails once it has taken longer than its deadline, and that hands its
/// unread rest back to [`guard`] when dropped before its end (so the guard can drain it).
struct TrackedBody {
    inner: Body,
    finished: bool,
    deadline: Pin<Box<tokio::time::Sleep>>,
    unread: Option<oneshot::Sender<Body>>,
}

/// The error a slow body yields (axum extractors then answer 4xx).
#[derive(Debug, thiserror::Error)]
#[error("request body not received within the body-read timeout")]
pub struct BodyTimeout;

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished = true;
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(tx) = self.unread.take()
            && !self.finished
        {
            // The guard may be gone already (the connection dropped); nothing to drain then.
            let _ = tx.send(std::mem::take(&mut self.inner));
        }
    }
}

/// The middleware (outermost layer of [`crate::http::router`]).
pub async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let body_present = has_body(req.headers(), req.body());
    let length = content_length(req.headers());
    let (tx, mut rx) = oneshot::channel();
    let (parts, body) = req.into_parts();
    let tracked = TrackedBody {
        inner: body,
        finished: false,
        deadline: Box::pin(tokio::time::sleep(g.body_timeout)),
        unread: Some(tx),
    };
    let req = Request::from_parts(parts, Body::new(tracked));
    let mut response = admit(&g, req, next).await;
    if response.status().is_client_error() && !is_json(response.headers()) {
        response = as_json(response).await;
    }
    if body_present {
        let keep_alive = match rx.try_recv() {
            // Read to its end (the sender went without sending).
            Err(oneshot::error::TryRecvError::Closed) => true,
            // Refused before its body was read (401, 413, 403, ...): read and discard a
            // bounded rest so the connection stays usable.
            Ok(rest) => length.is_some_and(|l| l <= DRAIN_LIMIT) && drain(rest, &g).await,
            // Still held by a streaming response: its end is unknown.
            Err(oneshot::error::TryRecvError::Empty) => response.status().is_success(),
        };
        if !keep_alive {
            // The unread rest of the body would be parsed as the next request: end the
            // connection, and say so, so the client opens a new one instead of failing.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

/// Largest unread body [`guard`] reads and discards to keep a connection alive; a larger
/// one gets `Connection: close` instead.
const DRAIN_LIMIT: u64 = 4 << 20;

/// Reads `rest` to its end within the body-read timeout; `false` when it is longer than
/// [`DRAIN_LIMIT`], slower, or broken.
async fn drain(rest: Body, g: &Guard) -> bool {
    use futures::StreamExt;
    let mut stream = rest.into_data_stream();
    let mut total = 0u64;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return false };
            total += chunk.len() as u64;
            if total > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(g.body_timeout, read)
        .await
        .unwrap_or(false)
}

async fn admit(g: &Guard, req: Request, next: Next) -> Response {
    let Some(authority) = Guard::authority(&req) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing Host header",
        );
    };
    if !g.host_allowed(&authority) {
        tracing::debug!(host = %authority, "request refused: Host not allowed");
        return error_response(StatusCode::FORBIDDEN, "forbidden_host", "Host not allowed");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| g.origin_allowed(o, &authority));
        if !ok {
            return error_response(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "Origin not allowed",
            );
        }
    }
    let Ok(_permit) = g.in_flight.clone().try_acquire_owned() else {
        let mut r = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(req).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A 4xx with a text (or empty) body rewrapped in the hub's error shape, keeping its status
/// and headers (`WWW-Authenticate`, `Retry-After`, `Allow`, ...).
async fn as_json(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("client error")
            .to_owned()
    } else {
        text
    };
    let json = error_response(parts.status, code_of(parts.status), &message);
    let (json_parts, json_body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        json_parts.headers[header::CONTENT_TYPE].clone(),
    );
    Response::from_parts(parts, json_body)
}

/// Token buckets per caller: `burst` requests at once, refilled at `per_s` per second.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter of `limits`' rate and burst.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            per_s: f64::from(limits.rate_limit_per_s),
            burst: f64::from(limits.rate_limit_burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `caller`'s bucket; `Err(seconds)` until one is available.
    /// Keys are authenticated caller names, so the map is bounded by the configured tokens.
    pub fn check(&self, caller: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets
            .entry(caller.to_owned())
            .or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_s).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.per_s;
            // Whole seconds, as Retry-After carries; at least one.
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The 429 a caller over its rate gets.
pub fn rate_limited(retry_after_s: u64) -> Response {
    let mut r = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "request rate above this caller's limit",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: vec!["https://app.example.com".into()],
            max_concurrent_requests: 4,
            rate_limit_per_s: 1,
            rate_limit_burst: 2,
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            mcp_session_idle: Duration::from_secs(1),
            mcp_max_sessions: 2,
        }
    }

    #[test]
    fn hosts_and_origins() {
        let g = Guard::new(&limits());
        assert!(g.host_allowed("127.0.0.1:3000"));
        assert!(g.host_allowed("localhost"));
        assert!(g.host_allowed("[::1]:3000"));
        assert!(!g.host_allowed("evil.example:3000"));
        assert!(!g.host_allowed("127.0.0.1.evil.example"));
        assert!(g.origin_allowed("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(g.origin_allowed("https://app.example.com", "127.0.0.1:3000"));
        assert!(!g.origin_allowed("http://evil.example", "127.0.0.1:3000"));
        assert!(!g.origin_allowed("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!g.origin_allowed("null", "127.0.0.1:3000"));
    }

    #[test]
    fn rate_limit_per_caller() {
        let r = RateLimiter::new(&limits());
        assert_eq!(r.check("a"), Ok(()));
        assert_eq!(r.check("a"), Ok(()));
        assert_eq!(r.check("a"), Err(1));
        assert_eq!(r.check("b"), Ok(()));
    }
}
