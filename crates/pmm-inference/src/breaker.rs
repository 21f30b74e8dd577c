//! A per-upstream circuit breaker: closed, open for a while after N consecutive failures, then
//! half-open letting one probe through.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_started: Instant },
}

/// Circuit breaker state machine.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of a Copy value.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go to this upstream now. In half-open state only one probe passes;
    /// a probe that never reports (its client went away) is replaced after `open_for`.
    pub fn try_acquire(&self) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if now < until => false,
            State::Open { .. } => {
                *state = State::HalfOpen { probe_started: now };
                true
            }
            State::HalfOpen { probe_started }
                if now.duration_since(probe_started) < self.open_for =>
            {
                false
            }
            State::HalfOpen { .. } => {
                *state = State::HalfOpen { probe_started: now };
                true
            }
        }
    }

    /// The upstream answered properly.
    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// The upstream failed (connect error, timeout, 5xx, broken stream).
    pub fn record_failure(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.open_for,
            },
        };
    }

    /// True while requests are being rejected (open, or half-open with a probe in flight).
    pub fn is_open(&self) -> bool {
        let now = Instant::now();
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::HalfOpen { probe_started } => now.duration_since(probe_started) < self.open_for,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(30));
        assert!(b.try_acquire());
        b.record_failure();
        assert!(!b.is_open());
        b.record_failure();
        assert!(b.is_open());
        assert!(!b.try_acquire());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !b.try_acquire() {
            assert!(Instant::now() < deadline, "breaker never half-opened");
            std::thread::yield_now();
        }
        // Only one probe in half-open state.
        assert!(!b.try_acquire());
        b.record_success();
        assert!(!b.is_open());
        assert!(b.try_acquire());
    }

    #[test]
    fn failed_probe_reopens() {
        let b = Breaker::new(1, Duration::from_millis(10));
        b.record_failure();
        assert!(!b.try_acquire());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !b.try_acquire() {
            assert!(Instant::now() < deadline, "breaker never half-opened");
            std::thread::yield_now();
        }
        b.record_failure();
        assert!(b.is_open());
    }

    #[test]
    fn success_resets_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.record_failure();
        b.record_success();
        b.record_failure();
        assert!(!b.is_open());
    }
}
