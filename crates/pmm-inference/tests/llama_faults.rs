//! Faults a real `llama-server` can produce: killed mid-stream, and a client that goes away
//! (the generation must stop in llama-server's slots). Each test owns its server.

mod common;

use std::time::Duration;

use axum::body::Bytes;
use common::{LlamaServer, TestProxy, config, metric, read_sse, single_upstream, upstream};
use futures::StreamExt;
use pmm_inference::KindSetting;
use pmm_inference::sse::SseDecoder;
use serde_json::{Value, json};
use tokio::time::Instant;

fn long_generation(stream: bool) -> Value {
    json!({
        "model": common::MODEL,
        "messages": [{"role": "user", "content": "Write a very long story about a river."}],
        "max_tokens": 100000, "ignore_eos": true, "temperature": 0.8, "stream": stream,
    })
}

/// Polls llama-server's `/slots` until a slot is (or no slot is) processing.
///
/// The poll interval is longer than llama-server's 1 s HTTP polling period on purpose: each
/// `/slots` call posts a task to the server loop, and its result wakes the handler that waits for
/// a non-streamed answer before that handler's timeout, which is the only place it checks
/// whether its client hung up. Polling faster hides the cancellation being tested.
async fn wait_slots(llama: &LlamaServer, client: &reqwest::Client, busy: bool, within: Duration) {
    let deadline = Instant::now() + within;
    while llama.any_slot_busy(client).await != busy {
        assert!(
            Instant::now() < deadline,
            "llama-server slots never became {} within {within:?}:\n{}",
            if busy { "busy" } else { "idle" },
            llama.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Waits up to 60 s for the first chunk of a stream.
async fn first_chunk(body: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin)) {
    tokio::time::timeout(Duration::from_secs(60), body.next())
        .await
        .expect("first chunk in time")
        .expect("stream open")
        .expect("chunk");
}

/// Feeds `chunk` to `dec` and appends the `data:` of every event it completes.
fn decode_into(dec: &mut SseDecoder, chunk: &[u8], events: &mut Vec<String>) {
    dec.push(chunk);
    while let Some(ev) = dec.next_event() {
        events.push(ev.data);
    }
}

#[tokio::test]
async fn upstream_killed_mid_stream_ends_with_error_event() {
    let mut llama = LlamaServer::start(1).await;
    let proxy =
        TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Llamacpp)).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &long_generation(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut dec = SseDecoder::default();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while events.len() < 3 {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("first chunks in time")
            .expect("stream open")
            .expect("chunk");
        decode_into(&mut dec, &chunk, &mut events);
    }
    llama.kill();
    while let Some(next) = tokio::time::timeout_at(deadline, body.next())
        .await
        .expect("stream ends after the kill")
    {
        let Ok(chunk) = next else { break };
        decode_into(&mut dec, &chunk, &mut events);
    }
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "clean finish after a kill"
    );
    let last: Value = serde_json::from_str(events.last().expect("events")).expect("JSON event");
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert_eq!(last["error"]["code"], "upstream_error", "{last}");
    let m = proxy.metrics(&client).await;
    let broken = metric(
        &m,
        "pmm_inference_streams_total",
        &[("upstream", "llama"), ("outcome", "stream_broken")],
    ) + metric(
        &m,
        "pmm_inference_streams_total",
        &[("upstream", "llama"), ("outcome", "stream_truncated")],
    );
    assert_eq!(broken, 1.0, "{m}");
}

#[tokio::test]
async fn client_disconnect_mid_stream_stops_generation() {
    let llama = LlamaServer::start(1).await;
    let proxy =
        TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Llamacpp)).await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &long_generation(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    first_chunk(&mut body).await;
    wait_slots(&llama, &client, true, Duration::from_secs(10)).await;
    drop(body);
    wait_slots(&llama, &client, false, Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = proxy.metrics(&client).await;
        if metric(
            &m,
            "pmm_inference_streams_total",
            &[("outcome", "client_closed")],
        ) == 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "client_closed not counted: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_disconnect_while_waiting_for_a_full_answer_stops_generation() {
    let llama = LlamaServer::start(1).await;
    let proxy =
        TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Llamacpp)).await;
    let client = reqwest::Client::new();
    // A raw socket, so that "the client went away" is an unambiguous close of the connection.
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect to proxy");
    let body = long_generation(false).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .expect("send request");
    wait_slots(&llama, &client, true, Duration::from_secs(30)).await;
    drop(socket);
    wait_slots(&llama, &client, false, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn streaming_is_not_retried_after_the_first_byte() {
    // The stream is cut by killing the only upstream; a second upstream exists but must not be
    // used, because the client already received bytes.
    let mut first = LlamaServer::start(1).await;
    let fallback_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = fallback_hits.clone();
    let fallback = common::FakeServer::chat(axum::routing::post(move || {
        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "data: [DONE]\n\n" }
    }))
    .await;
    let proxy = TestProxy::start(config(vec![
        upstream("llama", &first.base, KindSetting::Llamacpp),
        upstream("fallback", &fallback.base, KindSetting::Llamacpp),
    ]))
    .await;
    let client = reqwest::Client::new();
    let resp = proxy.chat(&client, &long_generation(true)).await;
    let mut body = resp.bytes_stream();
    first_chunk(&mut body).await;
    first.kill();
    let rest = read_sse_rest(body).await;
    assert!(rest.contains("\"upstream_error\""), "{rest}");
    assert!(!rest.contains("[DONE]"));
    assert_eq!(fallback_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // A new request does go to the fallback now.
    let resp = proxy
        .chat(
            &client,
            &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let events = read_sse(resp, Duration::from_secs(10)).await;
    assert_eq!(events, ["[DONE]"]);
    assert_eq!(fallback_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

async fn read_sse_rest(
    mut body: impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin,
) -> String {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(next) = tokio::time::timeout_at(deadline, body.next())
        .await
        .expect("stream ends")
    {
        match next {
            Ok(c) => out.extend_from_slice(&c),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
