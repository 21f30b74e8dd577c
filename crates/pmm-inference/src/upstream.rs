//! One upstream server: its kind (configured or detected), health as last polled, and breaker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::Value;

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
    /// Priority from the config (lower first).
    pub priority: u32,
    base: reqwest::Url,
    kind: Mutex<Option<BackendKind>>,
    model_id: Mutex<Option<String>>,
    health: AtomicU8,
    /// Circuit breaker of this upstream.
    pub breaker: Breaker,
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
            priority: cfg.priority,
            base: reqwest::Url::parse(&cfg.url).map_err(|e| ConfigError::Invalid {
                key: format!("upstreams[{index}].url"),
                reason: format!("not a URL: {e}"),
            })?,
            kind: Mutex::new(kind),
            model_id: Mutex::new(None),
            health: AtomicU8::new(Health::Unknown.to_u8()),
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

    /// Model id reported by TGI `/info`.
    pub fn model_id(&self) -> Option<String> {
        lock(&self.model_id).clone()
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
            if k == BackendKind::Tgi && self.model_id().is_none() {
                self.refresh_tgi_info(client, t).await;
            }
            return Some(k);
        }
        if self.refresh_tgi_info(client, t).await {
            *lock(&self.kind) = Some(BackendKind::Tgi);
            return Some(BackendKind::Tgi);
        }
        let props = self.get_json(client, "/props", t).await?;
        props.is_object().then(|| {
            *lock(&self.kind) = Some(BackendKind::LlamaCpp);
            BackendKind::LlamaCpp
        })
    }

    async fn refresh_tgi_info(&self, client: &reqwest::Client, t: Duration) -> bool {
        let Some(info) = self.get_json(client, "/info", t).await else {
            return false;
        };
        match info.get("model_id").and_then(Value::as_str) {
            Some(id) => {
                *lock(&self.model_id) = Some(id.to_owned());
                true
            }
            None => false,
        }
    }

    /// Polls `/health` (and detects the kind when needed), stores and returns the result.
    pub async fn poll(&self, client: &reqwest::Client, t: Duration) -> Health {
        let health = match client.get(self.url("/health")).timeout(t).send().await {
            Err(_) => Health::Down,
            Ok(resp) if resp.status().is_success() => {
                if self.kind(client, t).await.is_some() {
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
        self.set_health(health);
        health
    }
}
