//! The HTTP layer as a plain HTTP/1.1 client sees it: keep-alive connections survive early
//! 401 and 413 answers, every 4xx is JSON, Host/Origin are checked on every route, callers are
//! rate-limited, and a client that never finishes its headers is cut off.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One HTTP/1.1 response as read off the wire.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn closes(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive connection speaking just enough HTTP/1.1: every response must come with a
/// `Content-Length`, as the hub's do.
struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            io: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    async fn send(&mut self, head: &str, body: &[u8]) -> anyhow::Result<Reply> {
        self.io.get_mut().write_all(head.as_bytes()).await?;
        self.io.get_mut().write_all(body).await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        anyhow::ensure!(
            self.io.read_line(&mut line).await? > 0,
            "connection closed before a response"
        );
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?
            .parse()?;
        let mut headers = BTreeMap::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .ok_or_else(|| anyhow::anyhow!("no content-length: {headers:?}"))?
            .parse()?;
        let mut body = vec![0; len];
        self.io.read_exact(&mut body).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn post(addr: SocketAddr, path: &str, token: Option<&str>, body_len: usize) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )
}

fn call_body(tool: &str, params: Value) -> Vec<u8> {
    json!({"tool": tool, "params": params})
        .to_string()
        .into_bytes()
}

/// 900 requests over three keep-alive connections: a third unauthenticated (each with a body
/// the hub refuses before reading), a ninth oversized (2 MiB against the 1 MiB limit), the
/// rest valid calls. Every one is answered, in JSON, and no connection is lost on the way.
#[tokio::test]
async fn keep_alive_connections_survive_early_errors() -> anyhow::Result<()> {
    let mut fx = fixture().await?;
    fx.cfg.rate_limit_per_s = 100_000;
    fx.cfg.rate_limit_burst = 100_000;
    let hub = start(&fx.cfg).await?;
    let addr = hub.addr;
    let pool = json!({"pool": fx.dsp.to_string()});
    let small = call_body("dodo.get_pool_state", pool.clone());
    let oversized = vec![b' '; 2 << 20];

    let mut tasks = Vec::new();
    for c in 0..3usize {
        let small = small.clone();
        let oversized = oversized.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut counts: BTreeMap<(u16, &'static str), usize> = BTreeMap::new();
            let mut reconnects = 0usize;
            for i in 0..300usize {
                let n = c * 300 + i;
                let (kind, reply) = match n % 9 {
                    0 | 3 | 6 => (
                        "unauthenticated",
                        conn.send(&post(addr, "/mcp/call", None, small.len()), &small)
                            .await?,
                    ),
                    1 => (
                        "oversized",
                        conn.send(
                            &post(addr, "/mcp/call", Some(AGENT), oversized.len()),
                            &oversized,
                        )
                        .await?,
                    ),
                    _ => (
                        "valid",
                        conn.send(&post(addr, "/mcp/call", Some(AGENT), small.len()), &small)
                            .await?,
                    ),
                };
                let body = reply.json();
                match (kind, reply.status) {
                    ("valid", 200) => {
                        anyhow::ensure!(body["result"]["pool_type"] == "dsp", "{body}")
                    }
                    (_, 401 | 413) => {
                        anyhow::ensure!(body["error"]["code"].is_string(), "{body}");
                        anyhow::ensure!(body["error"]["message"].is_string(), "{body}");
                    }
                    _ => anyhow::bail!("{kind}: {} {body}", reply.status),
                }
                *counts.entry((reply.status, kind)).or_default() += 1;
                if reply.closes() {
                    reconnects += 1;
                    conn = Conn::open(addr).await?;
                }
            }
            anyhow::Ok((counts, reconnects))
        }));
    }
    let mut counts: BTreeMap<(u16, &'static str), usize> = BTreeMap::new();
    let mut reconnects = 0;
    for t in tasks {
        let (c, r) = t.await??;
        for (k, v) in c {
            *counts.entry(k).or_default() += v;
        }
        reconnects += r;
    }
    println!("responses by (status, kind): {counts:?}; reconnects: {reconnects}");
    let expected: BTreeMap<(u16, &str), usize> = [
        ((200, "valid"), 500),
        ((401, "unauthenticated"), 300),
        ((413, "oversized"), 100),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert_eq!(counts.values().sum::<usize>(), 900);
    // Bounded bodies are drained, so the three connections carried all 900.
    assert_eq!(reconnects, 0);

    // A body too large to drain: the answer says the connection ends, and it does.
    let mut conn = Conn::open(addr).await?;
    let reply = conn
        .send(&post(addr, "/mcp/call", Some(AGENT), 64 << 20), b"")
        .await?;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"]["code"], "payload_too_large");
    assert!(reply.closes(), "{:?}", reply.headers);
    hub.shutdown().await;
    Ok(())
}

/// Host and Origin on every route, the per-caller rate limit, the concurrency limit, and the
/// header- and body-read timeouts.
#[tokio::test]
async fn host_origin_rate_limit_and_header_timeout() -> anyhow::Result<()> {
    let mut fx = fixture().await?;
    fx.cfg.rate_limit_per_s = 1;
    fx.cfg.rate_limit_burst = 3;
    fx.cfg.header_read_timeout_ms = 300;
    fx.cfg.body_read_timeout_ms = 3_000;
    fx.cfg.max_concurrent_requests = 1;
    let hub = start(&fx.cfg).await?;
    let addr = hub.addr;
    let body = call_body("dodo.no_such_tool", json!({}));
    let mut conn = Conn::open(addr).await?;

    // A rebinding attacker's Host, on a route without auth and on the tool route.
    for path in ["/health", "/mcp/call", "/mcp"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: attacker.example:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            addr.port(),
            body.len()
        );
        let r = conn.send(&head, &body).await?;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.json()["error"]["code"], "forbidden_host", "{path}");
    }
    // A foreign Origin is refused; the same origin as the Host is served.
    let with_origin = |origin: &str| {
        format!(
            "POST /mcp/call HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
             Authorization: Bearer {AGENT}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
    };
    let r = conn
        .send(&with_origin("http://evil.example"), &body)
        .await?;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden_origin");
    let r = conn
        .send(&with_origin(&format!("http://{addr}")), &body)
        .await?;
    assert_eq!(r.status, 404, "{}", r.json());
    assert_eq!(r.json()["error"]["code"], "unknown_tool");

    // Burst of 3 (one spent above), then 429 with Retry-After, for this caller only.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = conn
            .send(&post(addr, "/mcp/call", Some(AGENT), body.len()), &body)
            .await?;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.json()["error"]["code"], "rate_limited");
            assert!(r.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [404, 404, 429]);
    let r = conn
        .send(&post(addr, "/mcp/call", Some(OPERATOR), body.len()), &body)
        .await?;
    assert_eq!(r.status, 404);

    // A body that never arrives holds the one request slot until the body-read timeout:
    // meanwhile every other request gets 503 with Retry-After; then the slow one gets 400.
    let mut held = Conn::open(addr).await?;
    held.io
        .get_mut()
        .write_all(post(addr, "/mcp/call", Some(OPERATOR), body.len()).as_bytes())
        .await?;
    held.io.get_mut().write_all(&body[..4]).await?;
    let busy = poll(Duration::from_secs(3), || async {
        let mut c = Conn::open(addr).await?;
        let r = c
            .send(
                &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
                b"",
            )
            .await?;
        Ok((r.status == 503).then_some(r))
    })
    .await?;
    assert_eq!(busy.json()["error"]["code"], "overloaded");
    assert_eq!(
        busy.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    let r = tokio::time::timeout(Duration::from_secs(20), held.read_reply()).await??;
    assert_eq!(r.status, 400, "{}", r.json());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("body-read timeout")),
        "{}",
        r.json()
    );
    assert!(r.closes(), "{:?}", r.headers);

    // Headers never finished: the hub closes the connection after the timeout.
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(b"POST /mcp/call HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await?;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "connection with unfinished headers still open after 10 s"
    );

    // Zero limits are refused at start, naming the key.
    let mut bad = fx.cfg.clone();
    bad.max_concurrent_requests = 0;
    let err = pmm_hub::serve(&bad, None)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("max_concurrent_requests")),
        "{err:?}"
    );
    hub.shutdown().await;
    Ok(())
}
