//! A JSON-RPC proxy on a free 127.0.0.1 port that counts every request the hub sends its node
//! before forwarding it, over HTTP (`POST /`) and websocket (`GET /` upgraded, relayed frame
//! by frame to the node's websocket on the same port). Shared by the `monitor_rpc` bench and
//! the tests that assert a tool call cost no RPC.
//!
//! A "request" is one HTTP request or one websocket text frame reaching the node: a JSON-RPC
//! batch counts once, whatever it holds. Each is sorted by what it holds: a pool-read batch
//! (has `eth_getBlockByNumber`: the monitor's batch of every pool, or one tool call's read of
//! one pool), a head poll (has `eth_blockNumber`), or anything else (a subscription, a
//! websocket handshake). `calls` counts every JSON-RPC call inside them. What the node sends
//! back unasked over a websocket (`pushes`: subscription notifications and answers) and
//! ping/pong frames (`keepalives`) are counted apart: they are not requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as NodeFrame;

/// Requests seen so far, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pool_batches: AtomicU64,
    head_polls: AtomicU64,
    other: AtomicU64,
    calls: AtomicU64,
    pushes: AtomicU64,
    keepalives: AtomicU64,
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
    /// Websocket text frames from the node (notifications, answers).
    pub pushes: u64,
    /// Websocket ping and pong frames, both ways.
    pub keepalives: u64,
}

impl Snapshot {
    /// Requests of every kind, HTTP and websocket.
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
            pushes: self.pushes - before.pushes,
            keepalives: self.keepalives - before.keepalives,
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
            pushes: self.pushes.load(Ordering::SeqCst),
            keepalives: self.keepalives.load(Ordering::SeqCst),
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

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// What every connection of the proxy shares.
#[derive(Clone)]
struct Shared {
    counts: Arc<Counts>,
    http: reqwest::Client,
    upstream: String,
    ws_upstream: String,
    /// Everything fails, as if the node were gone.
    down: Arc<AtomicBool>,
    /// Websockets are refused and open ones cut; HTTP still flows.
    ws_down: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn ws_refused(&self) -> bool {
        self.down.load(Ordering::SeqCst) || *self.ws_down.borrow()
    }
}

/// The running proxy; stops when dropped.
pub struct CountingProxy {
    /// `http://127.0.0.1:<port>`: give it to the hub as `rpc_url`.
    pub url: String,
    /// What it has counted.
    pub counts: Arc<Counts>,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward_http(shared: Shared, body: Bytes) -> Result<Response, Response> {
    let bad = |e: String| (axum::http::StatusCode::BAD_GATEWAY, e).into_response();
    shared.counts.count(&body);
    if shared.down.load(Ordering::SeqCst) {
        return Err(bad("node unreachable".to_owned()));
    }
    let resp = shared
        .http
        .post(&shared.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| bad(e.to_string()))?;
    let bytes = resp.bytes().await.map_err(|e| bad(e.to_string()))?;
    Ok(([("content-type", "application/json")], bytes).into_response())
}

fn upgrade(shared: Shared, ws: WebSocketUpgrade) -> Response {
    Counts::bump(&shared.counts.other);
    if shared.ws_refused() {
        return (axum::http::StatusCode::BAD_GATEWAY, "websocket refused").into_response();
    }
    ws.on_upgrade(move |socket| relay(shared, socket))
}

/// Relays frames between the hub's websocket and the node's until either side closes or the
/// proxy cuts websockets.
async fn relay(shared: Shared, hub: WebSocket) {
    let Ok((node, _)) = tokio_tungstenite::connect_async(&shared.ws_upstream).await else {
        return;
    };
    let (mut to_node, mut from_node) = node.split();
    let (mut to_hub, mut from_hub) = hub.split();
    let mut down = shared.ws_down.subscribe();
    let cut = async move {
        let _ = down.wait_for(|c| *c).await;
    };
    tokio::pin!(cut);
    let counts = &shared.counts;
    loop {
        tokio::select! {
            () = &mut cut => return,
            frame = from_hub.next() => {
                let out = match frame {
                    Some(Ok(Frame::Text(t))) => {
                        counts.count(t.as_bytes());
                        NodeFrame::text(t.as_str())
                    }
                    Some(Ok(Frame::Binary(b))) => NodeFrame::Binary(b),
                    Some(Ok(Frame::Ping(b))) => {
                        Counts::bump(&counts.keepalives);
                        NodeFrame::Ping(b)
                    }
                    Some(Ok(Frame::Pong(b))) => {
                        Counts::bump(&counts.keepalives);
                        NodeFrame::Pong(b)
                    }
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return,
                };
                if to_node.send(out).await.is_err() {
                    return;
                }
            }
            frame = from_node.next() => {
                let out = match frame {
                    Some(Ok(NodeFrame::Text(t))) => {
                        Counts::bump(&counts.pushes);
                        Frame::text(t.as_str())
                    }
                    Some(Ok(NodeFrame::Binary(b))) => Frame::Binary(b),
                    Some(Ok(NodeFrame::Ping(b))) => {
                        Counts::bump(&counts.keepalives);
                        Frame::Ping(b)
                    }
                    Some(Ok(NodeFrame::Pong(b))) => {
                        Counts::bump(&counts.keepalives);
                        Frame::Pong(b)
                    }
                    Some(Ok(NodeFrame::Frame(_))) => continue,
                    Some(Ok(NodeFrame::Close(_))) | Some(Err(_)) | None => return,
                };
                if to_hub.send(out).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl CountingProxy {
    /// Starts a proxy forwarding to `upstream` (the node's HTTP URL; its websocket is the
    /// same URL with `ws://`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let shared = Shared {
            counts: counts.clone(),
            http: reqwest::Client::new(),
            upstream: upstream.to_owned(),
            ws_upstream: upstream.replacen("http://", "ws://", 1),
            down: Arc::default(),
            ws_down: tokio::sync::watch::Sender::new(false),
        };
        let (post, get) = (shared.clone(), shared.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: Bytes| forward_http(post.clone(), body)).get(
                move |ws: WebSocketUpgrade| {
                    let get = get.clone();
                    async move { upgrade(get, ws) }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            counts,
            shared,
            task,
        })
    }

    /// From now on every request fails with 502 and every websocket is cut and refused, as
    /// if the node were gone.
    pub fn cut(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.ws_down.send_replace(true);
    }

    /// Cuts open websockets and refuses new ones; HTTP keeps flowing.
    pub fn cut_ws(&self) {
        self.shared.ws_down.send_replace(true);
    }

    /// Accepts websockets again (after [`CountingProxy::cut_ws`]).
    pub fn restore_ws(&self) {
        self.shared.ws_down.send_replace(false);
    }
}
