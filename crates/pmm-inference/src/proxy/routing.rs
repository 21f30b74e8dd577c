//! Choosing upstreams for a request and the answer once no attempt is left.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::failure::{AttemptError, AttemptFailure, FailKind, tools_refused};
use super::{Model, Proxy, Reply};
use crate::backend::Route;
use crate::error::ProxyError;
use crate::relay::attach_permit;
use crate::upstream::{Health, Upstream};
use crate::validate::{self, Parsed};

impl Proxy {
    /// Serves one generation request (`/v1/chat/completions` or `/v1/completions`).
    pub async fn generate(self: &Arc<Self>, route: Route, raw: &[u8]) -> Result<Reply, ProxyError> {
        let Parsed {
            mut body,
            stream,
            model,
            tools,
        } = validate::parse_request(route, raw)?;
        let model = self.model(&model)?;
        body.insert("model".into(), json!(model.name));
        if self.log_prompts {
            tracing::info!(route = route.path(), body = %String::from_utf8_lossy(raw), "request body");
        }
        let permit = self
            .admission
            .admit()
            .await
            .inspect_err(|_| self.metrics.shed())?;
        let deadline = Instant::now() + self.limits.request_timeout();
        let candidates = self.candidates(model, tools).await?;
        // Loading upstreams are left out: their answer would be a 503 until the poll sees them
        // ready, which lets them back in within one poll interval.
        let mut excluded: Vec<bool> = candidates
            .iter()
            .map(|u| u.health() == Health::Loading)
            .collect();
        let mut loading = excluded.iter().any(|e| *e);
        let mut last: Option<AttemptFailure> = None;
        let mut attempts = 0u32;
        let mut next = 0usize;
        while attempts < self.limits.max_attempts {
            let Some((i, ticket)) = (0..candidates.len())
                .map(|k| (next + k) % candidates.len())
                .filter(|i| !excluded[*i])
                .find_map(|i| candidates[i].breaker.try_acquire().map(|t| (i, t)))
            else {
                break;
            };
            next = i + 1;
            let upstream = &candidates[i];
            attempts += 1;
            let now = Instant::now();
            if now >= deadline {
                upstream.breaker.record_neutral(ticket);
                break;
            }
            let budget = self.limits.first_byte_timeout().min(deadline - now);
            let result = self
                .attempt(
                    upstream, ticket, route, &body, stream, tools, budget, deadline,
                )
                .await;
            match result {
                Ok(reply) => {
                    upstream.breaker.record_success(ticket);
                    tracing::info!(
                        route = route.path(), model = %model.name, upstream = %upstream.name,
                        stream, attempts, "request forwarded"
                    );
                    return Ok(match reply {
                        Reply::Stream(s) => Reply::Stream(attach_permit(s, permit)),
                        json => json,
                    });
                }
                Err(AttemptError::Fatal(e)) => {
                    upstream.breaker.record_success(ticket);
                    return Err(e);
                }
                Err(AttemptError::Retry(f)) => {
                    self.metrics.upstream_error(&upstream.name, f.reason);
                    match f.kind {
                        FailKind::Broken => upstream.breaker.record_failure(ticket, false),
                        FailKind::Stall => {
                            upstream.breaker.record_failure(ticket, true);
                            upstream.mark_stalled();
                            excluded[i] = true;
                        }
                        FailKind::Loading | FailKind::Busy => {
                            upstream.breaker.record_neutral(ticket);
                            loading |= f.kind == FailKind::Loading;
                            excluded[i] = true;
                        }
                        FailKind::Deadline => upstream.breaker.record_neutral(ticket),
                    }
                    tracing::warn!(
                        route = route.path(), model = %model.name, upstream = %upstream.name,
                        reason = f.reason, error = %f.message, attempt = attempts,
                        "upstream attempt failed"
                    );
                    last = Some(AttemptFailure {
                        message: format!("{}: {}", upstream.name, f.message),
                        ..f
                    });
                }
            }
        }
        Err(self.final_error(&model.name, last, loading, deadline))
    }

    /// The answer once no attempt is left: the kind of the last failure decides it.
    fn final_error(
        &self,
        model: &str,
        last: Option<AttemptFailure>,
        loading: bool,
        deadline: Instant,
    ) -> ProxyError {
        let retry_after = self.limits.retry_after();
        if Instant::now() >= deadline {
            return ProxyError::Timeout(format!(
                "request deadline of {} ms exceeded",
                self.limits.request_timeout_ms
            ));
        }
        match last {
            Some(f) if f.kind == FailKind::Stall || f.kind == FailKind::Deadline => {
                ProxyError::Timeout(f.message)
            }
            Some(f) if f.kind == FailKind::Busy => ProxyError::Overloaded {
                message: format!("the upstreams of model `{model}` are busy: {}", f.message),
                retry_after,
            },
            Some(f) if f.kind == FailKind::Broken => ProxyError::UpstreamFailed(f.message),
            _ if loading => ProxyError::NoUpstream {
                message: format!("the model `{model}` is loading, retry later"),
                retry_after,
            },
            _ => ProxyError::NoUpstream {
                message: format!("no upstream of model `{model}` is available, retry later"),
                retry_after,
            },
        }
    }

    /// Upstreams to try, in the model's order: ready/unknown ones first, then the rest; with
    /// `tools`, only those that serve tool calls (a 400 when none does).
    async fn candidates(
        &self,
        model: &Model,
        tools: bool,
    ) -> Result<Vec<Arc<Upstream>>, ProxyError> {
        let (good, bad): (Vec<_>, Vec<_>) = model
            .upstreams
            .iter()
            .cloned()
            .partition(|u| matches!(u.health(), Health::Ready | Health::Unknown));
        let all: Vec<Arc<Upstream>> = good.into_iter().chain(bad).collect();
        if !tools {
            return Ok(all);
        }
        let t = self
            .limits
            .first_byte_timeout()
            .min(Duration::from_secs(10));
        let mut keep = Vec::new();
        for u in all {
            if u.detect_tools(&self.client, t).await != Some(false) {
                keep.push(u);
            }
        }
        if keep.is_empty() {
            let names: Vec<&str> = model.upstreams.iter().map(|u| u.name.as_str()).collect();
            return Err(tools_refused(&model.name, &names));
        }
        Ok(keep)
    }
}
