//! Admission control: a concurrency cap with a bounded FIFO queue that sheds with 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ProxyError;

/// Concurrency cap plus bounded wait queue.
#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    max_queue: usize,
    queued: AtomicUsize,
    queue_timeout: Duration,
    retry_after: Duration,
}

/// Decrements the queue count however the wait ends (granted, timed out, or the client left).
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    /// `max_concurrent` running, up to `max_queue` waiting at most `queue_timeout`.
    pub fn new(
        max_concurrent: usize,
        max_queue: usize,
        queue_timeout: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_queue,
            queued: AtomicUsize::new(0),
            queue_timeout,
            retry_after,
        }
    }

    /// Waits for a slot; the permit is held until the response (or stream) ends.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, ProxyError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let overloaded = ProxyError::Overloaded {
            message: "the proxy is at capacity, retry later".into(),
            retry_after: self.retry_after,
        };
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(overloaded);
        }
        let _slot = QueueSlot(&self.queued);
        match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(overloaded),
        }
    }

    /// Requests waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Requests holding a slot.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent
            .saturating_sub(self.permits.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sheds_when_cap_and_queue_are_full() {
        let a = Arc::new(Admission::new(
            1,
            1,
            Duration::from_secs(30),
            Duration::from_secs(2),
        ));
        let held = a.admit().await.expect("first request admitted");
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.admit().await.map(|_| ()) })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while a.queue_depth() < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiter never queued"
            );
            tokio::task::yield_now().await;
        }
        match a.admit().await {
            Err(ProxyError::Overloaded { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(2))
            }
            other => panic!("expected Overloaded, got {other:?}"),
        }
        assert_eq!(a.in_flight(), 1);
        drop(held);
        waiter
            .await
            .expect("waiter task")
            .expect("queued request admitted once the slot frees");
        assert_eq!(a.queue_depth(), 0);
    }

    #[tokio::test]
    async fn queue_wait_times_out_with_overloaded() {
        let a = Admission::new(1, 4, Duration::from_millis(20), Duration::from_secs(1));
        let _held = a.admit().await.expect("first request admitted");
        assert!(matches!(
            a.admit().await,
            Err(ProxyError::Overloaded { .. })
        ));
        assert_eq!(a.queue_depth(), 0);
    }
}
