//! The HTTP front: routes, thin handlers, bearer auth, request logging and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::backend::Route;
use crate::config::Config;
use crate::error::ProxyError;
use crate::proxy::{Proxy, Readiness, Reply};

/// Shared state of the front.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The proxy core.
    pub proxy: Arc<Proxy>,
    tokens: Arc<Vec<String>>,
}

impl AppState {
    /// State from a proxy and its config (tokens are ignored when auth is disabled).
    pub fn new(proxy: Arc<Proxy>, cfg: &Config) -> Self {
        let tokens = if cfg.auth.disabled {
            Vec::new()
        } else {
            cfg.auth.tokens.clone()
        };
        Self {
            proxy,
            tokens: Arc::new(tokens),
        }
    }
}

/// All routes: `/health` is open (probes), everything else needs a bearer token if configured.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn reply(result: Result<Reply, ProxyError>) -> Response {
    match result {
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Stream(s)) => {
            let mut r = Response::new(Body::from_stream(s));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn chat(State(s): State<AppState>, body: Bytes) -> Response {
    reply(s.proxy.generate(Route::Chat, &body).await)
}

async fn completions(State(s): State<AppState>, body: Bytes) -> Response {
    reply(s.proxy.generate(Route::Completions, &body).await)
}

async fn models(State(s): State<AppState>) -> Response {
    match s.proxy.models().await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn health(State(s): State<AppState>) -> Response {
    let (status, message) = match s.proxy.readiness() {
        Readiness::Ready => return axum::Json(json!({"status": "ok"})).into_response(),
        Readiness::Loading => (StatusCode::SERVICE_UNAVAILABLE, "Loading model"),
        Readiness::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "No upstream is ready"),
    };
    (
        status,
        axum::Json(
            json!({"error": {"code": 503, "message": message, "type": "unavailable_error"}}),
        ),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.proxy.render_metrics(),
    )
        .into_response()
}

async fn require_bearer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.tokens.is_empty() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let ok = presented.is_some_and(|p| {
        s.tokens.iter().fold(false, |acc, t| {
            acc | bool::from(t.as_bytes().ct_eq(p.as_bytes()))
        })
    });
    if ok {
        next.run(req).await
    } else {
        ProxyError::Unauthorized.into_response()
    }
}

/// Records a request that ended without a response: the client went away (logged as 499).
struct Unanswered<'a> {
    state: &'a AppState,
    route: &'a str,
    start: Instant,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.state
                .proxy
                .metrics()
                .request(self.route, 499, self.start.elapsed());
            tracing::info!(
                route = self.route,
                status = 499,
                "client closed the request"
            );
        }
    }
}

/// Request log line and metrics; never logs bodies (see `log_prompts` for that).
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let mut guard = Unanswered {
        state: &s,
        route: &route,
        start: Instant::now(),
        answered: false,
    };
    let response = next.run(req).await;
    guard.answered = true;
    let elapsed = guard.start.elapsed();
    let status = response.status().as_u16();
    s.proxy.metrics().request(&route, status, elapsed);
    if route != "/health" && route != "/metrics" {
        tracing::info!(%method, route, status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    response
}

/// Polls upstream health every `interval` until dropped.
pub fn spawn_health_poller(proxy: Arc<Proxy>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(5));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            proxy.poll_health(timeout).await;
        }
    })
}

/// Serves the proxy on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    cfg: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    let proxy = Proxy::new(cfg)?;
    let poller = spawn_health_poller(proxy.clone(), cfg.health_interval());
    let app = router(AppState::new(proxy, cfg), cfg.limits.max_body_bytes);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    poller.abort();
    result.map_err(crate::Error::Io)
}
