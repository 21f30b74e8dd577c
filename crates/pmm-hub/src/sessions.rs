//! MCP session lifecycle: rmcp's in-memory session manager with a bound on what it may hold.
//!
//! - Idle timeout: a session with no request for `mcp_session_idle_s` ends (rmcp's worker
//!   quits on its keep-alive, and the session is removed).
//! - Cap: at `mcp_max_sessions` live sessions, a new `initialize` evicts the session used
//!   longest ago, so abandoned sessions cannot exhaust memory and a live client is never
//!   refused a session.
//! - `DELETE` of a session that does not exist answers 404 ([`session_gate`]); rmcp answers
//!   202 for any id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::http_header::HEADER_SESSION_ID;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

use crate::guard::error_response;

/// Live sessions, their last use, and the bounds on them.
#[derive(Debug)]
pub struct Sessions {
    inner: LocalSessionManager,
    max: usize,
    /// Each session's last use as a tick of `clock`: an order, which is all eviction needs,
    /// and one that two uses in the same instant cannot tie.
    last_use: Mutex<Table>,
    clock: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    uses: HashMap<SessionId, u64>,
    /// Places taken for sessions being created.
    pending: usize,
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
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Self {
            inner,
            max,
            last_use: Mutex::new(Table::default()),
            clock: AtomicU64::new(0),
        }
    }

    /// Live sessions and the cap.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            live: self.table().uses.len(),
            max: self.max,
        }
    }

    /// The last-use table. A panic while it was held cannot leave it inconsistent (every
    /// update is one insert or remove), so a poisoned lock is used as it is.
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.last_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn touch(&self, id: &SessionId) {
        let now = self.tick();
        if let Some(t) = self.table().uses.get_mut(id) {
            *t = now;
        }
    }

    fn knows(&self, id: &str) -> bool {
        self.table().uses.contains_key(id)
    }

    /// Takes a place for one new session, and the sessions that must end to make room
    /// (used longest ago first). The victims leave the table and the place is counted in
    /// the same critical section, so concurrent `initialize`s never overshoot the cap.
    fn reserve(&self) -> Vec<SessionId> {
        let mut t = self.table();
        let excess = (t.uses.len() + t.pending + 1).saturating_sub(self.max);
        let mut by_age: Vec<(SessionId, u64)> = Vec::new();
        if excess > 0 {
            by_age = t.uses.iter().map(|(id, n)| (id.clone(), *n)).collect();
            by_age.sort_unstable_by_key(|(_, n)| *n);
            by_age.truncate(excess);
            for (id, _) in &by_age {
                t.uses.remove(id);
            }
        }
        t.pending += 1;
        by_age.into_iter().map(|(id, _)| id).collect()
    }

    /// Turns a place taken by [`Self::reserve`] into session `id` (or gives it back).
    fn settle(&self, id: Option<&SessionId>) {
        let now = self.tick();
        let mut t = self.table();
        t.pending -= 1;
        if let Some(id) = id {
            t.uses.insert(id.clone(), now);
        }
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        for id in self.reserve() {
            tracing::info!(session = %id, max = self.max, "MCP session cap reached: ending the session used longest ago");
            metrics::counter!("pmm_hub_mcp_sessions_evicted_total").increment(1);
            if let Err(e) = self.inner.close_session(&id).await {
                tracing::warn!(session = %id, error = %e, "ending an evicted MCP session failed");
            }
        }
        match self.inner.create_session().await {
            Ok((id, transport)) => {
                self.settle(Some(&id));
                Ok((id, transport))
            }
            Err(e) => {
                self.settle(None);
                Err(e)
            }
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.table().uses.remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }
}

/// Middleware on `/mcp`: `DELETE` of an unknown (ended, evicted or never opened) session is
/// 404, as the spec asks, instead of rmcp's unconditional 202.
pub async fn session_gate(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::DELETE
        && let Some(id) = req
            .headers()
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok())
        && !sessions.knows(id)
    {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no such MCP session (ended, idle too long, or never opened)",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cap_ends_the_session_used_longest_ago() -> Result<(), LocalSessionManagerError> {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let (a, _ta) = s.create_session().await?;
        let (b, _tb) = s.create_session().await?;
        s.touch(&a);
        let (c, _tc) = s.create_session().await?;
        assert!(s.knows(&a) && s.knows(&c));
        assert!(!s.knows(&b));
        assert!(!s.has_session(&b).await?);
        assert_eq!(s.stats().live, 2);
        s.close_session(&a).await?;
        assert_eq!(s.stats().live, 1);
        Ok(())
    }
}
