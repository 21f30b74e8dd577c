//! The proxy in front of a real `llama-server` with SmolLM2-135M (see scripts/llama/install.sh):
//! chat, completion, streaming, `json_schema` output, models, health, metrics, auth, fallback.

mod common;

use common::{
    LlamaServer, TestProxy, completion_text, config, dead_url, done_chunks, get, get_json, metric,
    read_sse, shared_llama, single_upstream, upstream,
};
use pmm_inference::KindSetting;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The shared `llama-server` (kept alive by the returned handle), a proxy in front of it with
/// kind auto-detection, and a client.
async fn llama_proxy() -> (Arc<LlamaServer>, TestProxy, reqwest::Client) {
    let llama = shared_llama().await;
    let proxy = TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Auto)).await;
    (llama, proxy, reqwest::Client::new())
}

#[tokio::test]
async fn chat_completion_through_proxy() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy
        .chat(
            &client,
            &json!({
                "model": "smollm2",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 16,
                "temperature": 0,
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("chat JSON");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("message content");
    assert!(!content.is_empty(), "empty completion: {v}");
    let completion_tokens = v["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!(completion_tokens > 0);

    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_requests_total",
            &[("route", "/v1/chat/completions"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "pmm_inference_tokens_total",
            &[("upstream", "llama"), ("type", "completion")]
        ),
        completion_tokens as f64
    );
    assert!(m.contains("pmm_inference_request_duration_seconds_bucket"));
    assert_eq!(
        metric(&m, "pmm_inference_upstream_up", &[("upstream", "llama")]),
        1.0
    );
}

#[tokio::test]
async fn text_completion_through_proxy() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy
        .complete(
            &client,
            &json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("completion JSON");
    let text = v["choices"][0]["text"].as_str().expect("text");
    assert!(!text.is_empty(), "empty completion: {v}");
}

#[tokio::test]
async fn chat_streaming_is_relayed_chunk_by_chunk() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy
        .chat(
            &client,
            &json!({
                "messages": [{"role": "user", "content": "Count from one to ten."}],
                "max_tokens": 24, "temperature": 0, "stream": true,
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let chunks = done_chunks(&read_sse(resp, Duration::from_secs(60)).await);
    assert!(
        chunks.len() > 3,
        "expected many chunks, got {}",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c.get("error").is_none()));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(&m, "pmm_inference_streams_total", &[("outcome", "done")]),
        1.0
    );
}

#[tokio::test]
async fn completion_streaming_is_relayed() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy
        .complete(
            &client,
            &json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = completion_text(&done_chunks(&read_sse(resp, Duration::from_secs(60)).await));
    assert!(!text.is_empty());
}

fn proposal_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["hold", "add_liquidity", "remove_liquidity"]},
            "amount": {"type": "integer", "minimum": 0, "maximum": 1000},
            "reason": {"type": "string", "maxLength": 40},
        },
        "required": ["action", "amount", "reason"],
        "additionalProperties": false,
    })
}

/// Checks a value against `proposal_schema` by hand (each keyword used there).
fn assert_conforms(v: &Value) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["action", "amount", "reason"], "keys of {v}");
    let action = obj["action"].as_str().expect("action is a string");
    assert!(
        ["hold", "add_liquidity", "remove_liquidity"].contains(&action),
        "action {action}"
    );
    let amount = obj["amount"].as_i64().expect("amount is an integer");
    assert!((0..=1000).contains(&amount), "amount {amount}");
    let reason = obj["reason"].as_str().expect("reason is a string");
    assert!(reason.chars().count() <= 40, "reason too long: {reason}");
}

#[tokio::test]
async fn json_schema_chat_output_conforms() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy.chat(&client, &json!({
            "messages": [
                {"role": "system", "content": "You manage a liquidity pool. Answer in JSON."},
                {"role": "user", "content": "The pool is balanced. What should we do?"},
            ],
            "max_tokens": 120, "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "proposal", "strict": true, "schema": proposal_schema()}},
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("chat JSON");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    let parsed: Value = serde_json::from_str(content)
        .unwrap_or_else(|e| panic!("content is not JSON ({e}): {content}"));
    assert_conforms(&parsed);
}

#[tokio::test]
async fn json_schema_streamed_completion_conforms() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy.complete(&client, &json!({
            "prompt": "Pool state: balanced. Proposal as JSON:",
            "max_tokens": 120, "temperature": 0, "stream": true,
            "response_format": {"type": "json_schema", "json_schema": {"schema": proposal_schema()}},
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let text = completion_text(&done_chunks(&read_sse(resp, Duration::from_secs(60)).await));
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_conforms(&parsed);
}

#[tokio::test]
async fn models_and_health_mirror_llama_server() {
    let (_llama, proxy, client) = llama_proxy().await;
    let v = get_json(&client, format!("{}/v1/models", proxy.base)).await;
    assert_eq!(v["object"], "list");
    assert!(
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|m| m["id"] == "smollm2"),
        "{v}"
    );
    let h = get(&client, format!("{}/health", proxy.base)).await;
    assert_eq!(h.status(), 200);
    assert_eq!(h.json::<Value>().await.expect("json")["status"], "ok");
}

#[tokio::test]
async fn bad_request_gets_typed_400_without_reaching_upstream() {
    let (_llama, proxy, client) = llama_proxy().await;
    let resp = proxy
        .chat(
            &client,
            &json!({"messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("error JSON");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("json_schema.schema")
    );
}

#[tokio::test]
async fn falls_back_to_second_upstream_when_first_is_down() {
    let llama = shared_llama().await;
    let proxy = TestProxy::start(config(vec![
        upstream("down", &dead_url(), KindSetting::Llamacpp),
        upstream("llama", &llama.base, KindSetting::Llamacpp),
    ]))
    .await;
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let resp = proxy
            .complete(
                &client,
                &json!({"prompt": "Hello", "max_tokens": 4, "stream": stream}),
            )
            .await;
        assert_eq!(resp.status(), 200, "stream={stream}");
        if stream {
            let events = read_sse(resp, Duration::from_secs(60)).await;
            assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        } else {
            let v: Value = resp.json().await.expect("json");
            assert!(v["choices"][0]["text"].is_string());
        }
    }
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(&m, "pmm_inference_upstream_up", &[("upstream", "down")]),
        0.0
    );
    assert_eq!(
        metric(&m, "pmm_inference_tokens_total", &[("upstream", "down")]),
        0.0
    );
}
