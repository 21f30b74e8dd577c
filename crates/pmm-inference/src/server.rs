//! The HTTP front: routes, thin handlers, bearer auth, request logging and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::backend::Route;
use crate::config::Config;
use crate::error::{ProxyError, error_json};
use crate::proxy::{Proxy, Readiness, Reply};

/// Shared state of the front.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The proxy core.
    pub proxy: Arc<Proxy>,
    tokens: Arc<Vec<String>>,
    max_body_bytes: usize,
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
            max_body_bytes: cfg.limits.max_body_bytes,
        }
    }
}

/// All routes: `/health` is open (probes), everything else needs a bearer token if configured.
/// Unknown routes, wrong methods and oversized bodies get OpenAI-shaped errors too.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
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

/// The body, or the OpenAI-shaped reason it could not be read (413 over the limit).
fn body_or_error(s: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ProxyError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ProxyError::PayloadTooLarge {
                limit: s.max_body_bytes,
            }
        } else {
            ProxyError::BadRequest {
                message: format!("cannot read the request body: {}", e.body_text()),
                param: None,
                code: None,
            }
        }
    })
}

async fn generate(s: &AppState, route: Route, body: Result<Bytes, BytesRejection>) -> Response {
    match body_or_error(s, body) {
        Ok(body) => reply(s.proxy.generate(route, &body).await),
        Err(e) => e.into_response(),
    }
}

async fn chat(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&s, Route::Chat, body).await
}

async fn completions(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&s, Route::Completions, body).await
}

async fn models(State(s): State<AppState>) -> Response {
    axum::Json(s.proxy.list_models()).into_response()
}

async fn model(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.proxy.retrieve_model(&id) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn unknown_route(req: Request) -> Response {
    ProxyError::UnknownRoute {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ProxyError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
    .into_response()
}

async fn health(State(s): State<AppState>) -> Response {
    let (status, message) = match s.proxy.readiness() {
        Readiness::Ready => return axum::Json(json!({"status": "ok"})).into_response(),
        Readiness::Loading => (StatusCode::SERVICE_UNAVAILABLE, "Loading model"),
        Readiness::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "No upstream is ready"),
    };
    let code = if message == "Loading model" {
        "model_loading"
    } else {
        "upstream_unavailable"
    };
    (
        status,
        axum::Json(error_json(status, message, None, Some(code))),
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
    // A panic in a handler is a bug; the client still gets an answer in the one error shape.
    let response = std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(route, "handler panicked");
            ProxyError::Internal.into_response()
        });
    guard.answered = true;
    let elapsed = guard.start.elapsed();
    let status = response.status().as_u16();
    s.proxy.metrics().request(&route, status, elapsed);
    if route != "/health" && route != "/metrics" {
        tracing::info!(%method, route, status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    response
}

/// Polls every upstream's health every `interval` until aborted, each on its own beat so that a
/// slow probe of one upstream never delays the verdict on another.
pub fn spawn_health_poller(proxy: Arc<Proxy>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let loops = proxy.upstreams().iter().map(|u| {
            let proxy = proxy.clone();
            let u = u.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    proxy.poll_upstream(&u, interval).await;
                }
            }
        });
        futures::future::join_all(loops).await;
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
    let app = router(AppState::new(proxy, cfg));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    poller.abort();
    result.map_err(crate::Error::Io)
}
