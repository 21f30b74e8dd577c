//! A background writer that turns many single tool-call records into batched inserts, so the
//! hub's request path only pays for a channel send.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Result, StoreError};
use crate::pg::PgStore;
use crate::tool_calls::ToolCall;

/// Tuning of a [`ToolCallWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Flush as soon as this many rows are buffered.
    pub max_batch: usize,
    /// Flush buffered rows at least this often.
    pub flush_interval: Duration,
    /// Records that may wait in the channel; `record` waits when it is full (backpressure
    /// rather than silently dropping audit rows).
    pub capacity: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 500,
            flush_interval: Duration::from_millis(200),
            capacity: 10_000,
        }
    }
}

/// Rows the writer handled over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows written.
    pub written: u64,
    /// Rows whose batch failed to write (each failure is logged).
    pub failed: u64,
}

/// Handle of the background writer task.
#[derive(Debug)]
pub struct ToolCallWriter {
    sender: mpsc::Sender<ToolCall>,
    task: JoinHandle<WriterStats>,
}

impl ToolCallWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: PgStore, config: WriterConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        let task = tokio::spawn(run(store, config, receiver));
        Self { sender, task }
    }

    /// Queues one record; waits only while the queue is full.
    pub async fn record(&self, call: ToolCall) -> Result<()> {
        self.sender
            .send(call)
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Flushes everything queued and stops the task.
    pub async fn shutdown(self) -> Result<WriterStats> {
        drop(self.sender);
        self.task.await.map_err(|_| StoreError::WriterClosed)
    }
}

async fn run(
    store: PgStore,
    config: WriterConfig,
    mut receiver: mpsc::Receiver<ToolCall>,
) -> WriterStats {
    let max_batch = config.max_batch.max(1);
    let mut stats = WriterStats::default();
    let mut buffer = Vec::with_capacity(max_batch);
    let mut ticker = tokio::time::interval(config.flush_interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut buffer, max_batch) => {
                if received == 0 {
                    flush(&store, &mut buffer, &mut stats).await;
                    return stats;
                }
                if buffer.len() >= max_batch {
                    flush(&store, &mut buffer, &mut stats).await;
                }
            }
            _ = ticker.tick() => flush(&store, &mut buffer, &mut stats).await,
        }
    }
}

async fn flush(store: &PgStore, buffer: &mut Vec<ToolCall>, stats: &mut WriterStats) {
    if buffer.is_empty() {
        return;
    }
    let rows = buffer.len() as u64;
    match store.insert_tool_calls(buffer).await {
        Ok(written) => stats.written += written,
        Err(e) => {
            stats.failed += rows;
            tracing::error!(error = %e, rows, "tool_calls batch write failed");
        }
    }
    buffer.clear();
}
