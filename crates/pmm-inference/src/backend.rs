//! Per-backend request and response translation (pure functions).
//!
//! The proxy accepts one structured-output form, OpenAI's
//! `response_format: {"type": "json_schema", "json_schema": {"schema": S}}`, and rewrites it
//! for each backend: llama.cpp takes a top-level `json_schema: S`, TGI takes
//! `{"type": "json", "value": S}` (as `response_format` on its chat route, as `grammar` on
//! `/generate`). OpenAI completions are served from TGI's native `/generate(_stream)`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::error::ProxyError;

/// Which API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// llama.cpp `llama-server`.
    LlamaCpp,
    /// Hugging Face text-generation-inference.
    Tgi,
}

impl BackendKind {
    /// Name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llamacpp",
            Self::Tgi => "tgi",
        }
    }
}

/// Front routes that generate text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

impl Route {
    /// Front path of the route.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
        }
    }
}

/// How the upstream's answer must be rewritten for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseShape {
    /// Already OpenAI-shaped.
    OpenAi,
    /// TGI `/generate` JSON or `/generate_stream` events, to become OpenAI completions.
    TgiGenerate,
}

/// A translated upstream request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// Path on the upstream.
    pub path: &'static str,
    /// JSON body.
    pub body: Value,
    /// Response translation.
    pub shape: ResponseShape,
}

/// Structured output requested by the client.
#[derive(Debug, Clone, PartialEq)]
pub enum StructuredOutput {
    /// Output must conform to this JSON schema.
    Schema(Value),
    /// Any JSON object.
    JsonObject,
}

/// Reads and validates `response_format`.
pub fn structured_output(
    body: &Map<String, Value>,
) -> Result<Option<StructuredOutput>, ProxyError> {
    let Some(rf) = body.get("response_format") else {
        return Ok(None);
    };
    if rf.is_null() {
        return Ok(None);
    }
    let bad = |m: &str| {
        ProxyError::invalid(
            format!("response_format: {m}"),
            "response_format",
            "invalid_value",
        )
    };
    let kind = rf
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`type` must be a string"))?;
    match kind {
        "text" => Ok(None),
        "json_object" => match rf.get("schema") {
            Some(schema) => Ok(Some(StructuredOutput::Schema(check_schema(
                schema,
                "response_format.schema",
            )?))),
            None => Ok(Some(StructuredOutput::JsonObject)),
        },
        "json_schema" => {
            let schema = rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .ok_or_else(|| bad("`json_schema.schema` is required for type json_schema"))?;
            Ok(Some(StructuredOutput::Schema(check_schema(
                schema,
                "response_format.json_schema.schema",
            )?)))
        }
        other => Err(bad(&format!(
            "unsupported type `{other}` (expected text, json_object or json_schema)"
        ))),
    }
}

fn check_schema(schema: &Value, key: &str) -> Result<Value, ProxyError> {
    if schema.is_object() || schema.is_boolean() {
        Ok(schema.clone())
    } else {
        Err(ProxyError::invalid(
            format!("{key} must be a JSON schema object"),
            key,
            "invalid_value",
        ))
    }
}

fn schema_of(so: &StructuredOutput) -> Value {
    match so {
        StructuredOutput::Schema(s) => s.clone(),
        StructuredOutput::JsonObject => json!({"type": "object"}),
    }
}

/// Builds the upstream request for a backend.
pub fn build_request(
    kind: BackendKind,
    route: Route,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<UpstreamRequest, ProxyError> {
    let so = structured_output(body)?;
    match (kind, route) {
        (BackendKind::LlamaCpp, _) => {
            let mut out = body.clone();
            if let Some(so) = &so {
                out.remove("response_format");
                out.insert("json_schema".into(), schema_of(so));
            } else if out
                .get("response_format")
                .and_then(|r| r.get("type"))
                .and_then(Value::as_str)
                == Some("text")
            {
                out.remove("response_format");
            }
            Ok(UpstreamRequest {
                path: route.path(),
                body: Value::Object(out),
                shape: ResponseShape::OpenAi,
            })
        }
        (BackendKind::Tgi, Route::Chat) => {
            let mut out = body.clone();
            out.remove("response_format");
            if let Some(so) = &so {
                out.insert(
                    "response_format".into(),
                    json!({"type": "json", "value": schema_of(so)}),
                );
            }
            // TGI serves one model and documents `"tgi"` as the value to send.
            out.insert("model".into(), json!("tgi"));
            Ok(UpstreamRequest {
                path: route.path(),
                body: Value::Object(out),
                shape: ResponseShape::OpenAi,
            })
        }
        (BackendKind::Tgi, Route::Completions) => {
            let inputs = match body.get("prompt") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    a[0].as_str().unwrap_or_default().to_owned()
                }
                _ => {
                    return Err(ProxyError::invalid(
                        "`prompt` must be a single string for a TGI upstream",
                        "prompt",
                        "invalid_value",
                    ));
                }
            };
            let mut params = Map::new();
            params.insert("details".into(), json!(true));
            if let Some(n) = body.get("max_tokens").and_then(Value::as_u64) {
                params.insert("max_new_tokens".into(), json!(n));
            }
            // TGI rejects temperature 0 and top_p 1: greedy is "no sampling" there.
            match body.get("temperature").and_then(Value::as_f64) {
                Some(t) if t > 0.0 => {
                    params.insert("temperature".into(), json!(t));
                    params.insert("do_sample".into(), json!(true));
                }
                _ => {
                    params.insert("do_sample".into(), json!(false));
                }
            }
            if let Some(p) = body.get("top_p").and_then(Value::as_f64)
                && p > 0.0
                && p < 1.0
            {
                params.insert("top_p".into(), json!(p));
            }
            if let Some(seed) = body.get("seed").and_then(Value::as_u64) {
                params.insert("seed".into(), json!(seed));
            }
            match body.get("stop") {
                Some(Value::String(s)) => {
                    params.insert("stop".into(), json!([s]));
                }
                Some(Value::Array(a)) => {
                    params.insert("stop".into(), Value::Array(a.clone()));
                }
                _ => {}
            }
            if let Some(so) = &so {
                params.insert(
                    "grammar".into(),
                    json!({"type": "json", "value": schema_of(so)}),
                );
            }
            Ok(UpstreamRequest {
                path: if stream {
                    "/generate_stream"
                } else {
                    "/generate"
                },
                body: json!({"inputs": inputs, "parameters": params}),
                shape: ResponseShape::TgiGenerate,
            })
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "cmpl-pmm-{}-{}",
        unix_now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn finish_reason(tgi: Option<&str>) -> Value {
    match tgi {
        Some("length") => json!("length"),
        Some("eos_token") | Some("stop_sequence") => json!("stop"),
        Some(other) => json!(other),
        None => Value::Null,
    }
}

/// Converts a TGI `/generate` answer into an OpenAI text completion.
pub fn tgi_generate_to_openai(resp: &Value, model: &str) -> Result<Value, ProxyError> {
    let text = resp
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| ProxyError::UpstreamFailed("TGI answer has no generated_text".into()))?;
    let details = resp.get("details");
    let completion_tokens = details
        .and_then(|d| d.get("generated_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let prompt_tokens = details
        .and_then(|d| d.get("prefill"))
        .and_then(Value::as_array)
        .map(|p| p.len() as u64)
        .unwrap_or(0);
    let reason = details
        .and_then(|d| d.get("finish_reason"))
        .and_then(Value::as_str);
    Ok(json!({
        "id": completion_id(),
        "object": "text_completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason(reason)}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
}

/// What one upstream stream event means for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamStep {
    /// Forward these `data:` payloads and continue.
    Data(Vec<String>),
    /// Forward these payloads, then `[DONE]`: the stream finished cleanly.
    Finished(Vec<String>),
    /// The upstream reported an error inside the stream.
    Error(String),
}

/// Rewrites upstream stream events for the client.
#[derive(Debug)]
pub struct StreamTranslator {
    shape: ResponseShape,
    id: String,
    model: String,
    created: u64,
}

impl StreamTranslator {
    /// A translator for one stream.
    pub fn new(shape: ResponseShape, model: &str) -> Self {
        Self {
            shape,
            id: completion_id(),
            model: model.to_owned(),
            created: unix_now(),
        }
    }

    fn chunk(&self, text: &str, reason: Value) -> String {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": reason}],
        })
        .to_string()
    }

    /// Translates one event's data.
    pub fn step(&self, data: &str) -> StreamStep {
        let data = data.trim();
        if data == "[DONE]" {
            return StreamStep::Finished(Vec::new());
        }
        let parsed: Option<Value> = serde_json::from_str(data).ok();
        if let Some(err) = parsed.as_ref().and_then(|v| v.get("error")) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("upstream error");
            return StreamStep::Error(message.to_owned());
        }
        match self.shape {
            ResponseShape::OpenAi => StreamStep::Data(vec![data.to_owned()]),
            ResponseShape::TgiGenerate => {
                let Some(v) = parsed else {
                    return StreamStep::Error("TGI stream event is not JSON".into());
                };
                let token = v.get("token");
                let special = token
                    .and_then(|t| t.get("special"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let text = if special {
                    ""
                } else {
                    token
                        .and_then(|t| t.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                };
                let details = v.get("details").filter(|d| !d.is_null());
                let done =
                    details.is_some() || v.get("generated_text").is_some_and(|g| !g.is_null());
                if done {
                    let reason = details
                        .and_then(|d| d.get("finish_reason"))
                        .and_then(Value::as_str)
                        .or(Some("stop"));
                    StreamStep::Finished(vec![self.chunk(text, finish_reason(reason))])
                } else if text.is_empty() {
                    StreamStep::Data(Vec::new())
                } else {
                    StreamStep::Data(vec![self.chunk(text, Value::Null)])
                }
            }
        }
    }
}

/// `(prompt_tokens, completion_tokens)` reported in an OpenAI body or chunk, if any.
pub fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some((
        u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        u.get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn schema_request() -> Map<String, Value> {
        obj(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        }))
    }

    #[test]
    fn llamacpp_gets_top_level_json_schema() {
        let r = build_request(BackendKind::LlamaCpp, Route::Chat, &schema_request(), false)
            .expect("translates");
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.body["json_schema"], json!({"type": "object"}));
        assert!(r.body.get("response_format").is_none());
    }

    #[test]
    fn tgi_chat_gets_json_value() {
        let r = build_request(BackendKind::Tgi, Route::Chat, &schema_request(), true)
            .expect("translates");
        assert_eq!(
            r.body["response_format"],
            json!({"type": "json", "value": {"type": "object"}})
        );
    }

    #[test]
    fn tgi_completion_maps_to_generate() {
        let body = obj(json!({
            "prompt": "Hi", "max_tokens": 5, "temperature": 0, "stop": "\n",
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "string"}}},
        }));
        let r = build_request(BackendKind::Tgi, Route::Completions, &body, false).expect("ok");
        assert_eq!(r.path, "/generate");
        assert_eq!(r.shape, ResponseShape::TgiGenerate);
        assert_eq!(r.body["inputs"], "Hi");
        assert_eq!(r.body["parameters"]["max_new_tokens"], 5);
        assert_eq!(r.body["parameters"]["do_sample"], false);
        assert_eq!(r.body["parameters"]["stop"], json!(["\n"]));
        assert_eq!(
            r.body["parameters"]["grammar"],
            json!({"type": "json", "value": {"type": "string"}})
        );
        let s = build_request(BackendKind::Tgi, Route::Completions, &body, true).expect("ok");
        assert_eq!(s.path, "/generate_stream");
    }

    #[test]
    fn bad_response_format_is_a_typed_error() {
        let body = obj(json!({"messages": [], "response_format": {"type": "json_schema"}}));
        let err = structured_output(&body).expect_err("schema missing");
        assert!(err.to_string().contains("json_schema.schema"));
        let body = obj(json!({"messages": [], "response_format": {"type": "yaml"}}));
        assert!(structured_output(&body).is_err());
    }

    #[test]
    fn tgi_generate_answer_becomes_completion() {
        let v = json!({"generated_text": "ok", "details": {"finish_reason": "eos_token", "generated_tokens": 2, "prefill": [{}, {}, {}]}});
        let c = tgi_generate_to_openai(&v, "m").expect("ok");
        assert_eq!(c["choices"][0]["text"], "ok");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["usage"]["total_tokens"], 5);
    }

    #[test]
    fn tgi_stream_events_translate() {
        let t = StreamTranslator::new(ResponseShape::TgiGenerate, "m");
        let StreamStep::Data(d) = t.step(
            r#"{"token":{"id":1,"text":"a","special":false},"generated_text":null,"details":null}"#,
        ) else {
            panic!("expected data");
        };
        assert_eq!(d.len(), 1);
        let StreamStep::Finished(f) = t.step(r#"{"token":{"id":2,"text":"</s>","special":true},"generated_text":"a","details":{"finish_reason":"length","generated_tokens":2}}"#) else {
            panic!("expected finish");
        };
        let last: Value = serde_json::from_str(&f[0]).expect("json");
        assert_eq!(last["choices"][0]["text"], "");
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        assert!(
            matches!(t.step(r#"{"error":"boom","error_type":"generation"}"#), StreamStep::Error(m) if m == "boom")
        );
    }
}
