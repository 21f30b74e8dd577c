//! The `tool_calls` writer: callers never wait on Postgres.
//!
//! Rows go into a bounded in-memory queue; one task writes them in batches. While Postgres
//! is unreachable the rows stay queued and are replayed once it answers (row ids are chosen
//! here, so a replay of a batch that was in fact written does not duplicate it). When the
//! queue is full the oldest rows are dropped and counted; `/health` reports all of it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmm_store::{PgStore, ToolCall, ToolOutcome};
use serde::Serialize;
use tokio::sync::Notify;

/// Rows per insert.
const BATCH: usize = 500;
/// Longest wait between retries while Postgres is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What `/health` shows about the log.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ToolLogStatus {
    /// `disabled` (no DATABASE_URL), `ok`, or `retrying` (the last write failed).
    pub state: &'static str,
    /// Rows waiting to be written.
    pub pending: usize,
    /// Queue capacity.
    pub capacity: usize,
    /// Rows written since start.
    pub written: u64,
    /// Rows dropped because the queue was full.
    pub dropped: u64,
    /// Last write error, if the last write failed.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<(VecDeque<ToolCall>, ToolLogStatus)>,
    /// Wakes the writer: rows were queued.
    notify: Notify,
    /// Wakes [`ToolLog::flush`]: a batch was written.
    written: Notify,
}

/// Handle to the log; cheap to clone.
#[derive(Debug, Clone)]
pub struct ToolLog {
    shared: Option<Arc<Shared>>,
}

impl ToolLog {
    /// A log that records nothing (no database configured).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Starts the writer task over `pg`.
    pub fn spawn(pg: PgStore, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new((
                VecDeque::with_capacity(capacity.min(4096)),
                ToolLogStatus {
                    state: "ok",
                    capacity,
                    ..ToolLogStatus::default()
                },
            )),
            notify: Notify::new(),
            written: Notify::new(),
        });
        tokio::spawn(writer(pg, Arc::clone(&shared)));
        Self {
            shared: Some(shared),
        }
    }

    /// Queues a row; never blocks on I/O.
    ///
    /// NUL characters, which Postgres refuses in text and JSONB, become U+FFFD first: a caller
    /// could otherwise put one in its params and wedge every later audit write behind a batch
    /// that can never commit.
    pub fn record(&self, mut call: ToolCall) {
        let Some(shared) = &self.shared else { return };
        scrub_nul_row(&mut call);
        if let Ok(mut q) = shared.queue.lock() {
            let (rows, status) = &mut *q;
            if rows.len() >= status.capacity {
                rows.pop_front();
                status.dropped += 1;
            }
            rows.push_back(call);
            status.pending = rows.len();
        }
        shared.notify.notify_one();
    }

    /// Waits until every queued row is written, at most `within`; `false` when rows are left
    /// (Postgres down or slow). Shutdown calls it so a stop does not lose the last rows.
    pub async fn flush(&self, within: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let drained = async {
            loop {
                // Registered before the check, so a write between the two still wakes us.
                let written = shared.written.notified();
                if shared.queue.lock().map_or(true, |q| q.0.is_empty()) {
                    return;
                }
                written.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }

    /// Current status.
    pub fn status(&self) -> ToolLogStatus {
        match &self.shared {
            None => ToolLogStatus {
                state: "disabled",
                ..ToolLogStatus::default()
            },
            Some(s) => s.queue.lock().map(|q| q.1.clone()).unwrap_or_default(),
        }
    }
}

async fn writer(pg: PgStore, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let batch: Vec<ToolCall> = match shared.queue.lock() {
            Ok(q) => q.0.iter().take(BATCH).cloned().collect(),
            Err(_) => return,
        };
        if batch.is_empty() {
            shared.notify.notified().await;
            continue;
        }
        match pg.insert_tool_calls(&batch).await {
            Ok(_) => {
                backoff = Duration::from_millis(100);
                if let Ok(mut q) = shared.queue.lock() {
                    let (rows, status) = &mut *q;
                    // Rows dropped meanwhile may have shifted the queue: remove by id.
                    let written: std::collections::HashSet<_> =
                        batch.iter().map(|c| c.id).collect();
                    rows.retain(|c| !written.contains(&c.id));
                    status.written += batch.len() as u64;
                    status.pending = rows.len();
                    status.state = "ok";
                    status.last_error = None;
                }
                shared.written.notify_waiters();
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "tool_calls write failed; will replay");
                if let Ok(mut q) = shared.queue.lock() {
                    q.1.state = "retrying";
                    q.1.last_error = Some(e.to_string());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Replaces every NUL in a row's text and JSON with U+FFFD (see [`ToolLog::record`]).
fn scrub_nul_row(call: &mut ToolCall) {
    for text in [&mut call.caller, &mut call.tool] {
        scrub_nul_str(text);
    }
    for text in [
        &mut call.verdict,
        &mut call.matched_rule,
        &mut call.trace_id,
    ]
    .into_iter()
    .flatten()
    {
        scrub_nul_str(text);
    }
    scrub_nul_json(&mut call.params);
    match &mut call.outcome {
        ToolOutcome::Ok(value) => scrub_nul_json(value),
        ToolOutcome::Err(text) => scrub_nul_str(text),
    }
}

fn scrub_nul_str(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

fn scrub_nul_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => scrub_nul_str(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_nul_json),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, mut item) in entries {
                    scrub_nul_str(&mut key);
                    scrub_nul_json(&mut item);
                    map.insert(key, item);
                }
            } else {
                map.values_mut().for_each(scrub_nul_json);
            }
        }
        _ => {}
    }
}
