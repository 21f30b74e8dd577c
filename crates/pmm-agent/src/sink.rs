//! Decisions on their way to Postgres: a bounded in-memory queue that survives a database
//! outage (oldest dropped, counted, beyond the bound) and one writer task that drains it in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pmm_store::{Decision, PgStore, StoreError};
use tokio::sync::{Mutex, Notify};

/// Pause before retrying a database that refused a write.
const RETRY: Duration = Duration::from_millis(500);

struct Inner {
    queue: Mutex<VecDeque<Decision>>,
    cap: usize,
    wake: Notify,
    drained: Notify,
    dropped: AtomicU64,
}

/// The queue's handle; clones share it.
#[derive(Clone)]
pub struct DecisionSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DecisionSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionSink")
            .field("cap", &self.inner.cap)
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Whether a failed insert means "Postgres is away, try again" rather than "this row is bad".
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::PostgresUnavailable { .. } => true,
        StoreError::Postgres(e) => e.as_db_error().is_none(),
        _ => false,
    }
}

impl DecisionSink {
    /// A queue of at most `cap` decisions and its writer task on `store`.
    pub fn spawn(store: PgStore, cap: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let sink = Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(VecDeque::new()),
                cap: cap.max(1),
                wake: Notify::new(),
                drained: Notify::new(),
                dropped: AtomicU64::new(0),
            }),
        };
        let writer = sink.clone();
        let task = tokio::spawn(async move { writer.write_loop(store).await });
        (sink, task)
    }

    /// Queues a decision; when the queue is full the oldest one is dropped and counted.
    pub async fn push(&self, d: Decision) {
        let mut q = self.inner.queue.lock().await;
        if q.len() >= self.inner.cap {
            q.pop_front();
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("pmm_agent_decisions_dropped_total").increment(1);
            tracing::warn!(
                cap = self.inner.cap,
                "decision buffer full: dropped the oldest decision"
            );
        }
        q.push_back(d);
        metrics::gauge!("pmm_agent_decisions_buffered").set(q.len() as f64);
        drop(q);
        self.inner.wake.notify_one();
    }

    /// Decisions not yet written.
    pub async fn pending(&self) -> usize {
        self.inner.queue.lock().await.len()
    }

    /// Decisions dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Waits at most `within` for the queue to empty; returns whether it did.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let drained = self.inner.drained.notified();
            if self.pending().await == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.pending().await == 0;
            }
        }
    }

    async fn write_loop(self, store: PgStore) {
        let mut outage = false;
        loop {
            let wake = self.inner.wake.notified();
            let next = self.inner.queue.lock().await.front().cloned();
            let Some(d) = next else {
                self.inner.drained.notify_waiters();
                wake.await;
                continue;
            };
            match store.insert_decision(&d).await {
                Ok(inserted) => {
                    if outage {
                        tracing::info!("Postgres is back: writing buffered decisions");
                        outage = false;
                    }
                    if !inserted {
                        metrics::counter!("pmm_agent_decisions_duplicate_total").increment(1);
                        tracing::warn!(pool = %d.pool, tick = d.tick, "pool already has a decision for this tick; not stored");
                    }
                    self.pop(&d).await;
                }
                Err(e) if retryable(&e) => {
                    if !outage {
                        tracing::warn!(error = %e, "Postgres unavailable: buffering decisions");
                        outage = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => {
                    metrics::counter!("pmm_agent_decisions_failed_total").increment(1);
                    tracing::error!(error = %e, pool = %d.pool, tick = d.tick, "decision refused by Postgres; dropped");
                    self.pop(&d).await;
                }
            }
        }
    }

    async fn pop(&self, d: &Decision) {
        let mut q = self.inner.queue.lock().await;
        if q.front().is_some_and(|f| f.id == d.id) {
            q.pop_front();
        }
        metrics::gauge!("pmm_agent_decisions_buffered").set(q.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(tick: u64) -> Decision {
        Decision {
            id: uuid::Uuid::new_v4(),
            decided_at: chrono::Utc::now(),
            tick,
            chain_id: 31337,
            pool: "0xpool".into(),
            input_hash: "sha256:x".into(),
            state: serde_json::Value::Null,
            model: "m".into(),
            prompt_version: "p".into(),
            tool_surface_version: "t".into(),
            proposal: None,
            baseline_proposal: None,
            action_matches_baseline: None,
            drift_bps: None,
            drift: None,
            verdict: "no_proposal".into(),
            matched_rule: None,
            simulation: None,
            tx_hash: None,
            mode: "observe".into(),
            trace_id: None,
            error: None,
            block_number: None,
            prompt_hash: None,
            model_digest: None,
            seed: None,
            temperature: None,
            raw_output: None,
            parse_error: None,
            risk: None,
            latencies_ms: None,
            worker: None,
            lease_fence: None,
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_keeps_the_newest_decisions_up_to_the_bound() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let store =
            PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"), 1).unwrap();
        let (sink, task) = DecisionSink::spawn(store, 3);
        for tick in 0..5 {
            sink.push(decision(tick)).await;
        }
        assert_eq!(sink.dropped(), 2);
        assert_eq!(sink.pending().await, 3);
        let ticks: Vec<u64> = sink
            .inner
            .queue
            .lock()
            .await
            .iter()
            .map(|d| d.tick)
            .collect();
        assert_eq!(ticks, vec![2, 3, 4], "the oldest are dropped");
        assert!(!sink.flush(Duration::from_millis(300)).await);
        task.abort();
    }
}
