//! `tools/call` of `dodo.get_pool_state` under load through the hub's MCP endpoint, with a
//! plain HTTP client and with rmcp, over one session and over a new session per call,
//! sequential and 50 concurrent, against a bare axum endpoint serving the same response bytes
//! (the ratio is the hub's overhead on top of HTTP on this machine).
//!
//! Run: `cargo bench -p pmm-hub --bench mcp_load` (prints ratios; asserts nothing).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

// Each benchmark uses part of it.
#[allow(dead_code)]
mod common;
use common::{BenchPool, Stats, TOKEN, show, stats};

const SEQ: usize = 200;
const CONC_N: usize = 1000;
const CONC: usize = 50;
const TOOL: &str = "dodo.get_pool_state";
/// The baseline every line is compared with.
const BARE: &str = "bare axum";
const ACCEPT: &str = "application/json, text/event-stream";

/// `n` calls of `f`, `conc` in flight; each call is its own task so that the client side
/// uses both cores like real concurrent callers would.
async fn run<F, Fut>(n: usize, conc: usize, f: F) -> anyhow::Result<Stats>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let t = Instant::now();
    let mut calls = futures::stream::iter(0..n)
        .map(|_| {
            let f = f.clone();
            async move {
                tokio::spawn(async move {
                    let s = Instant::now();
                    // A stuck call fails the run instead of hanging it.
                    tokio::time::timeout(Duration::from_secs(5), f())
                        .await
                        .context("call timed out")??;
                    Ok::<_, anyhow::Error>(s.elapsed())
                })
                .await?
            }
        })
        .buffer_unordered(conc);
    let mut samples = Vec::with_capacity(n);
    while let Some(d) = calls.next().await {
        samples.push(d.inspect_err(|e| eprintln!("call failed: {e:#}"))?);
    }
    let total = t.elapsed();
    Ok(stats(samples, total))
}

/// The MCP endpoint by hand: JSON-RPC over POST, responses as SSE (`data:` lines) or JSON.
#[derive(Clone)]
struct PlainMcp {
    http: reqwest::Client,
    url: String,
    args: Value,
    ids: Arc<AtomicU64>,
}

struct PlainSession {
    id: String,
    version: String,
}

impl PlainMcp {
    fn post(&self, session: Option<&PlainSession>, body: &Value) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("Accept", ACCEPT)
            .json(body);
        if let Some(s) = session {
            r = r
                .header("mcp-session-id", &s.id)
                .header("mcp-protocol-version", &s.version);
        }
        r
    }

    /// Reads until the JSON-RPC response with `id` arrives: the SSE stream of a stateful
    /// session need not end right after it.
    async fn response(resp: reqwest::Response, id: u64) -> anyhow::Result<Value> {
        let resp = resp.error_for_status()?;
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            return Ok(resp.json().await?);
        }
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let Some(data) = line.strip_prefix(b"data:") else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<Value>(data) else {
                    continue;
                };
                if v.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok(v);
                }
            }
        }
        bail!("SSE stream ended without the response to {id}")
    }

    async fn open(&self) -> anyhow::Result<PlainSession> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .post(
                None,
                &json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "mcp_load", "version": "0"},
                }}),
            )
            .send()
            .await?;
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .context("no mcp-session-id")?
            .to_str()?
            .to_owned();
        let init = Self::response(resp, id).await?;
        let version = init["result"]["protocolVersion"]
            .as_str()
            .context("initialize: no protocolVersion")?
            .to_owned();
        let s = PlainSession { id: sid, version };
        self.post(
            Some(&s),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .send()
        .await?
        .error_for_status()?;
        Ok(s)
    }

    async fn call(&self, s: &PlainSession) -> anyhow::Result<Value> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .post(
                Some(s),
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": TOOL, "arguments": self.args}}),
            )
            .send()
            .await?;
        let v = Self::response(resp, id).await?;
        if v.get("result").is_none() || v["result"]["isError"] == json!(true) {
            bail!("tools/call failed: {v}");
        }
        Ok(v)
    }

    async fn close(&self, s: PlainSession) -> anyhow::Result<()> {
        self.http
            .delete(&self.url)
            .bearer_auth(TOKEN)
            .header("mcp-session-id", &s.id)
            .header("mcp-protocol-version", &s.version)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

#[derive(Clone)]
struct Rmcp {
    http: reqwest::Client,
    url: String,
    args: serde_json::Map<String, Value>,
}

impl Rmcp {
    async fn open(&self) -> anyhow::Result<RunningService<RoleClient, ClientConfig>> {
        // One reqwest pool under every session: the new-session runs measure MCP sessions,
        // not TCP handshakes.
        let transport = StreamableHttpClientTransport::with_client(
            self.http.clone(),
            StreamableHttpClientTransportConfig::with_uri(self.url.clone()).auth_header(TOKEN),
        );
        Ok(ClientConfig::default().serve(transport).await?)
    }

    async fn call(&self, peer: &rmcp::Peer<RoleClient>) -> anyhow::Result<()> {
        let r = peer
            .call_tool(CallToolRequestParams::new(TOOL).with_arguments(self.args.clone()))
            .await?;
        if r.is_error == Some(true) {
            bail!("tools/call failed: {r:?}");
        }
        Ok(())
    }
}

/// The baseline: axum on loopback answering a POST with fixed bytes, nothing else.
async fn bare_axum(body: Vec<u8>, stop: CancellationToken) -> anyhow::Result<String> {
    let body = axum::body::Bytes::from(body);
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", l.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(l, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = BenchPool::start("pmm-hub-mcp-load").await?;
    let dsp = pool.dsp;
    let cfg = pool
        // An empty allowlist: no pool monitor, so every call asks the node for the head, as
        // the baseline does.
        .hub_config(json!({}))
        .await?;
    let hub = pmm_hub::serve(&cfg, None).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONC * 2)
        .build()?;
    let mcp_url = format!("http://{}/mcp", hub.addr);
    let call_url = format!("http://{}/mcp/call", hub.addr);
    let args = json!({"pool": dsp.to_string()});
    let plain = PlainMcp {
        http: http.clone(),
        url: mcp_url.clone(),
        args: args.clone(),
        ids: Arc::new(AtomicU64::new(1)),
    };
    let rm = Rmcp {
        http: http.clone(),
        url: mcp_url.clone(),
        args: args.as_object().cloned().context("args")?,
    };

    // One real result's bytes for the baseline to serve; this also fills the (pool, block)
    // cache, so every measured call below is a cached read.
    let s = plain.open().await?;
    let sample = serde_json::to_vec(&plain.call(&s).await?)?;
    plain.close(s).await?;
    let stop = CancellationToken::new();
    let bare_url = bare_axum(sample.clone(), stop.clone()).await?;

    let bare = {
        let (http, url) = (http.clone(), bare_url.clone());
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(&url)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}))
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                Ok(())
            }
        }
    };
    let mcp_call = {
        let (http, url) = (http.clone(), call_url.clone());
        let body = json!({"tool": TOOL, "params": args});
        move || {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            async move {
                http.post(&url)
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                Ok(())
            }
        }
    };
    let plain_session = Arc::new(plain.open().await?);
    let plain_one = {
        let (plain, s) = (plain.clone(), plain_session.clone());
        move || {
            let (plain, s) = (plain.clone(), s.clone());
            async move { plain.call(&s).await.map(drop) }
        }
    };
    let plain_new = {
        let plain = plain.clone();
        move || {
            let plain = plain.clone();
            async move {
                let s = plain.open().await?;
                plain.call(&s).await?;
                plain.close(s).await
            }
        }
    };
    let rmcp_session = rm.open().await?;
    let rmcp_one = {
        let (rm, peer) = (rm.clone(), rmcp_session.peer().clone());
        move || {
            let (rm, peer) = (rm.clone(), peer.clone());
            async move { rm.call(&peer).await }
        }
    };
    let rmcp_new = {
        let rm = rm.clone();
        move || {
            let rm = rm.clone();
            async move {
                let c = rm.open().await?;
                rm.call(c.peer()).await?;
                // Ends the session on the hub (DELETE) rather than leaving it to idle out.
                c.cancel().await?;
                Ok(())
            }
        }
    };

    // Warm-up: connections, the hub's per-pool statics, allocator arenas.
    run(50, 10, bare.clone()).await?;
    run(50, 10, mcp_call.clone()).await?;
    run(50, 10, plain_one.clone()).await?;
    run(20, 5, plain_new.clone()).await?;
    run(50, 10, rmcp_one.clone()).await?;
    run(20, 5, rmcp_new.clone()).await?;

    println!(
        "mcp_load: tools/call {TOOL} (cached DSP read on anvil); baseline serves the same {} bytes",
        sample.len()
    );
    for (label, n, conc) in [("sequential", SEQ, 1), ("50 concurrent", CONC_N, CONC)] {
        println!("{label}, {n} calls each:");
        let b = run(n, conc, bare.clone()).await?;
        show("bare axum POST", &b, &b, BARE);
        show(
            "plain HTTP /mcp/call",
            &run(n, conc, mcp_call.clone()).await?,
            &b,
            BARE,
        );
        show(
            "plain HTTP /mcp, one session",
            &run(n, conc, plain_one.clone()).await?,
            &b,
            BARE,
        );
        show(
            "plain HTTP /mcp, new sessions",
            &run(n, conc, plain_new.clone()).await?,
            &b,
            BARE,
        );
        show(
            "rmcp, one session",
            &run(n, conc, rmcp_one.clone()).await?,
            &b,
            BARE,
        );
        show(
            "rmcp, new sessions",
            &run(n, conc, rmcp_new.clone()).await?,
            &b,
            BARE,
        );
    }

    rmcp_session.cancel().await?;
    if let Some(s) = Arc::into_inner(plain_session) {
        plain.close(s).await?;
    }
    stop.cancel();
    hub.shutdown().await;
    Ok(())
}
