//! The inference proxy, as the agent sees it: OpenAI's `/v1/chat/completions` with a bearer
//! token and the tick's `traceparent`.

use std::time::Duration;

use serde_json::Value;

use crate::trace::Trace;

/// Why no model output came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    /// Nothing answered, or the proxy answered with an error status.
    #[error("inference unavailable: {0}")]
    Unavailable(String),
    /// No answer within the deadline.
    #[error("inference timed out after {0:?}")]
    Timeout(Duration),
    /// A 200 whose body is not a chat completion with text.
    #[error("inference answered without a usable completion: {0}")]
    BadResponse(String),
}

impl InferenceError {
    /// The stable reason stored as the decision's `matched_rule` for a `no_proposal` tick.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "inference_unavailable",
            Self::Timeout(_) => "inference_timeout",
            Self::BadResponse(_) => "inference_bad_response",
        }
    }
}

/// One chat completion's text and provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReply {
    /// `model` of the response (what actually answered).
    pub model: String,
    /// `system_fingerprint` of the response: the backend build, where it reports one.
    pub fingerprint: Option<String>,
    /// `choices[0].message.content`, exactly as returned.
    pub content: String,
    /// `choices[0].finish_reason`.
    pub finish_reason: Option<String>,
}

/// A client of the proxy.
pub struct InferenceClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for InferenceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl InferenceClient {
    /// A client of the proxy at `base_url` (`/v1/...` is appended).
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            timeout,
            http,
        }
    }

    /// POSTs `body` to `/v1/chat/completions` and returns the first choice's text.
    pub async fn chat(&self, body: &Value, trace: &Trace) -> Result<ModelReply, InferenceError> {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("traceparent", trace.traceparent())
            .timeout(self.timeout)
            .json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(InferenceError::Unavailable(format!(
                "HTTP {status}: {message}"
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| InferenceError::BadResponse(format!("body is not JSON: {e}")))?;
        let choice = &v["choices"][0];
        let content = choice["message"]["content"]
            .as_str()
            .ok_or_else(|| InferenceError::BadResponse("no choices[0].message.content".into()))?;
        Ok(ModelReply {
            model: v["model"].as_str().unwrap_or_default().to_owned(),
            fingerprint: v["system_fingerprint"].as_str().map(str::to_owned),
            content: content.to_owned(),
            finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> InferenceError {
        if e.is_timeout() {
            InferenceError::Timeout(self.timeout)
        } else {
            // Without the URL: it is configuration, and the reqwest text would repeat it.
            InferenceError::Unavailable(e.without_url().to_string())
        }
    }

    /// Whether the proxy answers `GET /health` with a success status.
    pub async fn healthy(&self) -> bool {
        matches!(
            self.http
                .get(format!("{}/health", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await,
            Ok(r) if r.status().is_success()
        )
    }
}
