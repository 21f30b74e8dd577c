//! Model routing and the first-byte deadline against in-test fake llama.cpp-style upstreams:
//! each model reaches its own upstreams, unknown ones are 404, `/v1/models` lists what is
//! routable now; a stall is a 504 within the deadline that opens the breaker once, and falls
//! back when the model has a second upstream. Transport-layer errors are OpenAI-shaped too.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use common::{
    FakeServer, TestProxy, config, config_models, dead_url, get_json, metric, model,
    post as post_json, stalled_upstream, upstream,
};
use pmm_inference::{KindSetting, ModelConfig};
use serde_json::{Value, json};
use tokio::time::Instant;

/// A fake upstream answering every chat with `text`, counting forwarded requests.
async fn answering(text: &'static str, hits: Arc<AtomicUsize>) -> FakeServer {
    FakeServer::chat(post(move |axum::Json(req): axum::Json<Value>| {
        if req.get("model").is_some() {
            hits.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            axum::Json(json!({
                "object": "chat.completion", "model": req["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }))
        }
    }))
    .await
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn content(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("chat JSON");
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned()
}

async fn error_of(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().await.expect("error JSON");
    let e = v["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(e.get(key).is_some(), "`{key}` missing from {v}");
    }
    assert!(e["code"].is_string() || e["code"].is_null(), "{v}");
    e
}

#[tokio::test]
async fn two_models_reach_their_own_upstreams_and_unknown_is_404() {
    let (a_hits, b_hits) = (Arc::default(), Arc::default());
    let a = answering("from a", Arc::clone(&a_hits)).await;
    let b = answering("from b", Arc::clone(&b_hits)).await;
    let cfg = config_models(
        vec![
            model("alpha", &["a"]),
            ModelConfig {
                aliases: vec!["beta-latest".into()],
                ..model("beta", &["b"])
            },
            model("gamma", &["gone"]),
        ],
        vec![
            upstream("a", &a.base, KindSetting::Llamacpp),
            upstream("b", &b.base, KindSetting::Llamacpp),
            upstream("gone", &dead_url(), KindSetting::Llamacpp),
        ],
    );
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let url = proxy.chat_url();
    assert_eq!(
        content(post_json(&client, url.clone(), &ask("alpha")).await).await,
        "from a"
    );
    assert_eq!(
        content(post_json(&client, url.clone(), &ask("beta")).await).await,
        "from b"
    );
    let resp = post_json(&client, url.clone(), &ask("beta-latest")).await;
    assert_eq!(content(resp).await, "from b");
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
    assert_eq!(b_hits.load(Ordering::SeqCst), 2);

    let e = error_of(
        post_json(&client, url.clone(), &ask("gpt-4")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["type"], "not_found_error");
    assert_eq!(e["param"], "model");
    assert_eq!(
        a_hits.load(Ordering::SeqCst) + b_hits.load(Ordering::SeqCst),
        3
    );

    // Exactly what is routable now: gamma's only upstream is down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&client, format!("{}/v1/models", proxy.base)).await;
        let ids: Vec<&str> = v["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        if ids == ["alpha", "beta"] {
            break;
        }
        assert!(Instant::now() < deadline, "models listed: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gamma = get_json(&client, format!("{}/v1/models/gamma", proxy.base)).await;
    assert_eq!(gamma["id"], "gamma");
    let resp = client
        .get(format!("{}/v1/models/gpt-4", proxy.base))
        .send()
        .await
        .expect("GET model");
    assert_eq!(
        error_of(resp, StatusCode::NOT_FOUND).await["code"],
        "model_not_found"
    );
}

#[tokio::test]
async fn stall_alone_is_a_504_within_the_first_byte_deadline_and_opens_the_breaker_once() {
    let hits = Arc::new(AtomicUsize::new(0));
    let stall = stalled_upstream(hits.clone()).await;
    let mut cfg = config(vec![upstream("stall", &stall.base, KindSetting::Llamacpp)]);
    cfg.limits.first_byte_timeout_ms = 500;
    cfg.limits.max_concurrent = 2;
    cfg.breaker.failure_threshold = 3;
    cfg.breaker.open_ms = 60_000;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    // Two in flight and two queued behind them, streamed and not.
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let (client, url) = (client.clone(), proxy.chat_url());
            let body = json!({"model": common::MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": i % 2 == 0});
            tokio::spawn(async move {
                let start = Instant::now();
                let resp = post_json(&client, url, &body).await;
                let status = resp.status();
                (start.elapsed(), status, error_of(resp, status).await)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in futures::future::join_all(requests).await {
        let (elapsed, status, e) = r.expect("request task");
        assert!(
            elapsed < Duration::from_millis(1500),
            "{status} after {elapsed:?}, first-byte deadline 500 ms"
        );
        if status == StatusCode::GATEWAY_TIMEOUT {
            assert_eq!(e["code"], "timeout", "{e}");
            assert_eq!(e["type"], "server_error");
            assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
        } else {
            // Queued behind the stall: the breaker it opened answers them at once.
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
            assert_eq!(e["code"], "upstream_unavailable");
        }
        statuses.push(status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [503, 503, 504, 504]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "nothing else reached the stalled upstream"
    );
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_breaker_opens_total",
            &[("upstream", "stall")]
        ),
        1.0,
        "{m}"
    );
    // The poll probes it and rates it down although its /health says 200.
    assert_eq!(
        metric(&m, "pmm_inference_upstream_up", &[("upstream", "stall")]),
        0.0
    );
    let h = client
        .get(format!("{}/health", proxy.base))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(h.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn stall_falls_back_to_the_models_second_upstream() {
    let stall = stalled_upstream(Arc::default()).await;
    let ok_hits = Arc::new(AtomicUsize::new(0));
    let ok = answering("fallback", ok_hits.clone()).await;
    let mut cfg = config(vec![
        upstream("stall", &stall.base, KindSetting::Llamacpp),
        upstream("ok", &ok.base, KindSetting::Llamacpp),
    ]);
    cfg.limits.first_byte_timeout_ms = 500;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let start = Instant::now();
    let resp = proxy.chat(&client, &ask(common::MODEL)).await;
    assert_eq!(content(resp).await, "fallback");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(ok_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transport_errors_are_openai_shaped() {
    let fake = answering("x", Arc::default()).await;
    let mut cfg = config(vec![upstream("f", &fake.base, KindSetting::Llamacpp)]);
    cfg.limits.max_body_bytes = 1024;
    cfg.auth.disabled = false;
    cfg.auth.tokens = vec!["t0ken".into()];
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let authed = |r: reqwest::RequestBuilder| r.bearer_auth("t0ken").send();
    let big = json!({"model": common::MODEL, "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let resp = authed(client.post(proxy.chat_url()).json(&big))
        .await
        .expect("send");
    assert_eq!(
        error_of(resp, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "request_too_large"
    );
    let resp = authed(client.get(format!("{}/v1/nowhere", proxy.base)))
        .await
        .expect("send");
    assert_eq!(
        error_of(resp, StatusCode::NOT_FOUND).await["type"],
        "not_found_error"
    );
    let resp = authed(client.get(proxy.chat_url())).await.expect("send");
    assert_eq!(
        error_of(resp, StatusCode::METHOD_NOT_ALLOWED).await["code"],
        "method_not_allowed"
    );
    let resp = client
        .post(proxy.chat_url())
        .json(&ask(common::MODEL))
        .send()
        .await
        .expect("send");
    let e = error_of(resp, StatusCode::UNAUTHORIZED).await;
    assert_eq!(e["type"], "authentication_error");
    assert_eq!(e["code"], "invalid_api_key");
    let resp = authed(client.post(proxy.chat_url()).body("{not json"))
        .await
        .expect("send");
    assert_eq!(
        error_of(resp, StatusCode::BAD_REQUEST).await["type"],
        "invalid_request_error"
    );
}
