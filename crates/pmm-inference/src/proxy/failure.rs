//! What a failed attempt means: for the breaker, for a retry, and for the client.

use axum::http::StatusCode;

use crate::error::ProxyError;
use crate::upstream::{Health, Upstream, refuses_tools};

/// What a failed attempt says about the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Connect error, 5xx, broken or invalid answer: counts toward the breaker.
    Broken,
    /// No first byte within the first-byte deadline: trips the breaker at once.
    Stall,
    /// The upstream is loading its model (503): decides nothing, the upstream is skipped.
    Loading,
    /// The upstream is busy (429, or a 503 that is not loading): decides nothing, skipped.
    Busy,
    /// The request's overall deadline passed.
    Deadline,
}

/// Why one attempt failed (all of these are retryable: nothing reached the client yet).
///
/// `message` goes to logs and to the client, so reqwest errors enter it `without_url()`: an
/// upstream URL may carry a key in its query string.
#[derive(Debug)]
pub struct AttemptFailure {
    /// Metric label.
    pub reason: &'static str,
    /// For logs and the client.
    pub message: String,
    /// What it means for the breaker and the final answer.
    pub kind: FailKind,
}

impl AttemptFailure {
    /// A failure record.
    pub fn new(reason: &'static str, message: impl Into<String>, kind: FailKind) -> Self {
        Self {
            reason,
            message: message.into(),
            kind,
        }
    }
}

pub(super) enum AttemptError {
    /// Try another attempt.
    Retry(AttemptFailure),
    /// Stop and return this to the client (a 4xx from the upstream, a bad request).
    Fatal(ProxyError),
}

pub(super) fn tools_refused(model: &str, upstreams: &[&str]) -> ProxyError {
    ProxyError::invalid(
        format!(
            "The model `{model}` does not support tools: its upstreams ({}) serve no tool calls (llama-server needs --jinja for them).",
            upstreams.join(", ")
        ),
        "tools",
        "tools_not_supported",
    )
}

pub(super) fn body_broken(e: reqwest::Error) -> AttemptError {
    AttemptError::Retry(AttemptFailure::new(
        "body",
        e.without_url().to_string(),
        FailKind::Broken,
    ))
}

pub(super) async fn check_status(
    upstream: &Upstream,
    resp: reqwest::Response,
    model: &str,
    tools: bool,
) -> Result<reqwest::Response, AttemptError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // A body cut short is an upstream failure: passing on its status with an empty body would
    // present a broken answer as the upstream's verdict on the request.
    let body = resp.bytes().await.map_err(body_broken)?;
    let snippet = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if tools && refuses_tools(&snippet) {
        upstream.set_supports_tools(false);
        return Err(AttemptError::Fatal(tools_refused(
            model,
            &[upstream.name.as_str()],
        )));
    }
    match status.as_u16() {
        429 => Err(AttemptError::Retry(AttemptFailure::new(
            "overloaded",
            format!("status 429: {snippet}"),
            FailKind::Busy,
        ))),
        503 if snippet.contains("Loading model") => {
            upstream.set_health(Health::Loading);
            Err(AttemptError::Retry(AttemptFailure::new(
                "loading",
                format!("status 503: {snippet}"),
                FailKind::Loading,
            )))
        }
        503 => Err(AttemptError::Retry(AttemptFailure::new(
            "unavailable",
            format!("status 503: {snippet}"),
            FailKind::Busy,
        ))),
        s if s >= 500 => Err(AttemptError::Retry(AttemptFailure::new(
            "status_5xx",
            format!("status {s}: {snippet}"),
            FailKind::Broken,
        ))),
        s => Err(AttemptError::Fatal(ProxyError::from_upstream_4xx(
            StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
            &body,
        ))),
    }
}
