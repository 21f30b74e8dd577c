//! The pool monitor: the one place circuit breakers trip by themselves.
//!
//! A task inside the hub reads every allowlisted pool once per new block (or every N seconds,
//! [`Schedule::Every`], on slower chains) and trips a pool's breaker when
//! `pmm_core::policy::trip_reason` says so: an oracle deviation, a stale, missing, zero or
//! negative feed, reserves below their floors, or a pool that no longer reads as what the
//! allowlist claims. Each trip is one `policy_events` row (written before Redis changes) and
//! never overwrites an earlier trip. A sweep reads every allowlisted pool in one JSON-RPC
//! batch into the chain client's per-block cache (the block's gas price rides in it). New
//! blocks come from a [`HeadSource`]: pushed by an `eth_subscribe newHeads` subscription
//! (`monitor_heads = "subscribe"`), so a block costs that one batch and nothing else, or
//! polled (`"poll"`, and whenever the subscription is unavailable or dropped). With
//! `tools_use_monitor_head` the monitor
//! also publishes what it knows of the head ([`HeadView`]) and tool calls read at that head:
//! a call in a swept block costs no RPC, not even `eth_blockNumber`, and a call that arrives
//! while the monitor reads a new block waits for that sweep instead of reading it a second
//! time. `dodo.risk_check` and `dodo.simulate_action` only report what is stored.
//!
//! The task holds only a weak reference to the hub and ends, with its head source, when the
//! hub is dropped.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use pmm_chain::{ChainError, Head, HeadMode, HeadSource, HeadUpdate};
use pmm_core::config::PoolEntry;
use pmm_core::policy::trip_reason;
use pmm_store::PolicyEventKind;
use pmm_store::policy_state::{self, Change};

use crate::error::ToolError;
use crate::hub::{Hub, Inner, now_s};

/// The actor `policy_events` rows of automatic trips name.
pub const MONITOR_ACTOR: &str = "pool-monitor";

/// When the monitor sweeps the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once per new block, learning of new blocks as `heads` says; `poll` is the polling
    /// interval (and, subscribed, the interval the subscription is probed at).
    EachBlock {
        /// Subscription or polling.
        heads: HeadMode,
        /// How often to poll, or probe the subscription.
        poll: Duration,
    },
    /// At the latest block every interval, new block or not.
    Every(Duration),
}

/// What the monitor knows of the chain head, published for tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum HeadView {
    /// Nothing yet, or tool calls do not use the monitor's head.
    #[default]
    Unknown,
    /// The node said block `number` is its latest; its pools are being read.
    Sweeping {
        /// The new head's number.
        number: u64,
        /// When the node reported it, and whether a live subscription vouches for it.
        update: HeadUpdate,
    },
    /// `head`'s allowlisted pools are cached (its gas price came in their batch).
    Ready {
        /// The head.
        head: Head,
        /// When the node last reported it, and whether a live subscription vouches for it.
        update: HeadUpdate,
    },
}

/// Longest a tool call waits for a sweep in progress before it asks the node itself.
pub(crate) const MONITOR_WAIT: Duration = Duration::from_secs(2);

/// What a tool call does next with the monitor's [`HeadView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadStep {
    /// Read at this head: its pools are cached and it is fresh.
    Use(Head),
    /// Wait for the monitor's next word, at most this long after the call began.
    Wait(Duration),
    /// Ask the node now.
    AskNode,
}

impl HeadView {
    /// What a call whose heads may be `max_age` old does on seeing this view. `joined` is the
    /// sweep the call already waits for, if any: its block is used when it completes, however
    /// long the sweep took (up to [`MONITOR_WAIT`]), since its pools come in the sweep's one
    /// batch rather than in a read of the call's own.
    pub(crate) fn step(&self, max_age: Duration, joined: &mut Option<u64>) -> HeadStep {
        match *self {
            HeadView::Ready { head, update }
                if update.is_fresh(max_age) || *joined == Some(head.number) =>
            {
                HeadStep::Use(head)
            }
            HeadView::Sweeping { number, update }
                if update.is_fresh(max_age) || *joined == Some(number) =>
            {
                *joined = Some(number);
                HeadStep::Wait(MONITOR_WAIT)
            }
            // Nothing known (no monitor, no sweep yet, or its batch failed): no word is due,
            // so waiting would only delay the call.
            HeadView::Unknown => HeadStep::AskNode,
            // Too old: the next poll is due, at most one head age away (one overdue by more
            // will not come).
            _ if joined.is_some() => HeadStep::Wait(MONITOR_WAIT),
            _ => HeadStep::Wait(max_age),
        }
    }
}

/// What the monitor has done, for `/health`-style inspection, tests, and the head it
/// publishes to tool calls.
#[derive(Debug)]
pub(crate) struct MonitorState {
    swept: Mutex<Option<u64>>,
    head: tokio::sync::watch::Sender<HeadView>,
    /// Cancelled when the hub is dropped: the monitor task (and its head source) end.
    stop: CancellationToken,
}

impl Default for MonitorState {
    fn default() -> Self {
        Self {
            swept: Mutex::default(),
            head: tokio::sync::watch::Sender::new(HeadView::Unknown),
            stop: CancellationToken::new(),
        }
    }
}

impl Drop for MonitorState {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl MonitorState {
    /// Follows the head view the monitor publishes.
    pub(crate) fn head_view(&self) -> tokio::sync::watch::Receiver<HeadView> {
        self.head.subscribe()
    }

    fn publish(&self, view: HeadView) {
        self.head.send_replace(view);
    }

    /// The block of the last completed sweep.
    pub(crate) fn last_block(&self) -> Option<u64> {
        self.swept.lock().ok().and_then(|g| *g)
    }

    fn record(&self, block: u64) {
        if let Ok(mut g) = self.swept.lock() {
            *g = Some(block);
        }
    }
}

/// Starts the monitor for `hub` (nothing to watch when the allowlist is empty).
pub(crate) fn spawn(hub: &Hub, schedule: Schedule) {
    if hub.inner.allowlist.pools.is_empty() {
        return;
    }
    let weak = Arc::downgrade(&hub.inner);
    let stop = hub.inner.monitor.stop.clone();
    let task = match schedule {
        Schedule::EachBlock { heads, poll } => {
            let source = HeadSource::spawn(&hub.inner.chain, heads, poll);
            tokio::spawn(each_block(weak, source))
        }
        Schedule::Every(every) => tokio::spawn(every_interval(weak, every)),
    };
    tokio::spawn(async move {
        stop.cancelled().await;
        task.abort();
    });
}

/// Sweeps each new head the source reports. Tool calls see a new block only as `Sweeping`
/// until its pools are cached, so they wait for the sweep's batch rather than read the pools
/// themselves; an update of a head already swept (a poll confirming it, a subscription
/// dropping) only republishes how fresh it is.
async fn each_block(weak: Weak<Inner>, mut source: HeadSource) {
    let mut last: Option<Head> = None;
    while let Some(update) = source.changed().await {
        let Some(inner) = weak.upgrade() else { return };
        let hub = Hub { inner };
        let state = &hub.inner.monitor;
        match last {
            Some(head) if head.number == update.number => {
                state.publish(HeadView::Ready { head, update });
            }
            _ => {
                state.publish(HeadView::Sweeping {
                    number: update.number,
                    update,
                });
                match hub.sweep(update.number).await {
                    Some(gas_price_wei) => {
                        let head = Head {
                            number: update.number,
                            gas_price_wei,
                        };
                        last = Some(head);
                        state.publish(HeadView::Ready { head, update });
                    }
                    // No gas price for this block: tool calls ask the node themselves.
                    None => {
                        last = None;
                        state.publish(HeadView::Unknown);
                    }
                }
            }
        }
    }
}

/// Sweeps the latest block every `every`, new block or not.
async fn every_interval(weak: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let hub = Hub { inner };
        match hub.inner.chain.block_number().await {
            Ok(number) => {
                hub.sweep(number).await;
            }
            Err(e) => tracing::warn!(error = %e, "pool monitor: no chain head"),
        }
    }
}

impl Hub {
    /// Reads every allowlisted pool at block `number` and trips the unhealthy ones; returns
    /// the gas price read in the same batch, `None` when the batch failed.
    pub(crate) async fn sweep(&self, number: u64) -> Option<u128> {
        let pools = &self.inner.allowlist.pools;
        let specs: Vec<_> = pools
            .iter()
            .map(|e| self.read_spec(e.address, e.pool_type, Some(e)))
            .collect();
        // All pools, and the executor's holdings in them (what `balance` checks), in one
        // batch; the checks below and the tool calls of this block then read them from the
        // cache. A pool the batch could not read is read (and its error reported) on its own.
        let gas_price = match self
            .inner
            .chain
            .prefetch_pools_at(&specs, self.inner.executor, number)
            .await
        {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(block = number, error = %e, "pool monitor: batched read failed");
                None
            }
        };
        futures::future::join_all(pools.iter().map(|e| self.watch(e, number))).await;
        self.inner.monitor.record(number);
        metrics::counter!("pmm_hub_monitor_sweeps_total").increment(1);
        gas_price
    }

    async fn watch(&self, entry: &PoolEntry, number: u64) {
        let now = now_s();
        let reason = match self.read_state_at(entry.address, number).await {
            Ok((_, state, _)) => {
                let version = self
                    .inner
                    .profiles
                    .check_version(&state.version, entry.pool_type)
                    .err()
                    .map(|why| format!("pool is not what the allowlist claims: {why}"));
                version.or_else(|| trip_reason(&state, entry, state.oracle_price.as_ref(), now))
            }
            // The node did not answer: that says nothing about the pool.
            Err(ToolError::Chain(ChainError::Rpc { .. })) => None,
            // Anything else (a getter gone, tokens changed, a state that does not normalize)
            // means the pool can no longer be checked.
            Err(e) => Some(format!("pool unreadable: {e}")),
        };
        let Some(reason) = reason else { return };
        let Some(redis) = &self.inner.redis else {
            tracing::warn!(pool = %entry.address, reason, "pool unhealthy, no Redis to trip");
            return;
        };
        let change = Change {
            chain_id: self.inner.chain.chain_id(),
            chain: &self.inner.chain_name,
            pool: Some(entry.address),
            actor: MONITOR_ACTOR,
            reason: &reason,
            block: Some(number),
            now,
        };
        match policy_state::trip(
            self.inner.pg.as_ref(),
            redis,
            PolicyEventKind::BreakerTrip,
            &change,
        )
        .await
        {
            Ok((outcome, not_durable)) => {
                if let Some(e) = not_durable {
                    tracing::error!(pool = %entry.address, error = %e, "trip not recorded in Postgres");
                }
                if outcome.tripped_now {
                    metrics::counter!("pmm_hub_breaker_trips_total").increment(1);
                    tracing::warn!(pool = %entry.address, block = number, reason, "circuit breaker tripped");
                }
            }
            Err(e) => {
                tracing::error!(pool = %entry.address, error = %e, "could not trip the circuit breaker")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const AGE: Duration = Duration::from_secs(1);
    const HEAD: Head = Head {
        number: 7,
        gas_price_wei: 1,
    };

    fn update(number: u64, age: Duration) -> HeadUpdate {
        HeadUpdate {
            number,
            seen: Instant::now() - age,
            live: false,
        }
    }

    #[test]
    fn nothing_known_asks_the_node_at_once() {
        // With no monitor (an empty allowlist) the view stays Unknown: a call that waited for
        // it spent the whole head age on every call.
        assert_eq!(HeadView::Unknown.step(AGE, &mut None), HeadStep::AskNode);
        // A joined sweep whose batch failed says so with Unknown: no block is coming.
        assert_eq!(HeadView::Unknown.step(AGE, &mut Some(7)), HeadStep::AskNode);
    }

    #[test]
    fn a_fresh_head_is_used_and_a_stale_one_waits_for_the_next_poll() {
        let fresh = HeadView::Ready {
            head: HEAD,
            update: update(7, Duration::ZERO),
        };
        assert_eq!(fresh.step(AGE, &mut None), HeadStep::Use(HEAD));
        let stale = HeadView::Ready {
            head: HEAD,
            update: update(7, Duration::from_secs(10)),
        };
        assert_eq!(stale.step(AGE, &mut None), HeadStep::Wait(AGE));
        let vouched = HeadView::Ready {
            head: HEAD,
            update: HeadUpdate {
                live: true,
                ..update(7, Duration::from_secs(10))
            },
        };
        assert_eq!(vouched.step(AGE, &mut None), HeadStep::Use(HEAD));
    }

    #[test]
    fn a_call_joins_a_fresh_sweep_and_uses_its_block_once_ready() {
        let mut joined = None;
        let sweeping = HeadView::Sweeping {
            number: 7,
            update: update(7, Duration::ZERO),
        };
        assert_eq!(
            sweeping.step(AGE, &mut joined),
            HeadStep::Wait(MONITOR_WAIT)
        );
        assert_eq!(joined, Some(7));
        // The sweep took longer than the head's age: its block is still the one to use.
        let done = HeadView::Ready {
            head: HEAD,
            update: update(7, Duration::from_secs(10)),
        };
        assert_eq!(done.step(AGE, &mut joined), HeadStep::Use(HEAD));
        // A stale sweep is not joined.
        let old = HeadView::Sweeping {
            number: 8,
            update: update(8, Duration::from_secs(10)),
        };
        let mut none = None;
        assert_eq!(old.step(AGE, &mut none), HeadStep::Wait(AGE));
        assert_eq!(none, None);
    }
}
