//! A JSON-RPC proxy on a free 127.0.0.1 port that counts every request the hub sends its node
//! before forwarding it. Shared by the `monitor_rpc` bench and the tests that assert a tool
//! call cost no RPC.
//!
//! A "request" is one HTTP request reaching the node: a JSON-RPC batch counts once, whatever
//! it holds. Each is sorted by what it holds: a pool-read batch (has `eth_getBlockByNumber`:
//! the monitor's batch of every pool, or one tool call's read of one pool), a head poll (has
//! `eth_blockNumber`), or anything else. `calls` counts every JSON-RPC call inside them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Bytes;
use serde_json::Value;

/// Requests seen so far, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pool_batches: AtomicU64,
    head_polls: AtomicU64,
    other: AtomicU64,
    calls: AtomicU64,
}

/// A copy of [`Counts`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Requests holding `eth_getBlockByNumber` (pool reads).
    pub pool_batches: u64,
    /// Requests holding `eth_blockNumber` and no pool read.
    pub head_polls: u64,
    /// Every other request.
    pub other: u64,
    /// JSON-RPC calls inside all of them.
    pub calls: u64,
}

impl Snapshot {
    /// HTTP requests of every kind.
    pub fn requests(&self) -> u64 {
        self.pool_batches + self.head_polls + self.other
    }

    /// What was counted since `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            pool_batches: self.pool_batches - before.pool_batches,
            head_polls: self.head_polls - before.head_polls,
            other: self.other - before.other,
            calls: self.calls - before.calls,
        }
    }
}

impl Counts {
    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            pool_batches: self.pool_batches.load(Ordering::SeqCst),
            head_polls: self.head_polls.load(Ordering::SeqCst),
            other: self.other.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
        }
    }

    fn count(&self, body: &[u8]) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let calls: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let has = |m: &str| calls.iter().any(|c| c["method"] == m);
        let bucket = if has("eth_getBlockByNumber") {
            &self.pool_batches
        } else if has("eth_blockNumber") {
            &self.head_polls
        } else {
            &self.other
        };
        bucket.fetch_add(1, Ordering::SeqCst);
        self.calls.fetch_add(calls.len() as u64, Ordering::SeqCst);
    }
}

/// The running proxy; stops when dropped.
pub struct CountingProxy {
    /// `http://127.0.0.1:<port>`: give it to the hub as `rpc_url`.
    pub url: String,
    /// What it has counted.
    pub counts: Arc<Counts>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingProxy {
    /// Starts a proxy forwarding to `upstream` (the node's HTTP URL).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let down = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::new();
        let (upstream, counted, is_down) = (upstream.to_owned(), counts.clone(), down.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: Bytes| {
                let (http, upstream, counts) = (http.clone(), upstream.clone(), counted.clone());
                let is_down = is_down.clone();
                async move {
                    counts.count(&body);
                    if is_down.load(Ordering::SeqCst) {
                        return Err((
                            axum::http::StatusCode::BAD_GATEWAY,
                            "node unreachable".to_owned(),
                        ));
                    }
                    let resp = http
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| (axum::http::StatusCode::BAD_GATEWAY, e.to_string()))?;
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| (axum::http::StatusCode::BAD_GATEWAY, e.to_string()))?;
                    Ok::<_, (axum::http::StatusCode, String)>((
                        [("content-type", "application/json")],
                        bytes,
                    ))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            counts,
            down,
            task,
        })
    }

    /// From now on every request fails with 502, as if the node were gone.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
    }
}
