//! `/health` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::hub::HubClient;
use crate::inference::InferenceClient;
use crate::worker::LoopStatus;

/// What the endpoints read.
#[derive(Clone)]
pub struct HealthState {
    /// The hub client (probed on each `/health`).
    pub hub: Arc<HubClient>,
    /// The proxy client, probed on each `/health`; `None` when the baseline proposes and the
    /// proxy is not used.
    pub inference: Option<Arc<InferenceClient>>,
    /// The loop.
    pub status: Arc<LoopStatus>,
    /// How long after a finished tick the loop still counts as live.
    pub tick_grace: Duration,
    /// Prometheus text renderer.
    pub metrics: PrometheusHandle,
    /// `observe` or `execute`.
    pub mode: &'static str,
}

/// The routes.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 only while the hub and the proxy (when used) answer and a tick finished within the grace period;
/// otherwise 503 naming what is missing.
async fn health(State(s): State<HealthState>) -> Response {
    let inference_ok = async {
        match &s.inference {
            Some(i) => i.healthy().await,
            None => true,
        }
    };
    let (hub, inference) = tokio::join!(s.hub.healthy(), inference_ok);
    let since = s.status.since_last_tick();
    let tick_ok = since.is_some_and(|d| d <= s.tick_grace);
    let mut missing = Vec::new();
    if !hub {
        missing.push("hub");
    }
    if !inference {
        missing.push("inference");
    }
    if !tick_ok {
        missing.push("tick");
    }
    let body = json!({
        "status": if missing.is_empty() { "ok" } else { "unavailable" },
        "missing": missing,
        "mode": s.mode,
        "last_tick_s_ago": since.map(|d| d.as_secs_f64()),
    });
    let code = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<HealthState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.metrics.render(),
    )
        .into_response()
}
