//! One upstream server: its kind (configured or detected), tool support, health as last polled,
//! and breaker.
//!
//! The poll reads `/health`, and once a request stalled on the upstream it also makes a bounded
//! probe: a one-token streamed chat whose first event must come within the probe deadline. A
//! stalled server still answers `/health` 200, so the status line alone would rate it ready;
//! until a probe passes it is down. A ready verdict lets the breaker try the upstream at once.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::backend::BackendKind;
use crate::breaker::Breaker;
use crate::config::{ConfigError, KindSetting, UpstreamConfig};

/// Health of an upstream as last seen by the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not polled yet.
    Unknown,
    /// Reachable but loading its model (llama.cpp `/health` 503 "Loading model").
    Loading,
    /// Ready to serve.
    Ready,
    /// Unreachable or unhealthy.
    Down,
}

impl Health {
    fn to_u8(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Loading => 1,
            Self::Ready => 2,
            Self::Down => 3,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Loading,
            2 => Self::Ready,
            3 => Self::Down,
            _ => Self::Unknown,
        }
    }
}

/// An upstream and its live state.
#[derive(Debug)]
pub struct Upstream {
    /// Name from the config (log and metric label).
    pub name: String,
    base: reqwest::Url,
    kind: Mutex<Option<BackendKind>>,
    tools: Mutex<Option<bool>>,
    health: AtomicU8,
    /// Set when a request stalled here; cleared by a probe that passes.
    stalled: AtomicBool,
    /// When bytes last came from this upstream (ms since [`clock`] started).
    last_progress_ms: AtomicU64,
    /// Circuit breaker of this upstream.
    pub breaker: Breaker,
}

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(clock().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether an upstream's error text says it cannot take `tools` (llama-server without
/// `--jinja`: "tools param requires --jinja flag").
pub fn refuses_tools(text: &str) -> bool {
    text.contains("--jinja")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Upstream {
    /// Builds the upstream from validated config.
    pub fn new(cfg: &UpstreamConfig, index: usize, breaker: Breaker) -> Result<Self, ConfigError> {
        let kind = match cfg.kind {
            KindSetting::Auto => None,
            KindSetting::Llamacpp => Some(BackendKind::LlamaCpp),
            KindSetting::Tgi => Some(BackendKind::Tgi),
        };
        Ok(Self {
            name: cfg.name.clone(),
            base: reqwest::Url::parse(&cfg.url).map_err(|e| ConfigError::Invalid {
                key: format!("upstreams[{index}].url"),
                reason: format!("not a URL: {e}"),
            })?,
            kind: Mutex::new(kind),
            tools: Mutex::new(None),
            health: AtomicU8::new(Health::Unknown.to_u8()),
            stalled: AtomicBool::new(false),
            last_progress_ms: AtomicU64::new(0),
            breaker,
        })
    }

    /// Absolute URL of a path on this upstream.
    pub fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// Last polled health.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::SeqCst))
    }

    /// Overrides the health (from a poll or a request outcome).
    pub fn set_health(&self, h: Health) {
        self.health.store(h.to_u8(), Ordering::SeqCst);
    }

    /// Known kind, if configured or already detected.
    pub fn known_kind(&self) -> Option<BackendKind> {
        *lock(&self.kind)
    }

    async fn get_json(&self, client: &reqwest::Client, path: &str, t: Duration) -> Option<Value> {
        let resp = client.get(self.url(path)).timeout(t).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// The backend kind, detecting it (TGI `/info`, then llama.cpp `/props`) if not known.
    pub async fn kind(&self, client: &reqwest::Client, t: Duration) -> Option<BackendKind> {
        if let Some(k) = self.known_kind() {
            return Some(k);
        }
        let info = self.get_json(client, "/info", t).await;
        let kind = if info.is_some_and(|i| i.get("model_id").is_some_and(Value::is_string)) {
            BackendKind::Tgi
        } else if self.get_json(client, "/props", t).await?.is_object() {
            BackendKind::LlamaCpp
        } else {
            return None;
        };
        *lock(&self.kind) = Some(kind);
        Some(kind)
    }

    /// Bytes came from this upstream: it is not stalled.
    pub fn mark_progress(&self) {
        self.last_progress_ms
            .store(now_ms().max(1), Ordering::Relaxed);
    }

    fn progressed_within(&self, window: Duration) -> bool {
        let last = self.last_progress_ms.load(Ordering::Relaxed);
        last != 0
            && now_ms().saturating_sub(last)
                <= u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
    }

    /// A request got no first byte in time: the poll probes this upstream until one passes.
    pub fn mark_stalled(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        self.set_health(Health::Down);
    }

    /// Whether this upstream can serve `tools` (`None`: not known yet).
    pub fn supports_tools(&self) -> Option<bool> {
        *lock(&self.tools)
    }

    /// Records what a real answer showed about tool support.
    pub fn set_supports_tools(&self, yes: bool) {
        *lock(&self.tools) = Some(yes);
    }

    /// Finds out whether the upstream serves tool calls: TGI's chat route does; llama-server
    /// does only with Jinja chat templates on (without them it refuses `tools` naming
    /// `--jinja`, which a one-token request shows) and a template that renders tools (its
    /// `/props` `chat_template_caps.supports_tools`: with any other template it would drop the
    /// tools and answer in plain text).
    pub async fn detect_tools(&self, client: &reqwest::Client, t: Duration) -> Option<bool> {
        if let Some(known) = self.supports_tools() {
            return Some(known);
        }
        let yes = match self.kind(client, t).await? {
            BackendKind::Tgi => true,
            BackendKind::LlamaCpp => {
                let body = json!({
                    "messages": [{"role": "user", "content": "ping"}],
                    "tools": [{"type": "function", "function": {
                        "name": "ping", "parameters": {"type": "object", "properties": {}}}}],
                    "max_tokens": 1,
                });
                let resp = client
                    .post(self.url("/v1/chat/completions"))
                    .json(&body)
                    .timeout(t)
                    .send()
                    .await
                    .ok()?;
                let status = resp.status();
                let text = resp.text().await.ok()?;
                if refuses_tools(&text) {
                    false
                } else if !status.is_success() {
                    return None;
                } else {
                    let props = self.get_json(client, "/props", t).await?;
                    props
                        .get("chat_template_caps")
                        .and_then(|c| c.get("supports_tools"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                }
            }
        };
        self.set_supports_tools(yes);
        Some(yes)
    }

    /// The bounded probe: a one-token streamed chat; passes when its first byte comes in time
    /// (any HTTP answer but a 5xx shows a live generation loop).
    async fn probe(&self, client: &reqwest::Client, t: Duration) -> bool {
        let body = json!({
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1, "stream": true,
        });
        let first_byte = async {
            let resp = client
                .post(self.url("/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .ok()?;
            if resp.status().is_server_error() {
                return None;
            }
            resp.bytes_stream().next().await?.ok()
        };
        matches!(tokio::time::timeout(t, first_byte).await, Ok(Some(_)))
    }

    /// Polls `/health` (and detects the kind when needed, and probes after a stall), stores and
    /// returns the result. `interval` is the poll period: bytes seen within
    /// it make the probe unnecessary.
    pub async fn poll(
        &self,
        client: &reqwest::Client,
        t: Duration,
        probe_timeout: Duration,
        interval: Duration,
    ) -> Health {
        let health = match client.get(self.url("/health")).timeout(t).send().await {
            Err(_) => Health::Down,
            Ok(resp) if resp.status().is_success() => {
                if self.kind(client, t).await.is_none() {
                    Health::Down
                } else if !self.stalled.load(Ordering::SeqCst) || self.progressed_within(interval) {
                    Health::Ready
                } else if self.probe(client, probe_timeout).await {
                    self.stalled.store(false, Ordering::SeqCst);
                    Health::Ready
                } else {
                    Health::Down
                }
            }
            Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                let body = resp.text().await.unwrap_or_default();
                if body.contains("Loading model") || body.contains("loading") {
                    Health::Loading
                } else {
                    Health::Down
                }
            }
            Ok(_) => Health::Down,
        };
        // The ready signal is the edge from down or loading: an upstream whose /health was 200
        // all along while its requests failed gives none, and keeps its breaker's open period.
        let before = self.health();
        self.set_health(health);
        if health == Health::Ready && before != Health::Ready {
            self.breaker.on_ready();
        }
        health
    }
}
