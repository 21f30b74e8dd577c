//! OpenAI-compatible inference proxy in front of llama.cpp `llama-server` and TGI upstreams.
//!
//! Front routes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`,
//! `/metrics`. Upstreams are tried by priority with fallback, a circuit breaker each, retries only
//! before the first byte, a concurrency cap with a bounded queue (429 + `Retry-After`), overall /
//! per-attempt / stream-idle deadlines, and SSE relayed event by event that ends with an explicit
//! error event when the upstream fails midway.

pub mod admission;
pub mod backend;
pub mod breaker;
pub mod config;
pub mod error;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod sse;
pub mod upstream;

pub use backend::{BackendKind, Route};
pub use config::{Config, ConfigError, KindSetting, Limits, UpstreamConfig};
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
