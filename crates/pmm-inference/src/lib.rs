//! OpenAI-compatible inference proxy in front of llama.cpp `llama-server` and TGI upstreams.
//!
//! Front routes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/v1/models/{id}`,
//! `/health`, `/metrics`. `model` picks a configured model (by name or alias) whose upstreams are
//! tried in order with fallback, a circuit breaker each that agrees with the health poll, retries
//! only before the first byte, a concurrency cap with a bounded queue (429 + `Retry-After`),
//! first-byte / overall / stream-idle deadlines, requests validated and errors shaped the way
//! OpenAI does, and SSE relayed event by event that ends with an explicit error event when the
//! upstream fails midway.

pub mod admission;
pub mod backend;
pub mod breaker;
pub mod config;
pub mod error;
pub mod metrics;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod sse;
pub mod upstream;
pub mod validate;

pub use backend::{BackendKind, Route};
pub use config::{Config, ConfigError, KindSetting, Limits, ModelConfig, UpstreamConfig};
pub use error::ProxyError;
pub use proxy::{Proxy, Readiness, Reply};
pub use server::{AppState, router, serve};

/// Errors of running the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Listener or serving failure.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}
