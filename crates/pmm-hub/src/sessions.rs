//! MCP sessions as a table the hub owns, in front of rmcp's stateless Streamable HTTP service.
//!
//! The hub's MCP server is tools-only: it never sends a client anything but the answer to its
//! request, so a session needs no task, channel or buffer of its own. rmcp serves every
//! request statelessly; a session is one row here (its id and last use, under 100 bytes)
//! instead of rmcp's per-session worker (two tasks and six channels, ~130 kB each), which is
//! what made 5,000 abandoned sessions cost 600 MB and leave allocator metadata behind.
//!
//! - `initialize` (no `Mcp-Session-Id`) opens a session: the answer carries its id.
//! - A request naming a session that ended (deleted, idle, evicted) or never existed is 404,
//!   as the spec asks, so the client starts a new one.
//! - Requests of the session protocols (before 2026-07-28) without a session id are 400;
//!   2026-07-28 requests need no session and go straight to rmcp.
//! - `DELETE` ends the session (204).
//! - Idle timeout: a session unused for `mcp_session_idle_s` ends; [`Sessions::sweep`]
//!   frees its row.
//! - Cap: at `mcp_max_sessions` live sessions, a new `initialize` ends the session used
//!   longest ago, so abandoned sessions cannot exhaust memory and a live client is never
//!   refused a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, ProtocolVersion};
use rmcp::transport::common::http_header::{HEADER_MCP_PROTOCOL_VERSION, HEADER_SESSION_ID};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::guard::error_response;

/// Live sessions, their last use, and the bounds on them.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    max: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    rows: HashMap<Arc<str>, Use>,
    /// Orders uses for eviction: two uses in the same instant cannot tie.
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    at: Instant,
    tick: u64,
}

/// What `/health` reports of the sessions.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SessionStats {
    /// Sessions open now.
    pub live: usize,
    /// The cap.
    pub max: usize,
}

impl Sessions {
    /// Sessions that end after `idle` without a request, at most `max` at once.
    pub fn new(idle: Duration, max: usize) -> Self {
        Self {
            idle,
            max,
            table: Mutex::new(Table::default()),
        }
    }

    /// Live sessions and the cap.
    pub fn stats(&self) -> SessionStats {
        let now = Instant::now();
        let t = self.table();
        SessionStats {
            live: t.rows.values().filter(|u| self.alive(u, now)).count(),
            max: self.max,
        }
    }

    /// The table. A panic while it was held cannot leave it inconsistent (every update is
    /// one insert or remove), so a poisoned lock is used as it is.
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn alive(&self, u: &Use, now: Instant) -> bool {
        now.saturating_duration_since(u.at) < self.idle
    }

    /// Opens a session: its new id. At the cap, the session used longest ago ends first.
    pub fn open(&self) -> Arc<str> {
        let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let now = Instant::now();
        let mut t = self.table();
        if t.rows.len() >= self.max {
            self.expire(&mut t, now);
        }
        if t.rows.len() >= self.max
            && let Some(oldest) = t
                .rows
                .iter()
                .min_by_key(|(_, u)| u.tick)
                .map(|(id, _)| id.clone())
        {
            t.rows.remove(&oldest);
            tracing::info!(session = %oldest, max = self.max, "MCP session cap reached: ended the session used longest ago");
            metrics::counter!("pmm_hub_mcp_sessions_evicted_total").increment(1);
        }
        t.clock += 1;
        let tick = t.clock;
        t.rows.insert(id.clone(), Use { at: now, tick });
        id
    }

    /// Marks session `id` used now; `false` when it is not live (ended, idle too long,
    /// evicted, or never opened).
    pub fn touch(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut t = self.table();
        t.clock += 1;
        let tick = t.clock;
        match t.rows.get_mut(id) {
            Some(u) if self.alive(u, now) => {
                *u = Use { at: now, tick };
                true
            }
            Some(_) => {
                t.rows.remove(id);
                false
            }
            None => false,
        }
    }

    /// Ends session `id`; `false` when it was not live.
    pub fn end(&self, id: &str) -> bool {
        let now = Instant::now();
        self.table()
            .rows
            .remove(id)
            .is_some_and(|u| self.alive(&u, now))
    }

    /// Drops the rows of sessions that idled out: how many.
    fn expire(&self, t: &mut Table, now: Instant) -> usize {
        let before = t.rows.len();
        t.rows.retain(|_, u| self.alive(u, now));
        before - t.rows.len()
    }

    /// Frees the rows of sessions that idled out, and the table's room they took.
    pub fn sweep(&self) {
        let mut t = self.table();
        let ended = self.expire(&mut t, Instant::now());
        // Room for a burst of sessions is kept only while it is in use.
        if t.rows.capacity() > 64 && t.rows.len() < t.rows.capacity() / 4 {
            let keep = t.rows.len() * 2;
            t.rows.shrink_to(keep);
        }
        drop(t);
        if ended > 0 {
            tracing::debug!(ended, "MCP sessions idled out");
        }
    }

    /// Sweeps every half idle timeout (at least each 100 ms, at most each 10 s) until `stop`
    /// or until the sessions are dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) {
        let every = (self.idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let sessions: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(s) = sessions.upgrade() else { return };
                s.sweep();
            }
        });
    }
}

/// What a POST without a session id asks for.
#[derive(Debug, PartialEq, Eq)]
enum Opening {
    /// `initialize`: a new session.
    Initialize,
    /// A session protocol's request or notification: it needs a session.
    NeedsSession,
    /// A 2026-07-28 request, or one rmcp answers with a JSON-RPC error (not JSON, a batch).
    Stateless,
}

/// Sorts a POST without a session id, as rmcp routes it: `initialize` and any message
/// whose protocol version (`_meta`, else the `MCP-Protocol-Version` header, else 2025-03-26)
/// has the handshake belong to a session; `server/discover` and later versions do not.
fn opening(headers: &HeaderMap, body: &[u8]) -> Opening {
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(body) else {
        return Opening::Stateless;
    };
    let header = || {
        headers
            .get(HEADER_MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| serde_json::from_value(serde_json::Value::String(s.to_owned())).ok())
    };
    let version: Option<ProtocolVersion> = match &message {
        ClientJsonRpcMessage::Request(r) => match &r.request {
            ClientRequest::InitializeRequest(_) => return Opening::Initialize,
            ClientRequest::DiscoverRequest(_) => return Opening::Stateless,
            other => other.get_meta().protocol_version().or_else(header),
        },
        _ => header(),
    };
    if version.is_none_or(|v| v.has_initialize()) {
        Opening::NeedsSession
    } else {
        Opening::Stateless
    }
}

/// Middleware on `/mcp`: sessions as the module describes, before rmcp sees the request.
pub async fn session_gate(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
    next: Next,
) -> Response {
    match req
        .headers()
        .get(HEADER_SESSION_ID)
        .map(HeaderValue::to_str)
    {
        Some(Ok(id)) => {
            let delete = req.method() == Method::DELETE;
            let live = if delete {
                sessions.end(id)
            } else {
                sessions.touch(id)
            };
            if !live {
                return error_response(
                    StatusCode::NOT_FOUND,
                    "unknown_session",
                    "no such MCP session (ended, idle too long, or never opened): initialize a new one",
                );
            }
            if delete {
                return Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            next.run(req).await
        }
        Some(Err(_)) => error_response(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "Mcp-Session-Id is not visible ASCII, so it names no session",
        ),
        None if req.method() == Method::DELETE => session_required(),
        None if req.method() == Method::POST => {
            let (parts, body) = req.into_parts();
            // The body limit and read timeout wrap this body already.
            let bytes = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => return unread_body(&e),
            };
            let opening = opening(&parts.headers, &bytes);
            let req = Request::from_parts(parts, Body::from(bytes));
            match opening {
                Opening::NeedsSession => session_required(),
                Opening::Stateless => next.run(req).await,
                Opening::Initialize => {
                    let mut resp = next.run(req).await;
                    if resp.status() == StatusCode::OK {
                        let id = sessions.open();
                        // A uuid is always a valid header value; a session no client can
                        // name would only wait for its idle timeout.
                        if let Ok(v) = HeaderValue::from_str(&id) {
                            resp.headers_mut().insert(HEADER_SESSION_ID, v);
                        } else {
                            sessions.end(&id);
                        }
                    }
                    resp
                }
            }
        }
        None => next.run(req).await,
    }
}

fn session_required() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "session_required",
        "Mcp-Session-Id is required: send initialize first and use the id it returns",
    )
}

/// The answer to a body that could not be read: 413 when too large; otherwise (too slow,
/// broken) 400, as `/mcp/call` answers it.
fn unread_body(e: &axum::Error) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body larger than the hub accepts",
            );
        }
        source = err.source();
    }
    error_response(
        StatusCode::BAD_REQUEST,
        "bad_request",
        &format!("request body could not be read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_cap_ends_the_session_used_longest_ago() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let a = s.open();
        let b = s.open();
        assert!(s.touch(&a));
        let c = s.open();
        assert!(s.touch(&a) && s.touch(&c));
        assert!(!s.touch(&b), "b was used longest ago");
        assert_eq!(s.stats().live, 2);
        assert!(s.end(&a));
        assert!(!s.end(&a), "an ended session ends once");
        assert_eq!(s.stats().live, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_ends_and_its_row_is_freed() {
        let s = Sessions::new(Duration::from_secs(10), 10_000);
        let kept = s.open();
        let ids: Vec<_> = (0..5_000).map(|_| s.open()).collect();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(s.touch(&kept));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(s.stats().live, 1, "only the session used 6 s ago is live");
        assert!(!s.touch(&ids[0]));
        s.sweep();
        let t = s.table();
        assert_eq!(t.rows.len(), 1);
        assert!(t.rows.capacity() < 64, "capacity {}", t.rows.capacity());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_and_a_slow_one_400() {
        let limited = http_body_util::Limited::new(Body::from(vec![b'x'; 10]), 5);
        let Err(e) = axum::body::to_bytes(Body::new(limited), usize::MAX).await else {
            panic!("a 10-byte body passed a 5-byte limit");
        };
        assert_eq!(unread_body(&e).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let slow = Body::from_stream(futures::stream::once(async {
            Err::<axum::body::Bytes, _>(crate::guard::BodyTimeout)
        }));
        let Err(e) = axum::body::to_bytes(slow, usize::MAX).await else {
            panic!("a failing body was read");
        };
        assert_eq!(
            unread_body(&e).status(),
            StatusCode::BAD_REQUEST,
            "as /mcp/call"
        );
        assert!(e.to_string().contains("body-read timeout"), "{e}");
    }

    #[test]
    fn posts_without_a_session_are_sorted_as_rmcp_routes_them() {
        let h = HeaderMap::new();
        let mut v2026 = HeaderMap::new();
        v2026.insert(
            HEADER_MCP_PROTOCOL_VERSION,
            HeaderValue::from_static("2026-07-28"),
        );
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(opening(&h, init), Opening::Initialize);
        assert_eq!(opening(&v2026, init), Opening::Initialize);
        assert_eq!(opening(&h, list), Opening::NeedsSession);
        assert_eq!(opening(&h, note), Opening::NeedsSession);
        assert_eq!(opening(&v2026, list), Opening::Stateless);
        assert_eq!(opening(&h, b"{not json"), Opening::Stateless);
        assert_eq!(opening(&h, b"[]"), Opening::Stateless);
    }
}
