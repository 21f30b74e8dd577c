//! One attempt at one upstream: first-byte deadline, status check, body, shape conversion.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::failure::{AttemptError, AttemptFailure, FailKind, body_broken, check_status};
use super::{Proxy, Reply};
use crate::backend::{self, ResponseShape, Route};
use crate::breaker::Ticket;
use crate::relay::Relay;
use crate::upstream::Upstream;

impl Proxy {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn attempt(
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
