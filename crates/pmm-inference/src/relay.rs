//! Relays one upstream SSE stream to the client event by event, and ends it with an explicit
//! error event (OpenAI's error shape) when the upstream fails midway.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use futures::stream::{BoxStream, StreamExt};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::backend::{self, StreamStep, StreamTranslator, UpstreamRequest};
use crate::breaker::Ticket;
use crate::error::error_json;
use crate::proxy::{AttemptFailure, FailKind, Proxy};
use crate::sse::{SseDecoder, data_event};
use crate::upstream::Upstream;

/// Keeps the concurrency permit alive for the life of the stream.
pub fn attach_permit(
    stream: BoxStream<'static, Result<Bytes, Infallible>>,
    permit: OwnedSemaphorePermit,
) -> BoxStream<'static, Result<Bytes, Infallible>> {
    stream
        .map(move |item| {
            let _held = &permit;
            item
        })
        .boxed()
}

/// One upstream stream being relayed.
pub struct Relay {
    proxy: Arc<Proxy>,
    upstream: Arc<Upstream>,
    ticket: Ticket,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    translator: StreamTranslator,
    pending: VecDeque<Bytes>,
    /// Longest silence between chunks; while priming, the first-byte deadline around it rules.
    pub idle: Duration,
    deadline: Instant,
    finished: bool,
    /// Set when the stream ended badly; before the first byte this makes the attempt retryable.
    failure: Option<AttemptFailure>,
    outcome: Option<&'static str>,
}

impl Relay {
    /// A relay of `resp`, bounded by the request's overall `deadline`.
    pub fn new(
        proxy: Arc<Proxy>,
        upstream: Arc<Upstream>,
        ticket: Ticket,
        req: &UpstreamRequest,
        model: &str,
        resp: reqwest::Response,
        deadline: Instant,
    ) -> Self {
        Self {
            idle: proxy.limits().request_timeout(),
            proxy,
            upstream,
            ticket,
            body: resp.bytes_stream().boxed(),
            decoder: SseDecoder::default(),
            translator: StreamTranslator::new(req.shape, model),
            pending: VecDeque::new(),
            deadline,
            finished: false,
            failure: None,
            outcome: None,
        }
    }

    /// Reads until the first event for the client exists; fails (retryably) if the upstream
    /// breaks before that.
    pub async fn prime(&mut self) -> Result<(), AttemptFailure> {
        while self.pending.is_empty() && !self.finished {
            self.pull().await;
        }
        match self.failure.take() {
            Some(f) if self.pending.len() <= 1 => {
                self.outcome = Some("retried");
                Err(f)
            }
            Some(f) => {
                self.failure = Some(f);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn fail(&mut self, reason: &'static str, kind: FailKind, message: String) {
        let status = if kind == FailKind::Deadline {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        let code = if kind == FailKind::Deadline {
            "timeout"
        } else {
            "upstream_error"
        };
        let event = error_json(status, &message, None, Some(code));
        self.pending.push_back(data_event(&event.to_string()));
        self.finished = true;
        self.outcome = Some(reason);
        self.failure = Some(AttemptFailure::new(reason, message, kind));
    }

    fn on_data(&mut self, data: &str) {
        match self.translator.step(data) {
            StreamStep::Data(payloads) => self.forward(payloads),
            StreamStep::Finished(payloads) => {
                self.forward(payloads);
                self.pending.push_back(data_event("[DONE]"));
                self.finished = true;
                self.outcome = Some("done");
            }
            StreamStep::Error(message) => self.fail(
                "upstream_error",
                FailKind::Broken,
                format!("upstream error: {message}"),
            ),
        }
    }

    fn forward(&mut self, payloads: Vec<String>) {
        for p in payloads {
            self.harvest_usage(&p);
            self.pending.push_back(data_event(&p));
        }
    }

    fn harvest_usage(&self, payload: &str) {
        if !payload.contains("\"usage\"") {
            return;
        }
        if let Ok(v) = serde_json::from_str::<Value>(payload)
            && let Some((p, c)) = backend::usage_of(&v)
        {
            self.proxy.metrics().tokens(&self.upstream.name, p, c);
        }
    }

    /// One step: decode a buffered event, or read more bytes within the idle / overall bounds.
    async fn pull(&mut self) {
        if let Some(ev) = self.decoder.next_event() {
            self.on_data(&ev.data);
            return;
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.fail(
                "deadline",
                FailKind::Deadline,
                "request deadline exceeded mid-stream".into(),
            );
            return;
        }
        let wait = self.idle.min(self.deadline - now);
        match tokio::time::timeout(wait, self.body.next()).await {
            Ok(Some(Ok(chunk))) => {
                self.upstream.mark_progress();
                self.decoder.push(&chunk);
            }
            Ok(Some(Err(e))) => self.fail(
                "stream_broken",
                FailKind::Broken,
                format!("upstream stream broke: {}", e.without_url()),
            ),
            Ok(None) => self.fail(
                "stream_truncated",
                FailKind::Broken,
                "upstream closed the stream before it finished".into(),
            ),
            Err(_) if Instant::now() >= self.deadline => self.fail(
                "deadline",
                FailKind::Deadline,
                "request deadline exceeded mid-stream".into(),
            ),
            Err(_) => self.fail(
                "idle_timeout",
                FailKind::Broken,
                format!(
                    "no stream data from upstream for {} ms",
                    self.idle.as_millis()
                ),
            ),
        }
    }

    /// The client-facing byte stream.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, Infallible>> {
        futures::stream::unfold(self, |mut relay| async move {
            loop {
                if let Some(bytes) = relay.pending.pop_front() {
                    return Some((Ok(bytes), relay));
                }
                if relay.finished {
                    return None;
                }
                relay.pull().await;
            }
        })
        .boxed()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("client_closed");
        if outcome == "retried" {
            return;
        }
        if let Some(f) = &self.failure {
            self.proxy
                .metrics()
                .upstream_error(&self.upstream.name, f.reason);
            if f.kind == FailKind::Broken {
                self.upstream.breaker.record_failure(self.ticket, false);
            }
            tracing::warn!(upstream = %self.upstream.name, reason = f.reason, error = %f.message,
                "stream ended with an error event");
        }
        self.proxy
            .metrics()
            .stream_finished(&self.upstream.name, outcome);
    }
}
