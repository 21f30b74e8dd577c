//! The head source against a private anvil: heads pushed over its websocket, polling when the
//! endpoint speaks only HTTP, and falling back to polling (then resubscribing) when the
//! websocket is cut. A small TCP relay between the source and anvil refuses or cuts
//! websockets on demand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::providers::Provider;
use pmm_chain::{ChainClient, HeadMode, HeadSource, HeadUpdate};
use pmm_testkit::devnet::Devnet;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays TCP connections to anvil; a websocket upgrade is refused (400) while `ws_allowed`
/// is false, and [`Relay::cut_ws`] drops every relayed websocket. Stops when dropped.
struct Relay {
    url: String,
    ws_allowed: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_ws();
    }
}

impl Relay {
    async fn start(upstream: &str, ws_allowed: bool) -> anyhow::Result<Self> {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let allowed = Arc::new(AtomicBool::new(ws_allowed));
        let sockets: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (allowed2, sockets2) = (allowed.clone(), sockets.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (upstream, allowed, sockets) =
                    (upstream.clone(), allowed2.clone(), sockets2.clone());
                let relay = tokio::spawn(async move {
                    let _ = relay_one(conn, &upstream, &allowed).await;
                });
                if let Ok(mut s) = sockets.lock() {
                    s.push(relay);
                }
            }
        });
        Ok(Self {
            url,
            ws_allowed: allowed,
            sockets,
            task,
        })
    }

    /// Drops every relayed connection (websockets among them) and refuses new websockets.
    fn cut_ws(&self) {
        self.ws_allowed.store(false, Ordering::SeqCst);
        if let Ok(mut s) = self.sockets.lock() {
            for t in s.drain(..) {
                t.abort();
            }
        }
    }

    fn allow_ws(&self) {
        self.ws_allowed.store(true, Ordering::SeqCst);
    }
}

async fn relay_one(
    mut conn: TcpStream,
    upstream: &str,
    allowed: &AtomicBool,
) -> std::io::Result<()> {
    // The first request's head decides: an upgrade, or plain HTTP relayed byte for byte.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let upgrade = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("upgrade: websocket");
    if upgrade && !allowed.load(Ordering::SeqCst) {
        conn.write_all(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await?;
        return Ok(());
    }
    let mut node = TcpStream::connect(upstream).await?;
    node.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut node).await?;
    Ok(())
}

/// Waits up to `within` for an update satisfying `want`.
async fn next_where(
    source: &mut HeadSource,
    within: Duration,
    want: impl Fn(&HeadUpdate) -> bool,
) -> anyhow::Result<HeadUpdate> {
    let deadline = tokio::time::Instant::now() + within;
    if let Some(u) = source.latest().filter(&want) {
        return Ok(u);
    }
    loop {
        match tokio::time::timeout_at(deadline, source.changed()).await {
            Ok(Some(u)) if want(&u) => return Ok(u),
            Ok(Some(_)) => continue,
            Ok(None) => anyhow::bail!("head source stopped"),
            Err(_) => anyhow::bail!("no such head within {within:?}: {:?}", source.latest()),
        }
    }
}

async fn mine(devnet: &Devnet) -> anyhow::Result<u64> {
    let p = devnet.provider();
    p.raw_request::<_, Value>("evm_mine".into(), ()).await?;
    Ok(p.get_block_number().await?)
}

#[tokio::test]
async fn heads_arrive_over_the_websocket_without_polling() -> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let client = ChainClient::connect(devnet.rpc_url()).await?;
    // A poll interval far beyond the deadlines below: only the subscription can deliver.
    let mut source = HeadSource::spawn(&client, HeadMode::Subscribe, Duration::from_secs(600));
    next_where(&mut source, Duration::from_secs(20), |u| u.live).await?;
    for _ in 0..3 {
        let n = mine(&devnet).await?;
        let u = next_where(&mut source, Duration::from_secs(20), |u| u.number >= n).await?;
        assert_eq!(u.number, n);
        assert!(u.live, "{u:?}");
        assert!(u.is_fresh(Duration::ZERO), "a live head is current");
    }
    Ok(())
}

#[tokio::test]
async fn an_http_only_endpoint_is_polled_and_a_cut_websocket_falls_back_then_resubscribes()
-> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let poll = Duration::from_millis(100);

    // HTTP only: every head is polled, none vouched for by a subscription.
    let http_only = Relay::start(devnet.rpc_url(), false).await?;
    let client = ChainClient::connect(&http_only.url).await?;
    let mut source = HeadSource::spawn(&client, HeadMode::Subscribe, poll);
    for _ in 0..2 {
        let n = mine(&devnet).await?;
        let u = next_where(&mut source, Duration::from_secs(20), |u| u.number >= n).await?;
        assert!(!u.live, "{u:?}");
        assert!(u.is_fresh(Duration::from_secs(60)), "{u:?}");
    }
    drop(source);

    // Subscribed, then cut: the head stops being vouched for, polling carries on.
    let relay = Relay::start(devnet.rpc_url(), true).await?;
    let client = ChainClient::connect(&relay.url).await?;
    let mut source = HeadSource::spawn(&client, HeadMode::Subscribe, poll);
    next_where(&mut source, Duration::from_secs(20), |u| u.live).await?;
    relay.cut_ws();
    next_where(&mut source, Duration::from_secs(20), |u| !u.live).await?;
    let n = mine(&devnet).await?;
    let u = next_where(&mut source, Duration::from_secs(20), |u| u.number >= n).await?;
    assert!(!u.live, "polled while the websocket is refused: {u:?}");

    // The websocket is back: the source resubscribes and heads are pushed again.
    relay.allow_ws();
    next_where(&mut source, Duration::from_secs(30), |u| u.live).await?;
    let n = mine(&devnet).await?;
    let u = next_where(&mut source, Duration::from_secs(20), |u| u.number >= n).await?;
    assert!(u.live, "{u:?}");

    // Poll mode never subscribes, even where it could.
    let mut polled = HeadSource::spawn(&client, HeadMode::Poll, poll);
    let n = mine(&devnet).await?;
    let u = next_where(&mut polled, Duration::from_secs(20), |u| u.number >= n).await?;
    assert!(!u.live, "{u:?}");
    Ok(())
}
