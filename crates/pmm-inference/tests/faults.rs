//! Faults a real llama-server cannot be made to produce on demand, against in-test fake
//! llama.cpp-style upstreams (axum): stalled stream, slow upstream, saturation, 5xx before the
//! first byte, breaker, loading state, upstream 4xx, auth.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{
    FakeServer, TestProxy, config, get as get_url, metric, post as post_json, read_sse,
    single_upstream, upstream,
};
use futures::StreamExt;
use pmm_inference::KindSetting;
use serde_json::{Value, json};
use tokio::time::Instant;

fn chat_answer(text: &str) -> Value {
    json!({
        "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    })
}

fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})
    )
}

fn sse(body: Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

/// A fake llama.cpp upstream answering chat with `text`, counting hits.
async fn fake_ok(text: &'static str, hits: Arc<AtomicUsize>) -> FakeServer {
    FakeServer::start(
        Router::new()
            .route(
                "/health",
                get(|| async { axum::Json(json!({"status": "ok"})) }),
            )
            .route(
                "/v1/chat/completions",
                post(move |axum::Json(req): axum::Json<Value>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if req["stream"] == true {
                            sse(Body::from(format!("{}data: [DONE]\n\n", chunk(text))))
                        } else {
                            axum::Json(chat_answer(text)).into_response()
                        }
                    }
                }),
            ),
    )
    .await
}

fn chat(stream: bool) -> Value {
    json!({"model": common::MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

/// Counts a request the proxy forwarded; its health probes (which name no model) are not counted.
fn count(hits: &AtomicUsize, req: &Value) {
    if req.get("model").is_some() {
        hits.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn stalled_stream_ends_with_idle_timeout_error_event() {
    let fake = FakeServer::chat(post(|| async {
        let first = futures::stream::iter([Ok::<_, std::io::Error>(chunk("Hel").into_bytes())]);
        sse(Body::from_stream(first.chain(futures::stream::pending())))
    }))
    .await;
    let mut cfg = single_upstream("stall", &fake.base, KindSetting::Llamacpp);
    cfg.limits.stream_idle_timeout_ms = 300;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &chat(true)).await;
    assert_eq!(resp.status(), 200);
    let events = read_sse(resp, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("Hel"));
    let err: Value = serde_json::from_str(&events[1]).expect("error JSON");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no stream data"),
        "{err}"
    );
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_streams_total",
            &[("outcome", "idle_timeout")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_errors_total",
            &[("reason", "idle_timeout")]
        ),
        1.0
    );
}

#[tokio::test]
async fn stream_cut_midway_is_an_error_not_a_clean_finish() {
    let fake = FakeServer::chat(post(|| async {
        sse(Body::from(format!("{}{}", chunk("a"), chunk("b"))))
    }))
    .await;
    let proxy = TestProxy::start(single_upstream("cut", &fake.base, KindSetting::Llamacpp)).await;
    let client = reqwest::Client::new();
    let events = read_sse(
        proxy.chat(&client, &chat(true)).await,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert!(events[2].contains("closed the stream before it finished"));
}

/// An upstream that never answers.
async fn fake_hanging(hits: Arc<AtomicUsize>) -> FakeServer {
    FakeServer::chat(post(move |axum::Json(req): axum::Json<Value>| {
        count(&hits, &req);
        futures::future::pending::<String>()
    }))
    .await
}

#[tokio::test]
async fn slow_upstream_times_out_per_attempt_and_falls_back() {
    let slow_hits = Arc::new(AtomicUsize::new(0));
    let slow = fake_hanging(slow_hits.clone()).await;
    let ok_hits = Arc::new(AtomicUsize::new(0));
    let ok = fake_ok("fast", ok_hits.clone()).await;
    let mut cfg = config(vec![
        upstream("slow", &slow.base, KindSetting::Llamacpp),
        upstream("fast", &ok.base, KindSetting::Llamacpp),
    ]);
    cfg.limits.first_byte_timeout_ms = 300;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let resp = proxy.chat(&client, &chat(stream)).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("body");
        assert!(text.contains("fast"), "{text}");
    }
    // The stall opened the slow upstream's breaker at once: the second request went straight
    // to the fallback instead of waiting out another first-byte deadline.
    assert_eq!(slow_hits.load(Ordering::SeqCst), 1);
    assert_eq!(ok_hits.load(Ordering::SeqCst), 2);
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_errors_total",
            &[("upstream", "slow"), ("reason", "first_byte_timeout")]
        ),
        1.0
    );
}

#[tokio::test]
async fn slow_upstreams_hit_the_overall_deadline() {
    let hits = Arc::new(AtomicUsize::new(0));
    let a = fake_hanging(hits.clone()).await;
    let b = fake_hanging(hits.clone()).await;
    let mut cfg = config(vec![
        upstream("a", &a.base, KindSetting::Llamacpp),
        upstream("b", &b.base, KindSetting::Llamacpp),
    ]);
    cfg.limits.first_byte_timeout_ms = 300;
    cfg.limits.request_timeout_ms = 500;
    cfg.limits.max_attempts = 5;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let v: Value = resp.json().await.expect("error JSON");
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "timeout");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("deadline of 500 ms"),
        "{v}"
    );
    // 300 ms on a, then the 200 ms left on b.
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn saturation_sheds_with_429_and_retry_after() {
    let release = Arc::new(tokio::sync::Notify::new());
    let hits = Arc::new(AtomicUsize::new(0));
    let fake = {
        let release = release.clone();
        let hits = hits.clone();
        FakeServer::chat(post(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            let release = release.clone();
            async move {
                release.notified().await;
                axum::Json(chat_answer("done"))
            }
        }))
        .await
    };
    let mut cfg = single_upstream("busy", &fake.base, KindSetting::Llamacpp);
    cfg.limits.max_concurrent = 1;
    cfg.limits.max_queue = 1;
    cfg.limits.retry_after_secs = 7;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let spawn = || {
        let client = client.clone();
        let url = proxy.chat_url();
        tokio::spawn(async move { post_json(&client, url, &chat(false)).await.status() })
    };
    let first = spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hits.load(Ordering::SeqCst) < 1 {
        assert!(
            Instant::now() < deadline,
            "first request never reached upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = spawn();
    loop {
        let m = proxy.metrics(&client).await;
        if metric(&m, "pmm_inference_queue_depth", &[]) == 1.0 {
            assert_eq!(metric(&m, "pmm_inference_in_flight", &[]), 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "second request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let third = proxy.chat(&client, &chat(false)).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "7");
    let v: Value = third.json().await.expect("error JSON");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // Free the upstream until both admitted requests are through.
    while !first.is_finished() || !second.is_finished() {
        release.notify_waiters();
        assert!(
            Instant::now() < deadline,
            "admitted requests never finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(first.await.expect("first"), StatusCode::OK);
    assert_eq!(second.await.expect("second"), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let m = proxy.metrics(&client).await;
    assert_eq!(metric(&m, "pmm_inference_shed_total", &[]), 1.0);
}

#[tokio::test]
async fn error_before_first_byte_is_retried_on_the_next_upstream_and_breaker_opens() {
    let bad_hits = Arc::new(AtomicUsize::new(0));
    let bad = {
        let hits = bad_hits.clone();
        FakeServer::chat(post(move |axum::Json(req): axum::Json<Value>| {
            count(&hits, &req);
            async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }
        }))
        .await
    };
    let ok_hits = Arc::new(AtomicUsize::new(0));
    let ok = fake_ok("second", ok_hits.clone()).await;
    let mut cfg = config(vec![
        upstream("bad", &bad.base, KindSetting::Llamacpp),
        upstream("good", &ok.base, KindSetting::Llamacpp),
    ]);
    cfg.breaker.failure_threshold = 2;
    cfg.breaker.open_ms = 60_000;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    for i in 0..4 {
        let resp = proxy.chat(&client, &chat(i % 2 == 1)).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.expect("body").contains("second"));
    }
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        2,
        "breaker should stop traffic"
    );
    assert_eq!(ok_hits.load(Ordering::SeqCst), 4);
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_breaker_open",
            &[("upstream", "bad")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_errors_total",
            &[("upstream", "bad"), ("reason", "status_5xx")]
        ),
        2.0
    );
}

#[tokio::test]
async fn upstream_4xx_is_passed_through_and_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let rejecting = {
        let hits = hits.clone();
        FakeServer::chat(post(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": {"message": "context too long"}})),
                )
            }
        }))
        .await
    };
    let other_hits = Arc::new(AtomicUsize::new(0));
    let other = fake_ok("x", other_hits.clone()).await;
    let proxy = TestProxy::start(config(vec![
        upstream("a", &rejecting.base, KindSetting::Llamacpp),
        upstream("b", &other.base, KindSetting::Llamacpp),
    ]))
    .await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["message"], "context too long");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn health_mirrors_upstream_loading_state() {
    let loaded = Arc::new(AtomicBool::new(false));
    let fake = {
        let loaded = loaded.clone();
        FakeServer::start(Router::new().route(
            "/health",
            get(move || {
                let ready = loaded.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (StatusCode::OK, axum::Json(json!({"status": "ok"})))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})),
                        )
                    }
                }
            }),
        ))
        .await
    };
    let proxy = TestProxy::start_unready(single_upstream(
        "loading",
        &fake.base,
        KindSetting::Llamacpp,
    ))
    .await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_url(&client, format!("{}/health", proxy.base)).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = r.json().await.expect("json");
        if v["error"]["message"] == "Loading model" {
            break;
        }
        assert!(Instant::now() < deadline, "loading state not mirrored: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loaded.store(true, Ordering::SeqCst);
    proxy.wait_ready().await;
}

#[tokio::test]
async fn bearer_auth_guards_everything_but_health() {
    let hits = Arc::new(AtomicUsize::new(0));
    let fake = fake_ok("authed", hits.clone()).await;
    let mut cfg = single_upstream("f", &fake.base, KindSetting::Llamacpp);
    cfg.auth.disabled = false;
    cfg.auth.tokens = vec!["s3cret-token-one".into(), "s3cret-token-two".into()];
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    for token in [None, Some("wrong"), Some("s3cret-token-on")] {
        let mut req = client.post(proxy.chat_url()).json(&chat(false));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
    let m = get_url(&client, format!("{}/metrics", proxy.base)).await;
    assert_eq!(m.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let resp = client
        .post(proxy.chat_url())
        .bearer_auth("s3cret-token-two")
        .json(&chat(false))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The auth scheme is case-insensitive (RFC 9110).
    let resp = client
        .post(proxy.chat_url())
        .header("authorization", "bearer s3cret-token-one")
        .json(&chat(false))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dead_upstream_gives_502_then_503_with_retry_after_once_the_breaker_opens() {
    let mut cfg = single_upstream("gone", &common::dead_url(), KindSetting::Llamacpp);
    cfg.breaker.failure_threshold = 3;
    cfg.breaker.open_ms = 60_000;
    cfg.limits.max_attempts = 3;
    cfg.limits.retry_after_secs = 4;
    let proxy = TestProxy::start_unready(cfg).await;
    let client = reqwest::Client::new();
    let h = get_url(&client, format!("{}/health", proxy.base)).await;
    assert_eq!(h.status(), StatusCode::SERVICE_UNAVAILABLE);
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "upstream_error");
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "4");
    let m = proxy.metrics(&client).await;
    assert_eq!(
        metric(
            &m,
            "pmm_inference_upstream_errors_total",
            &[("upstream", "gone"), ("reason", "connect")]
        ),
        3.0
    );
}

#[tokio::test]
async fn upstream_url_secrets_never_reach_the_client() {
    let dead = format!("{}/?api_key=s3cret-pass", common::dead_url());
    let mut cfg = single_upstream("gone", &dead, KindSetting::Llamacpp);
    cfg.limits.max_attempts = 1;
    let proxy = TestProxy::start_unready(cfg).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let text = resp.text().await.expect("error body");
    assert!(text.contains("gone"), "{text}");
    assert!(!text.contains("s3cret-pass"), "credentials leaked: {text}");
}

#[tokio::test]
async fn a_4xx_whose_body_breaks_is_an_upstream_failure_not_an_empty_4xx() {
    let fake = FakeServer::chat(
        // The request body is read so that closing the connection is a clean FIN; the
        // yield lets the server flush the headers before the body fails.
        post(|_: axum::body::Bytes| async {
            let first =
                futures::stream::iter([Ok(axum::body::Bytes::from_static(b"{\"error\": "))]);
            let broken = futures::stream::once(async {
                tokio::task::yield_now().await;
                Err(std::io::Error::other("connection lost"))
            });
            (
                StatusCode::BAD_REQUEST,
                Body::from_stream(first.chain(broken)),
            )
        }),
    )
    .await;
    let mut cfg = single_upstream("torn", &fake.base, KindSetting::Llamacpp);
    cfg.limits.max_attempts = 1;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &chat(false)).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let v: Value = resp.json().await.expect("error JSON");
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "upstream_error");
}
