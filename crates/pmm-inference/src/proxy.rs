//! The proxy core: admission, upstream choice with priority / fallback / breaker, retries before
//! the first byte, deadlines, and SSE relaying that ends with an explicit error event on failure.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::stream::{BoxStream, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::admission::Admission;
use crate::backend::{
    self, BackendKind, ResponseShape, Route, StreamStep, StreamTranslator, UpstreamRequest,
};
use crate::breaker::Breaker;
use crate::config::{Config, ConfigError, Limits};
use crate::error::{ProxyError, error_json};
use crate::metrics::Metrics;
use crate::sse::{SseDecoder, data_event};
use crate::upstream::{Health, Upstream};

/// A successful proxied answer.
pub enum Reply {
    /// A complete JSON body.
    Json(Value),
    /// An SSE byte stream, already started (the first event arrived).
    Stream(BoxStream<'static, Result<Bytes, Infallible>>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(v) => f.debug_tuple("Json").field(v).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Readiness of the proxy, mirroring llama.cpp's `/health` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// At least one upstream is ready with a closed breaker.
    Ready,
    /// No upstream is ready, at least one is loading its model.
    Loading,
    /// No upstream is ready.
    Unavailable,
}

/// The shared proxy state.
#[derive(Debug)]
pub struct Proxy {
    limits: Limits,
    log_prompts: bool,
    client: reqwest::Client,
    upstreams: Vec<Arc<Upstream>>,
    admission: Admission,
    metrics: Metrics,
}

/// Why one attempt failed (all of these are retryable: nothing reached the client yet).
///
/// `message` goes to logs and to the client, so reqwest errors enter it `without_url()`: an
/// upstream URL may carry a key in its query string.
struct AttemptFailure {
    reason: &'static str,
    message: String,
    counts_for_breaker: bool,
}

impl AttemptFailure {
    fn new(reason: &'static str, message: impl Into<String>, counts_for_breaker: bool) -> Self {
        Self {
            reason,
            message: message.into(),
            counts_for_breaker,
        }
    }
}

enum AttemptError {
    /// Try another attempt.
    Retry(AttemptFailure),
    /// Stop and return this to the client (a 4xx from the upstream, a bad request).
    Fatal(ProxyError),
}

impl Proxy {
    /// Builds the proxy from a validated config.
    pub fn new(cfg: &Config) -> Result<Arc<Self>, ConfigError> {
        cfg.validate()?;
        let open_for = Duration::from_millis(cfg.breaker.open_ms);
        let mut upstreams = cfg
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Upstream::new(u, i, Breaker::new(cfg.breaker.failure_threshold, open_for))
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        upstreams.sort_by_key(|u| u.priority);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ConfigError::Invalid {
                key: "upstreams".into(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        let l = &cfg.limits;
        Ok(Arc::new(Self {
            admission: Admission::new(
                l.max_concurrent,
                l.max_queue,
                l.queue_timeout(),
                l.retry_after(),
            ),
            limits: l.clone(),
            log_prompts: cfg.log_prompts,
            client,
            upstreams,
            metrics: Metrics::new(),
        }))
    }

    /// The metrics of this proxy.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Upstreams in priority order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Prometheus exposition with fresh gauges.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .set_queue(self.admission.queue_depth(), self.admission.in_flight());
        for u in &self.upstreams {
            self.metrics
                .set_upstream(&u.name, u.health() == Health::Ready, u.breaker.is_open());
        }
        self.metrics.render()
    }

    /// Polls every upstream's health once.
    pub async fn poll_health(&self, timeout: Duration) {
        let polls = self.upstreams.iter().map(|u| async move {
            let before = u.health();
            let now = u.poll(&self.client, timeout).await;
            if before != now {
                tracing::info!(upstream = %u.name, health = ?now, "upstream health changed");
            }
        });
        futures::future::join_all(polls).await;
    }

    /// Readiness derived from the last health poll.
    pub fn readiness(&self) -> Readiness {
        let mut loading = false;
        for u in &self.upstreams {
            match u.health() {
                Health::Ready if !u.breaker.is_open() => return Readiness::Ready,
                Health::Loading => loading = true,
                _ => {}
            }
        }
        if loading {
            Readiness::Loading
        } else {
            Readiness::Unavailable
        }
    }

    /// Models of the reachable upstreams (llama.cpp `/v1/models`, TGI `/info`), deduplicated.
    pub async fn models(&self) -> Result<Value, ProxyError> {
        let t = self.limits.attempt_timeout().min(Duration::from_secs(10));
        let mut data: Vec<Value> = Vec::new();
        let mut any = false;
        for u in &self.upstreams {
            let entries = match u.kind(&self.client, t).await {
                Some(BackendKind::Tgi) => u
                    .model_id()
                    .map(|id| vec![json!({"id": id, "object": "model", "owned_by": "tgi"})]),
                Some(BackendKind::LlamaCpp) => {
                    match self.client.get(u.url("/v1/models")).timeout(t).send().await {
                        Ok(r) if r.status().is_success() => r
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v.get("data").and_then(Value::as_array).cloned()),
                        _ => None,
                    }
                }
                None => None,
            };
            if let Some(entries) = entries {
                any = true;
                for e in entries {
                    let id = e.get("id").cloned();
                    if !data.iter().any(|d| d.get("id") == id.as_ref()) {
                        data.push(e);
                    }
                }
            }
        }
        if !any {
            return Err(ProxyError::NoUpstream {
                retry_after: self.limits.retry_after(),
            });
        }
        Ok(json!({"object": "list", "data": data}))
    }

    /// Upstreams to try, in order: ready/unknown ones by priority, then the rest.
    fn candidates(&self) -> Vec<Arc<Upstream>> {
        let (good, bad): (Vec<_>, Vec<_>) = self
            .upstreams
            .iter()
            .cloned()
            .partition(|u| matches!(u.health(), Health::Ready | Health::Unknown));
        good.into_iter().chain(bad).collect()
    }

    /// Serves one generation request (`/v1/chat/completions` or `/v1/completions`).
    pub async fn generate(self: &Arc<Self>, route: Route, raw: &[u8]) -> Result<Reply, ProxyError> {
        let (body, stream) = backend::parse_request(route, raw)?;
        if self.log_prompts {
            tracing::info!(route = route.path(), body = %String::from_utf8_lossy(raw), "request body");
        }
        let permit = self
            .admission
            .admit()
            .await
            .inspect_err(|_| self.metrics.shed())?;
        let deadline = Instant::now() + self.limits.request_timeout();
        let candidates = self.candidates();
        let mut last: Option<String> = None;
        let mut attempts = 0u32;
        let mut index = 0usize;
        let mut skipped_in_a_row = 0usize;
        while attempts < self.limits.max_attempts {
            if skipped_in_a_row >= candidates.len() {
                break;
            }
            let Some(upstream) = candidates.get(index % candidates.len()).cloned() else {
                break;
            };
            index += 1;
            if !upstream.breaker.try_acquire() {
                skipped_in_a_row += 1;
                continue;
            }
            skipped_in_a_row = 0;
            attempts += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(ProxyError::DeadlineExceeded);
            }
            let budget = self.limits.attempt_timeout().min(deadline - now);
            let result = self
                .attempt(&upstream, route, &body, stream, budget, deadline)
                .await;
            match result {
                Ok(reply) => {
                    upstream.breaker.record_success();
                    tracing::info!(
                        route = route.path(), upstream = %upstream.name, stream, attempts,
                        "request forwarded"
                    );
                    return Ok(match reply {
                        Reply::Stream(s) => Reply::Stream(attach_permit(s, permit)),
                        json => json,
                    });
                }
                Err(AttemptError::Fatal(e)) => {
                    upstream.breaker.record_success();
                    return Err(e);
                }
                Err(AttemptError::Retry(f)) => {
                    self.metrics.upstream_error(&upstream.name, f.reason);
                    if f.counts_for_breaker {
                        upstream.breaker.record_failure();
                    }
                    tracing::warn!(
                        route = route.path(), upstream = %upstream.name, reason = f.reason,
                        error = %f.message, attempt = attempts, "upstream attempt failed"
                    );
                    last = Some(format!("{}: {}", upstream.name, f.message));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(ProxyError::DeadlineExceeded);
        }
        match last {
            Some(msg) => Err(ProxyError::UpstreamFailed(msg)),
            None => Err(ProxyError::NoUpstream {
                retry_after: self.limits.retry_after(),
            }),
        }
    }

    async fn attempt(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        route: Route,
        body: &Map<String, Value>,
        stream: bool,
        budget: Duration,
        deadline: Instant,
    ) -> Result<Reply, AttemptError> {
        let attempt_deadline = Instant::now() + budget;
        let kind = tokio::time::timeout_at(attempt_deadline, upstream.kind(&self.client, budget))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                AttemptError::Retry(AttemptFailure::new(
                    "unreachable",
                    "backend kind could not be detected",
                    true,
                ))
            })?;
        let req = backend::build_request(kind, route, body, stream).map_err(AttemptError::Fatal)?;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| upstream.model_id())
            .unwrap_or_else(|| kind.as_str().to_owned());
        let send = async {
            let resp = self
                .client
                .post(upstream.url(req.path))
                .json(&req.body)
                .send()
                .await
                .map_err(|e| {
                    AttemptError::Retry(AttemptFailure::new(
                        if e.is_connect() { "connect" } else { "request" },
                        e.without_url().to_string(),
                        true,
                    ))
                })?;
            check_status(upstream, resp).await
        };
        let timed_out = || {
            AttemptError::Retry(AttemptFailure::new(
                "attempt_timeout",
                format!("no answer within {} ms", budget.as_millis()),
                true,
            ))
        };
        if !stream {
            let json = tokio::time::timeout_at(attempt_deadline, async {
                let resp = send.await?;
                let bytes = resp.bytes().await.map_err(|e| {
                    AttemptError::Retry(AttemptFailure::new(
                        "body",
                        e.without_url().to_string(),
                        true,
                    ))
                })?;
                serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                    AttemptError::Retry(AttemptFailure::new(
                        "invalid_json",
                        format!("upstream answer is not JSON: {e}"),
                        true,
                    ))
                })
            })
            .await
            .map_err(|_| timed_out())??;
            let json = match req.shape {
                ResponseShape::OpenAi => json,
                ResponseShape::TgiGenerate => backend::tgi_generate_to_openai(&json, &model)
                    .map_err(|e| {
                        AttemptError::Retry(AttemptFailure::new(
                            "invalid_json",
                            e.to_string(),
                            true,
                        ))
                    })?,
            };
            if let Some((p, c)) = backend::usage_of(&json) {
                self.metrics.tokens(&upstream.name, p, c);
            }
            return Ok(Reply::Json(json));
        }
        let mut relay = tokio::time::timeout_at(attempt_deadline, async {
            let resp = send.await?;
            let mut relay =
                Relay::new(self.clone(), upstream.clone(), &req, &model, resp, deadline);
            relay.prime().await.map_err(AttemptError::Retry)?;
            Ok::<_, AttemptError>(relay)
        })
        .await
        .map_err(|_| timed_out())??;
        relay.idle = self.limits.stream_idle_timeout();
        Ok(Reply::Stream(relay.into_stream()))
    }
}

async fn check_status(
    upstream: &Upstream,
    resp: reqwest::Response,
) -> Result<reqwest::Response, AttemptError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // A body cut short is an upstream failure: passing on its status with an empty body would
    // present a broken answer as the upstream's verdict on the request.
    let body = resp.bytes().await.map_err(|e| {
        AttemptError::Retry(AttemptFailure::new(
            "body",
            e.without_url().to_string(),
            true,
        ))
    })?;
    let snippet = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    match status.as_u16() {
        429 => Err(AttemptError::Retry(AttemptFailure::new(
            "overloaded",
            format!("status 429: {snippet}"),
            false,
        ))),
        503 => {
            if snippet.contains("Loading model") {
                upstream.set_health(Health::Loading);
            }
            Err(AttemptError::Retry(AttemptFailure::new(
                "unavailable",
                format!("status 503: {snippet}"),
                false,
            )))
        }
        s if s >= 500 => Err(AttemptError::Retry(AttemptFailure::new(
            "status_5xx",
            format!("status {s}: {snippet}"),
            true,
        ))),
        s => Err(AttemptError::Fatal(ProxyError::UpstreamRejected {
            status: axum::http::StatusCode::from_u16(s)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
            body,
        })),
    }
}

/// Keeps the concurrency permit alive for the life of the stream.
fn attach_permit(
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

/// Relays one upstream SSE stream to the client, event by event.
struct Relay {
    proxy: Arc<Proxy>,
    upstream: Arc<Upstream>,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    translator: StreamTranslator,
    pending: VecDeque<Bytes>,
    idle: Duration,
    deadline: Instant,
    finished: bool,
    /// Set when the stream ended badly; before the first byte this makes the attempt retryable.
    failure: Option<AttemptFailure>,
    outcome: Option<&'static str>,
}

impl Relay {
    fn new(
        proxy: Arc<Proxy>,
        upstream: Arc<Upstream>,
        req: &UpstreamRequest,
        model: &str,
        resp: reqwest::Response,
        deadline: Instant,
    ) -> Self {
        Self {
            idle: proxy.limits.attempt_timeout(),
            proxy,
            upstream,
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
    async fn prime(&mut self) -> Result<(), AttemptFailure> {
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

    fn fail(&mut self, reason: &'static str, counts_for_breaker: bool, message: String) {
        let event = error_json(&message, "upstream_error", 502);
        self.pending.push_back(data_event(&event.to_string()));
        self.finished = true;
        self.outcome = Some(reason);
        self.failure = Some(AttemptFailure::new(reason, message, counts_for_breaker));
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
            StreamStep::Error(message) => {
                self.fail("upstream_error", true, format!("upstream error: {message}"))
            }
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
            self.proxy.metrics.tokens(&self.upstream.name, p, c);
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
                false,
                "request deadline exceeded mid-stream".into(),
            );
            return;
        }
        let wait = self.idle.min(self.deadline - now);
        match tokio::time::timeout(wait, self.body.next()).await {
            Ok(Some(Ok(chunk))) => self.decoder.push(&chunk),
            Ok(Some(Err(e))) => self.fail(
                "stream_broken",
                true,
                format!("upstream stream broke: {}", e.without_url()),
            ),
            Ok(None) => self.fail(
                "stream_truncated",
                true,
                "upstream closed the stream before it finished".into(),
            ),
            Err(_) if Instant::now() >= self.deadline => self.fail(
                "deadline",
                false,
                "request deadline exceeded mid-stream".into(),
            ),
            Err(_) => self.fail(
                "idle_timeout",
                true,
                format!(
                    "no stream data from upstream for {} ms",
                    self.idle.as_millis()
                ),
            ),
        }
    }

    fn into_stream(self) -> BoxStream<'static, Result<Bytes, Infallible>> {
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
                .metrics
                .upstream_error(&self.upstream.name, f.reason);
            if f.counts_for_breaker {
                self.upstream.breaker.record_failure();
            }
            tracing::warn!(upstream = %self.upstream.name, reason = f.reason, error = %f.message,
                "stream ended with an error event");
        }
        self.proxy
            .metrics
            .stream_finished(&self.upstream.name, outcome);
    }
}
