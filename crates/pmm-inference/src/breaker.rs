//! A per-upstream circuit breaker: closed, open for a while after N consecutive failures (or at
//! once after a stall), then half-open letting one trial through.
//!
//! Every grant carries the breaker's epoch (how often it has opened). An outcome reported with
//! an older epoch is dropped: requests admitted before the breaker opened, all failing on the
//! same stall, open it once rather than once each. The health poll talks to it too: its ready
//! signal turns an open breaker half-open at once, and a "loading" answer frees the trial slot
//! without deciding anything.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `trial` is when the one trial in flight started, if one is.
    HalfOpen {
        trial: Option<Instant>,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    epoch: u64,
}

/// Permission to send one request upstream; hand it back with the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    trial: bool,
}

/// Circuit breaker state machine.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                epoch: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain values.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go to this upstream now. In half-open state only one trial passes;
    /// a trial that never reports (its client went away) is replaced after `open_for`.
    pub fn try_acquire(&self) -> Option<Ticket> {
        let now = Instant::now();
        let mut inner = self.lock();
        let epoch = inner.epoch;
        let trial = match inner.state {
            State::Closed { .. } => {
                return Some(Ticket {
                    epoch,
                    trial: false,
                });
            }
            State::Open { until } if now < until => return None,
            State::HalfOpen {
                trial: Some(started),
            } if now.duration_since(started) < self.open_for => {
                return None;
            }
            State::Open { .. } | State::HalfOpen { .. } => Ticket { epoch, trial: true },
        };
        inner.state = State::HalfOpen { trial: Some(now) };
        Some(trial)
    }

    /// The upstream answered properly.
    pub fn record_success(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if ticket.epoch == inner.epoch {
            inner.state = State::Closed { failures: 0 };
        }
    }

    /// The upstream failed (connect error, 5xx, broken stream); `trip` opens the breaker at once
    /// (a stall: each further request would cost a whole first-byte deadline).
    pub fn record_failure(&self, ticket: Ticket, trip: bool) {
        let mut inner = self.lock();
        if ticket.epoch != inner.epoch {
            return;
        }
        match inner.state {
            State::Closed { failures } if !trip && failures + 1 < self.threshold => {
                inner.state = State::Closed {
                    failures: failures + 1,
                };
            }
            State::Open { .. } => {}
            _ => {
                inner.state = State::Open {
                    until: Instant::now() + self.open_for,
                };
                inner.epoch += 1;
            }
        }
    }

    /// The attempt decided nothing about the upstream's health (it is loading its model, or the
    /// client went away): a trial slot it held is free again.
    pub fn record_neutral(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if ticket.trial
            && ticket.epoch == inner.epoch
            && matches!(inner.state, State::HalfOpen { .. })
        {
            inner.state = State::HalfOpen { trial: None };
        }
    }

    /// The health poll found the upstream ready: an open breaker lets a trial through now
    /// instead of at the end of its open period.
    pub fn on_ready(&self) {
        let mut inner = self.lock();
        if matches!(inner.state, State::Open { .. }) {
            inner.state = State::HalfOpen { trial: None };
        }
    }

    /// True while requests are being rejected (open, or half-open with a trial in flight).
    pub fn is_open(&self) -> bool {
        let now = Instant::now();
        match self.lock().state {
            State::Closed { .. } | State::HalfOpen { trial: None } => false,
            State::Open { until } => now < until,
            State::HalfOpen { trial: Some(t) } => now.duration_since(t) < self.open_for,
        }
    }

    /// How many times the breaker has opened.
    pub fn opened(&self) -> u64 {
        self.lock().epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_acquire(b: &Breaker) -> Ticket {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(t) = b.try_acquire() {
                return t;
            }
            assert!(Instant::now() < deadline, "breaker never half-opened");
            std::thread::yield_now();
        }
    }

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(30));
        let t = b.try_acquire().expect("closed");
        b.record_failure(t, false);
        assert!(!b.is_open());
        b.record_failure(t, false);
        assert!(b.is_open());
        assert!(b.try_acquire().is_none());
        let trial = wait_acquire(&b);
        // Only one trial in half-open state.
        assert!(b.try_acquire().is_none());
        b.record_success(trial);
        assert!(!b.is_open());
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn failed_trial_reopens() {
        let b = Breaker::new(1, Duration::from_millis(10));
        b.record_failure(b.try_acquire().expect("closed"), false);
        assert!(b.try_acquire().is_none());
        let trial = wait_acquire(&b);
        b.record_failure(trial, false);
        assert!(b.is_open());
        assert_eq!(b.opened(), 2);
    }

    #[test]
    fn success_resets_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(60));
        let t = b.try_acquire().expect("closed");
        b.record_failure(t, false);
        b.record_success(t);
        b.record_failure(t, false);
        assert!(!b.is_open());
    }

    #[test]
    fn concurrent_stalls_open_it_once() {
        let b = Breaker::new(3, Duration::from_secs(60));
        let tickets: Vec<Ticket> = (0..8).map(|_| b.try_acquire().expect("closed")).collect();
        for t in tickets {
            b.record_failure(t, true);
        }
        assert_eq!(b.opened(), 1);
        assert!(b.is_open());
    }

    #[test]
    fn loading_keeps_the_trial_open_and_ready_lets_traffic_through() {
        let b = Breaker::new(1, Duration::from_secs(60));
        b.record_failure(b.try_acquire().expect("closed"), false);
        assert!(b.try_acquire().is_none(), "open for a minute");
        b.on_ready();
        let trial = b
            .try_acquire()
            .expect("poll said ready: a trial passes now");
        assert!(b.try_acquire().is_none(), "one trial at a time");
        b.record_neutral(trial);
        let trial = b.try_acquire().expect("a loading answer freed the trial");
        b.record_success(trial);
        assert!(!b.is_open());
        assert_eq!(b.opened(), 1);
    }
}
