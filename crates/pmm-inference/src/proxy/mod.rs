//! The proxy core: admission, model routing, upstream choice with order / fallback / breaker,
//! retries before the first byte, first-byte and overall deadlines.
//!
//! `routing` picks upstreams and decides the final answer, `attempt` sends one request and
//! `failure` classifies what went wrong, for the breaker and the client.

mod attempt;
mod failure;
mod routing;

pub use failure::{AttemptFailure, FailKind};

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::admission::Admission;
use crate::breaker::Breaker;
use crate::config::{Config, ConfigError, Limits};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::upstream::{Health, Upstream};

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
}

fn model_object(m: &Model) -> Value {
    json!({"id": m.name, "object": "model", "created": 0, "owned_by": "pmm-inference"})
}
