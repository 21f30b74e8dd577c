//! MCP hub (5701): DODO PMM tools behind the policy engine.
//!
//! Endpoints, all on one port (default 127.0.0.1:3000):
//! - `/mcp`: MCP over Streamable HTTP (rmcp), bearer token required.
//! - `POST /mcp/call` `{"tool": "...", "params": {...}}`: the same tools over plain JSON.
//! - `GET /health`: chain, Redis, Postgres and tool-call log status.
//! - `GET /metrics`: Prometheus text.
//!
//! Both tool transports run [`hub::Hub::invoke`], so results, role checks, metrics and
//! `tool_calls` rows are identical whichever one a client uses.

pub mod auth;
pub mod config;
pub mod doctor;
pub mod error;
pub mod guard;
pub mod http;
pub mod hub;
pub mod mcp;
pub mod monitor;
pub mod sessions;
pub mod signer;
pub mod toollog;
pub mod tools;
pub mod validate;

pub use config::HubConfig;
pub use hub::Hub;

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// Longest wait at shutdown for queued `tool_calls` rows to be written.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running hub: its address and a handle that stops it.
#[derive(Debug)]
pub struct RunningHub {
    /// Bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    hub: Hub,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningHub {
    /// Stops accepting, ends MCP sessions, waits for the server task, then flushes the
    /// `tool_calls` log (bounded by [`LOG_FLUSH_TIMEOUT`]).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let pending = self.hub.flush_log(LOG_FLUSH_TIMEOUT).await;
        if pending > 0 {
            tracing::warn!(pending, "tool_calls rows not written before shutdown");
        }
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the hub from `cfg` on `cfg.listen` and serves in a background task.
pub async fn serve(
    cfg: &HubConfig,
    metrics: Option<Arc<PrometheusHandle>>,
) -> anyhow::Result<RunningHub> {
    let hub = Hub::start(cfg).await?;
    if cfg.writes_enabled() {
        // Finish what a previous process sent but never saw mined; new writes queue behind it
        // on the signer lock.
        let h = hub.clone();
        tokio::spawn(async move {
            match h.recover_intents().await {
                Ok(n) => tracing::info!(intents = n, "recovered open write intents"),
                Err(e) => tracing::error!(error = %e, "recovering open write intents failed"),
            }
        });
    }
    let auth = match cfg.auth {
        config::AuthMode::None => auth::Authenticator::open(),
        config::AuthMode::Tokens => auth::Authenticator::with_tokens(&cfg.resolve_tokens()?),
    };
    let limits = guard::HttpLimits::from_config(cfg)?;
    let cancel = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let app = http::router(
        http::AppState {
            hub: hub.clone(),
            metrics,
            sessions: None,
        },
        auth,
        http::McpSettings {
            cancel: cancel.clone(),
        },
        &limits,
    );
    let task = tokio::spawn(serve_http(
        listener,
        app,
        limits.header_read_timeout,
        cancel.clone(),
    ));
    tracing::info!(%addr, "pmm-hub listening");
    Ok(RunningHub {
        addr,
        hub,
        cancel,
        task: Some(task),
    })
}

/// Longest wait at shutdown for open connections to finish their requests.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `listener` until `stop`, then lets open connections finish (bounded by
/// [`DRAIN_TIMEOUT`]). Its own loop rather than `axum::serve` because that sets no timer, so
/// a client sending its headers slowly held a connection forever: here a connection whose
/// headers take longer than `header_read_timeout` is closed.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_read_timeout: std::time::Duration,
    stop: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Without it a response written in two segments (headers, then body) waits on the
        // client's delayed ACK: ~40 ms per request on a keep-alive connection.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
        }
        let service = TowerToHyperService::new(app.clone().map_request(
            |req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
        // No upgrades: the hub serves no WebSocket or CONNECT.
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
}
