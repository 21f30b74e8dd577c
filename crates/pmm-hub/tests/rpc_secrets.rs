//! An RPC URL's credentials never reach the hub's output, even at `RUST_LOG=trace`: the hub
//! binary runs as a child against a proxy that only forwards to anvil when the URL's user
//! and password arrive (as a Basic header) along with the path and query keys.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use common::*;
use process::HubProcess;
use serde_json::json;

const USER: &str = "rpcuser7f3a";
const PASSWORD: &str = "rpcpass9c1d";
const PATH_KEY: &str = "PATHKEY5e2b";
const QUERY_KEY: &str = "QUERYKEY8a4c";

/// A node behind credentials: forwards to `upstream` only requests that carry all of them,
/// counting those; anything else gets 401.
async fn guarded_node(upstream: String) -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let expected = reqwest::Client::new()
        .post("http://127.0.0.1/")
        .basic_auth(USER, Some(PASSWORD))
        .build()?
        .headers()[header::AUTHORIZATION]
        .clone();
    let forwarded = Arc::new(AtomicU64::new(0));
    let count = forwarded.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (http, upstream, count, expected) = (
            http.clone(),
            upstream.clone(),
            count.clone(),
            expected.clone(),
        );
        async move {
            let ok = uri.path() == format!("/v2/{PATH_KEY}")
                && uri.query() == Some(&format!("key={QUERY_KEY}"))
                && headers.get(header::AUTHORIZATION) == Some(&expected);
            if !ok {
                return Err((StatusCode::UNAUTHORIZED, "credentials missing".to_owned()));
            }
            let bytes = http
                .post(&upstream)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?
                .bytes()
                .await
                .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
            count.fetch_add(1, Ordering::SeqCst);
            Ok(([("content-type", "application/json")], bytes))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((
        format!("http://{USER}:{PASSWORD}@{addr}/v2/{PATH_KEY}?key={QUERY_KEY}"),
        forwarded,
    ))
}

#[tokio::test]
async fn rpc_credentials_never_reach_the_output_at_trace_level() -> anyhow::Result<()> {
    let fx = fixture().await?;
    let (rpc_url, forwarded) = guarded_node(fx.devnet.rpc_url().to_string()).await?;
    let mut cfg = serde_json::to_value(&fx.cfg)?;
    cfg["rpc_url"] = json!(rpc_url);
    let log = fx.dir.join("hub-output.log");
    let hub = HubProcess::spawn(&fx.dir, cfg, "trace", &log)?;
    let base = hub.base.clone();
    let client = reqwest::Client::new();
    // Up and reading the chain through the guarded node.
    let state = poll(Duration::from_secs(60), || {
        let (client, base, pool) = (client.clone(), base.clone(), fx.dsp.to_string());
        async move {
            let Ok(resp) = client
                .post(format!("{base}/mcp/call"))
                .bearer_auth(AGENT)
                .json(&json!({"tool": "dodo.get_pool_state", "params": {"pool": pool}}))
                .send()
                .await
            else {
                return Ok(None);
            };
            Ok((resp.status() == 200).then_some(resp.json::<serde_json::Value>().await?))
        }
    })
    .await?;
    assert_eq!(state["result"]["pool_type"], "dsp", "{state}");
    // A failing read too: errors are where URLs used to be echoed.
    client
        .post(format!("{base}/mcp/call"))
        .bearer_auth(AGENT)
        .json(&json!({"tool": "dodo.identify_pool_interface",
                      "params": {"pool": "0x000000000000000000000000000000000000dEaD"}}))
        .send()
        .await?;
    client.get(format!("{base}/health")).send().await?;
    let n = forwarded.load(Ordering::SeqCst);
    assert!(n > 0, "no request reached the node with its credentials");
    drop(hub);

    let output = std::fs::read_to_string(&log)?;
    let lines = output.lines().count();
    println!(
        "hub output: {lines} lines, {} bytes; node requests forwarded: {n}",
        output.len()
    );
    assert!(lines > 50, "trace output expected, got:\n{output}");
    assert!(output.contains("TRACE"), "not at trace level");
    for secret in [USER, PASSWORD, PATH_KEY, QUERY_KEY] {
        let at = output.find(secret);
        assert!(
            at.is_none(),
            "{secret} in the hub's output: {}",
            at.map(|i| &output[i.saturating_sub(200)..(i + 100).min(output.len())])
                .unwrap_or_default()
        );
    }
    Ok(())
}
