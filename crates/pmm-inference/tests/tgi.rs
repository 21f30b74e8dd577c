//! TGI translation against `tgi_fake_server`, an in-test axum server speaking TGI's documented
//! API (`/info`, `/health`, `/generate`, `/generate_stream`, `/v1/chat/completions`). TGI itself
//! cannot run here (it needs its router, a torch model server and hub weights).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{FakeServer, TestProxy, get_json, read_sse, single_upstream};
use pmm_inference::KindSetting;
use serde_json::{Value, json};

const MODEL_ID: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// Requests the fake received, as `(path, body)`.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

fn record(seen: &Seen, path: &str, body: &Value) {
    seen.lock()
        .expect("seen lock")
        .push((path.to_owned(), body.clone()));
}

fn last(seen: &Seen) -> (String, Value) {
    seen.lock()
        .expect("seen lock")
        .last()
        .cloned()
        .expect("a request reached the TGI fake")
}

fn sse(events: Vec<Value>) -> Response {
    let body: String = events.iter().map(|e| format!("data:{e}\n\n")).collect();
    ([("content-type", "text/event-stream")], Body::from(body)).into_response()
}

fn token(id: u32, text: &str, special: bool) -> Value {
    json!({"id": id, "text": text, "logprob": -0.1, "special": special})
}

/// `tgi_fake_server`: answers like TGI 2.x; `/generate_stream` fails midway when the prompt is
/// "fail".
async fn tgi_fake_server(seen: Seen) -> FakeServer {
    let s1 = seen.clone();
    let s2 = seen.clone();
    let s3 = seen.clone();
    FakeServer::start(
        Router::new()
            .route("/health", get(|| async { "" }))
            .route(
                "/info",
                get(|| async {
                    axum::Json(json!({
                        "model_id": MODEL_ID, "model_dtype": "torch.float16",
                        "max_concurrent_requests": 128, "max_input_tokens": 1024,
                        "max_total_tokens": 2048, "version": "2.4.0",
                    }))
                }),
            )
            .route(
                "/generate",
                post(move |axum::Json(b): axum::Json<Value>| {
                    record(&s1, "/generate", &b);
                    async {
                        axum::Json(json!({
                            "generated_text": "{\"ok\": true}",
                            "details": {"finish_reason": "eos_token", "generated_tokens": 4, "seed": null,
                                        "prefill": [{"id": 1, "text": "a", "logprob": null}, {"id": 2, "text": "b", "logprob": -1.0}],
                                        "tokens": []},
                        }))
                    }
                }),
            )
            .route(
                "/generate_stream",
                post(move |axum::Json(b): axum::Json<Value>| {
                    record(&s2, "/generate_stream", &b);
                    let fail = b["inputs"] == "fail";
                    async move {
                        if fail {
                            return sse(vec![
                                json!({"token": token(5, "Hel", false), "generated_text": null, "details": null}),
                                json!({"error": "CUDA out of memory", "error_type": "generation"}),
                            ]);
                        }
                        sse(vec![
                            json!({"token": token(5, "Hel", false), "generated_text": null, "details": null}),
                            json!({"token": token(6, "lo", false), "generated_text": null, "details": null}),
                            json!({"token": token(2, "</s>", true), "generated_text": "Hello",
                                   "details": {"finish_reason": "eos_token", "generated_tokens": 3, "seed": null}}),
                        ])
                    }
                }),
            )
            .route(
                "/v1/chat/completions",
                post(move |axum::Json(b): axum::Json<Value>| {
                    record(&s3, "/v1/chat/completions", &b);
                    let stream = b["stream"] == true;
                    async move {
                        if stream {
                            let chunk = json!({
                                "object": "chat.completion.chunk", "model": MODEL_ID,
                                "choices": [{"index": 0, "delta": {"content": "{}"}, "finish_reason": "stop"}],
                            });
                            let body = format!("data:{chunk}\n\ndata: [DONE]\n\n");
                            return ([("content-type", "text/event-stream")], Body::from(body))
                                .into_response();
                        }
                        axum::Json(json!({
                            "object": "chat.completion", "model": MODEL_ID, "id": "", "created": 0,
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"action\": \"hold\"}"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                        }))
                        .into_response()
                    }
                }),
            ),
    )
    .await
}

async fn setup() -> (Seen, FakeServer, TestProxy) {
    let seen: Seen = Arc::default();
    let tgi = tgi_fake_server(seen.clone()).await;
    let proxy = TestProxy::start(single_upstream("tgi", &tgi.base, KindSetting::Auto)).await;
    (seen, tgi, proxy)
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
}

#[tokio::test]
async fn tgi_fake_server_completion_translates_to_generate_with_grammar() {
    let (seen, _tgi, proxy) = setup().await;
    let client = reqwest::Client::new();
    let resp = proxy.complete(&client, &json!({
            "prompt": "Is it ok?", "max_tokens": 16, "temperature": 0, "stop": ["\n"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ok", "schema": schema()}},
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], common::MODEL, "the model the client asked for");
    assert_eq!(v["choices"][0]["text"], "{\"ok\": true}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let (path, body) = last(&seen);
    assert_eq!(path, "/generate");
    assert_eq!(body["inputs"], "Is it ok?");
    let p = &body["parameters"];
    assert_eq!(p["max_new_tokens"], 16);
    assert_eq!(p["do_sample"], false);
    assert!(p.get("temperature").is_none(), "TGI rejects temperature 0");
    assert_eq!(p["stop"], json!(["\n"]));
    assert_eq!(p["grammar"], json!({"type": "json", "value": schema()}));
}

#[tokio::test]
async fn tgi_fake_server_stream_translates_to_openai_chunks() {
    let (seen, _tgi, proxy) = setup().await;
    let client = reqwest::Client::new();
    let resp = proxy
        .complete(
            &client,
            &json!({"prompt": "Say hello", "max_tokens": 8, "stream": true, "temperature": 0.5}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let events = read_sse(resp, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[3], "[DONE]");
    let chunks: Vec<Value> = events[..3]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk JSON"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello", "the special </s> token must not leak");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[0]["choices"][0]["finish_reason"].is_null());
    assert_eq!(chunks[0]["object"], "text_completion");
    let (path, body) = last(&seen);
    assert_eq!(path, "/generate_stream");
    assert_eq!(body["parameters"]["temperature"], 0.5);
    assert_eq!(body["parameters"]["do_sample"], true);
}

#[tokio::test]
async fn tgi_fake_server_stream_error_becomes_error_event() {
    let (_seen, _tgi, proxy) = setup().await;
    let client = reqwest::Client::new();
    let resp = proxy
        .complete(&client, &json!({"prompt": "fail", "stream": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let events = read_sse(resp, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let err: Value = serde_json::from_str(&events[1]).expect("error JSON");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("CUDA out of memory")
    );
    assert!(!events.contains(&"[DONE]".to_owned()));
}

#[tokio::test]
async fn tgi_fake_server_chat_gets_json_response_format() {
    let (seen, _tgi, proxy) = setup().await;
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let resp = proxy.chat(&client, &json!({
                "messages": [{"role": "user", "content": "ok?"}], "stream": stream,
                "response_format": {"type": "json_schema", "json_schema": {"name": "ok", "schema": schema()}},
            }),
        )
        .await;
        assert_eq!(resp.status(), 200);
        if stream {
            let events = read_sse(resp, Duration::from_secs(10)).await;
            assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        } else {
            let v: Value = resp.json().await.expect("json");
            assert_eq!(
                v["choices"][0]["message"]["content"],
                "{\"action\": \"hold\"}"
            );
        }
        let (path, body) = last(&seen);
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(
            body["response_format"],
            json!({"type": "json", "value": schema()})
        );
        assert_eq!(body["model"], "tgi");
    }
}

#[tokio::test]
async fn tgi_fake_server_is_detected_and_its_model_listed() {
    let (_seen, _tgi, proxy) = setup().await;
    let client = reqwest::Client::new();
    let v = get_json(&client, format!("{}/v1/models", proxy.base)).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["data"][0]["id"], common::MODEL);
    assert_eq!(v["data"][0]["object"], "model");
}
