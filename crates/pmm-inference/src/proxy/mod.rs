//! The proxy core: admission, model routing, upstream choice with order / fallback / breaker,
//! retries before the first byte, first-byte and overall deadlines.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::stream::{BoxStream, StreamExt};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::backend::{self, ResponseShape, Route};
use crate::breaker::{Breaker, Ticket};
use crate::config::{Config, ConfigError, Limits};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::relay::{Relay, attach_permit};
use crate::upstream::{Health, Upstream, refuses_tools};
use crate::validate::{self, Parsed};

/// A successful proxied answer.
pub enum Reply {
    /// A complete JSON body.
    Json(Value),
    /// An SSE byte stream, already started (the first event arrived).
    Stream(BoxStream<'static, Result<axum::body::Bytes, std::convert::Infallible>>),
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

/// A configured model and its upstreams in order.
#[derive(Debug)]
pub struct Model {
    /// The id `/v1/models` lists.
    pub name: String,
    aliases: Vec<String>,
    upstreams: Vec<Arc<Upstream>>,
}

impl Model {
    /// Whether a request for it could be sent somewhere now.
    pub fn routable(&self) -> bool {
        self.upstreams
            .iter()
            .any(|u| u.health() == Health::Ready && !u.breaker.is_open())
    }
}

/// The shared proxy state.
#[derive(Debug)]
pub struct Proxy {
    limits: Limits,
    log_prompts: bool,
    client: reqwest::Client,
    upstreams: Vec<Arc<Upstream>>,
    models: Vec<Model>,
    admission: Admission,
    metrics: Metrics,
}

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

enum AttemptError {
    /// Try another attempt.
    Retry(AttemptFailure),
    /// Stop and return this to the client (a 4xx from the upstream, a bad request).
    Fatal(ProxyError),
}

fn tools_refused(model: &str, upstreams: &[&str]) -> ProxyError {
    ProxyError::invalid(
        format!(
            "The model `{model}` does not support tools: its upstreams ({}) serve no tool calls (llama-server needs --jinja for them).",
            upstreams.join(", ")
        ),
        "tools",
        "tools_not_supported",
    )
}

impl Proxy {
    /// Builds the proxy from a validated config.
    pub fn new(cfg: &Config) -> Result<Arc<Self>, ConfigError> {
        cfg.validate()?;
        let open_for = Duration::from_millis(cfg.breaker.open_ms);
        let upstreams = cfg
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Upstream::new(u, i, Breaker::new(cfg.breaker.failure_threshold, open_for))
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let models = cfg
            .models
            .iter()
            .map(|m| Model {
                name: m.name.clone(),
                aliases: m.aliases.clone(),
                upstreams: m
                    .upstreams
                    .iter()
                    .filter_map(|n| upstreams.iter().find(|u| &u.name == n).cloned())
                    .collect(),
            })
            .collect();
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
            models,
            metrics: Metrics::new(),
        }))
    }

    /// The metrics of this proxy.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Upstreams in config order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Prometheus exposition with fresh gauges.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .set_queue(self.admission.queue_depth(), self.admission.in_flight());
        for u in &self.upstreams {
            self.metrics.set_upstream(
                &u.name,
                u.health() == Health::Ready,
                u.breaker.is_open(),
                u.breaker.opened(),
            );
        }
        self.metrics.render()
    }

    /// Polls one upstream's health once (`interval` is the poll period).
    pub async fn poll_upstream(&self, u: &Upstream, interval: Duration) {
        let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(5));
        let probe_timeout = self
            .limits
            .first_byte_timeout()
            .min(Duration::from_secs(10));
        let before = u.health();
        let now = u.poll(&self.client, timeout, probe_timeout, interval).await;
        if before != now {
            tracing::info!(upstream = %u.name, health = ?now, "upstream health changed");
        }
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

    /// The model a request names, by name or alias.
    pub fn model(&self, id: &str) -> Result<&Model, ProxyError> {
        self.models
            .iter()
            .find(|m| m.name == id || m.aliases.iter().any(|a| a == id))
            .ok_or_else(|| ProxyError::ModelNotFound(id.to_owned()))
    }

    /// `/v1/models`: exactly the models routable now.
    pub fn list_models(&self) -> Value {
        let data: Vec<Value> = self
            .models
            .iter()
            .filter(|m| m.routable())
            .map(model_object)
            .collect();
        json!({"object": "list", "data": data})
    }

    /// `/v1/models/{id}`: a configured model (404 otherwise).
    pub fn retrieve_model(&self, id: &str) -> Result<Value, ProxyError> {
        self.model(id).map(model_object)
    }

    /// Serves one generation request (`/v1/chat/completions` or `/v1/completions`).
    pub async fn generate(self: &Arc<Self>, route: Route, raw: &[u8]) -> Result<Reply, ProxyError> {
        let Parsed {
            mut body,
            stream,
            model,
            tools,
        } = validate::parse_request(route, raw)?;
        let model = self.model(&model)?;
        body.insert("model".into(), json!(model.name));
        if self.log_prompts {
            tracing::info!(route = route.path(), body = %String::from_utf8_lossy(raw), "request body");
        }
        let permit = self
            .admission
            .admit()
            .await
            .inspect_err(|_| self.metrics.shed())?;
        let deadline = Instant::now() + self.limits.request_timeout();
        let candidates = self.candidates(model, tools).await?;
        // Loading upstreams are left out: their answer would be a 503 until the poll sees them
        // ready, which lets them back in within one poll interval.
        let mut excluded: Vec<bool> = candidates
            .iter()
            .map(|u| u.health() == Health::Loading)
            .collect();
        let mut loading = excluded.iter().any(|e| *e);
        let mut last: Option<AttemptFailure> = None;
        let mut attempts = 0u32;
        let mut next = 0usize;
        while attempts < self.limits.max_attempts {
            let Some((i, ticket)) = (0..candidates.len())
                .map(|k| (next + k) % candidates.len())
                .filter(|i| !excluded[*i])
                .find_map(|i| candidates[i].breaker.try_acquire().map(|t| (i, t)))
            else {
                break;
            };
            next = i + 1;
            let upstream = &candidates[i];
            attempts += 1;
            let now = Instant::now();
            if now >= deadline {
                upstream.breaker.record_neutral(ticket);
                break;
            }
            let budget = self.limits.first_byte_timeout().min(deadline - now);
            let result = self
                .attempt(
                    upstream, ticket, route, &body, stream, tools, budget, deadline,
                )
                .await;
            match result {
                Ok(reply) => {
                    upstream.breaker.record_success(ticket);
                    tracing::info!(
                        route = route.path(), model = %model.name, upstream = %upstream.name,
                        stream, attempts, "request forwarded"
                    );
                    return Ok(match reply {
                        Reply::Stream(s) => Reply::Stream(attach_permit(s, permit)),
                        json => json,
                    });
                }
                Err(AttemptError::Fatal(e)) => {
                    upstream.breaker.record_success(ticket);
                    return Err(e);
                }
                Err(AttemptError::Retry(f)) => {
                    self.metrics.upstream_error(&upstream.name, f.reason);
                    match f.kind {
                        FailKind::Broken => upstream.breaker.record_failure(ticket, false),
                        FailKind::Stall => {
                            upstream.breaker.record_failure(ticket, true);
                            upstream.mark_stalled();
                            excluded[i] = true;
                        }
                        FailKind::Loading | FailKind::Busy => {
                            upstream.breaker.record_neutral(ticket);
                            loading |= f.kind == FailKind::Loading;
                            excluded[i] = true;
                        }
                        FailKind::Deadline => upstream.breaker.record_neutral(ticket),
                    }
                    tracing::warn!(
                        route = route.path(), model = %model.name, upstream = %upstream.name,
                        reason = f.reason, error = %f.message, attempt = attempts,
                        "upstream attempt failed"
                    );
                    last = Some(AttemptFailure {
                        message: format!("{}: {}", upstream.name, f.message),
                        ..f
                    });
                }
            }
        }
        Err(self.final_error(&model.name, last, loading, deadline))
    }

    /// The answer once no attempt is left: the kind of the last failure decides it.
    fn final_error(
        &self,
        model: &str,
        last: Option<AttemptFailure>,
        loading: bool,
        deadline: Instant,
    ) -> ProxyError {
        let retry_after = self.limits.retry_after();
        if Instant::now() >= deadline {
            return ProxyError::Timeout(format!(
                "request deadline of {} ms exceeded",
                self.limits.request_timeout_ms
            ));
        }
        match last {
            Some(f) if f.kind == FailKind::Stall || f.kind == FailKind::Deadline => {
                ProxyError::Timeout(f.message)
            }
            Some(f) if f.kind == FailKind::Busy => ProxyError::Overloaded {
                message: format!("the upstreams of model `{model}` are busy: {}", f.message),
                retry_after,
            },
            Some(f) if f.kind == FailKind::Broken => ProxyError::UpstreamFailed(f.message),
            _ if loading => ProxyError::NoUpstream {
                message: format!("the model `{model}` is loading, retry later"),
                retry_after,
            },
            _ => ProxyError::NoUpstream {
                message: format!("no upstream of model `{model}` is available, retry later"),
                retry_after,
            },
        }
    }

    /// Upstreams to try, in the model's order: ready/unknown ones first, then the rest; with
    /// `tools`, only those that serve tool calls (a 400 when none does).
    async fn candidates(
        &self,
        model: &Model,
        tools: bool,
    ) -> Result<Vec<Arc<Upstream>>, ProxyError> {
        let (good, bad): (Vec<_>, Vec<_>) = model
            .upstreams
            .iter()
            .cloned()
            .partition(|u| matches!(u.health(), Health::Ready | Health::Unknown));
        let all: Vec<Arc<Upstream>> = good.into_iter().chain(bad).collect();
        if !tools {
            return Ok(all);
        }
        let t = self
            .limits
            .first_byte_timeout()
            .min(Duration::from_secs(10));
        let mut keep = Vec::new();
        for u in all {
            if u.detect_tools(&self.client, t).await != Some(false) {
                keep.push(u);
            }
        }
        if keep.is_empty() {
            let names: Vec<&str> = model.upstreams.iter().map(|u| u.name.as_str()).collect();
            return Err(tools_refused(&model.name, &names));
        }
        Ok(keep)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        ticket: Ticket,
        route: Route,
        body: &Map<String, Value>,
        stream: bool,
        tools: bool,
        budget: Duration,
        deadline: Instant,
    ) -> Result<Reply, AttemptError> {
        let first_byte_deadline = Instant::now() + budget;
        let stalled = || {
            AttemptError::Retry(AttemptFailure::new(
                "first_byte_timeout",
                format!("no first byte within {} ms", budget.as_millis()),
                FailKind::Stall,
            ))
        };
        let kind =
            tokio::time::timeout_at(first_byte_deadline, upstream.kind(&self.client, budget))
                .await
                .map_err(|_| stalled())?
                .ok_or_else(|| {
                    AttemptError::Retry(AttemptFailure::new(
                        "unreachable",
                        "backend kind could not be detected",
                        FailKind::Broken,
                    ))
                })?;
        let req = backend::build_request(kind, route, body, stream).map_err(AttemptError::Fatal)?;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
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
                        FailKind::Broken,
                    ))
                })?;
            check_status(upstream, resp, &model, tools).await
        };
        if stream {
            let mut relay = tokio::time::timeout_at(first_byte_deadline, async {
                let resp = send.await?;
                let mut relay = Relay::new(
                    self.clone(),
                    upstream.clone(),
                    ticket,
                    &req,
                    &model,
                    resp,
                    deadline,
                );
                relay.prime().await.map_err(AttemptError::Retry)?;
                Ok::<_, AttemptError>(relay)
            })
            .await
            .map_err(|_| stalled())??;
            relay.idle = self.limits.stream_idle_timeout();
            return Ok(Reply::Stream(relay.into_stream()));
        }
        let (resp, first) = tokio::time::timeout_at(first_byte_deadline, async {
            let resp = send.await?;
            let mut chunks = resp.bytes_stream().boxed();
            let first = chunks.next().await.transpose().map_err(body_broken)?;
            Ok::<_, AttemptError>((chunks, first))
        })
        .await
        .map_err(|_| stalled())??;
        upstream.mark_progress();
        let bytes = tokio::time::timeout_at(deadline, read_rest(resp, first))
            .await
            .map_err(|_| {
                AttemptError::Retry(AttemptFailure::new(
                    "deadline",
                    "request deadline exceeded while reading the answer",
                    FailKind::Deadline,
                ))
            })??;
        let json = serde_json::from_slice::<Value>(&bytes).map_err(|e| {
            AttemptError::Retry(AttemptFailure::new(
                "invalid_json",
                format!("upstream answer is not JSON: {e}"),
                FailKind::Broken,
            ))
        })?;
        let json = match req.shape {
            ResponseShape::OpenAi => json,
            ResponseShape::TgiGenerate => {
                backend::tgi_generate_to_openai(&json, &model).map_err(|e| {
                    AttemptError::Retry(AttemptFailure::new(
                        "invalid_json",
                        e.to_string(),
                        FailKind::Broken,
                    ))
                })?
            }
        };
        if let Some((p, c)) = backend::usage_of(&json) {
            self.metrics.tokens(&upstream.name, p, c);
        }
        Ok(Reply::Json(json))
    }
}

fn model_object(m: &Model) -> Value {
    json!({"id": m.name, "object": "model", "created": 0, "owned_by": "pmm-inference"})
}

fn body_broken(e: reqwest::Error) -> AttemptError {
    AttemptError::Retry(AttemptFailure::new(
        "body",
        e.without_url().to_string(),
        FailKind::Broken,
    ))
}

async fn read_rest(
    mut chunks: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    first: Option<axum::body::Bytes>,
) -> Result<Vec<u8>, AttemptError> {
    let mut out = first.map(|b| b.to_vec()).unwrap_or_default();
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk.map_err(body_broken)?);
    }
    Ok(out)
}

async fn check_status(
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
