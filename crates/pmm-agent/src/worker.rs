//! The worker loop: ticks numbered by wall-clock interval, pools shared between workers through
//! `worker_leases`, a lease keeper, hub backoff, and a clean stop.
//!
//! Sharing: each worker announces itself with a membership lease (`agent-worker:<chain>:<id>`)
//! and takes pool leases (`agent:<chain>:<pool>`) up to its fair share of the pools among the
//! live workers, releasing the excess at the end of a tick so a newcomer takes it at the next
//! one. Leases live for 3/4 of an interval and are renewed together (one statement on a
//! connection of their own) four times per lease lifetime, so a dead worker's pools are free
//! within one interval and taken at the next tick start: within two intervals of its death. The database refuses a second decision for a pool and tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use pmm_core::config::PoolEntry;
use pmm_store::{Decision, Lease, PgStore};
use rand::Rng;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::prompt::PastDecision;
use crate::sink::DecisionSink;
use crate::tick::{PoolTick, TickContext, TickOutcome};

/// What `/health` needs to know about the loop.
#[derive(Debug, Default)]
pub struct LoopStatus {
    last_finished: std::sync::Mutex<Option<Instant>>,
}

impl LoopStatus {
    /// Time since the last tick finished; `None` before the first.
    pub fn since_last_tick(&self) -> Option<Duration> {
        self.last_finished
            .lock()
            .ok()
            .and_then(|g| g.map(|t| t.elapsed()))
    }

    fn finished(&self) {
        if let Ok(mut g) = self.last_finished.lock() {
            *g = Some(Instant::now());
        }
    }
}

/// A line printed per decision (`--print-decisions`), and called back for each one.
pub type DecisionHook = Arc<dyn Fn(&Decision) + Send + Sync>;

/// One worker.
pub struct Worker {
    ctx: Arc<TickContext>,
    pools: Vec<PoolEntry>,
    store: PgStore,
    lease_store: PgStore,
    sink: DecisionSink,
    status: Arc<LoopStatus>,
    held: Arc<Mutex<BTreeMap<String, Lease>>>,
    membership: Arc<Mutex<Option<Lease>>>,
    history: Mutex<HashMap<String, Vec<PastDecision>>>,
    hook: Option<DecisionHook>,
    live_workers: Mutex<usize>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker", &self.ctx.worker)
            .field("pools", &self.pools.len())
            .finish_non_exhaustive()
    }
}

/// The lease name of a pool.
pub fn pool_lease_name(chain_id: u64, pool: &str) -> String {
    format!("agent:{chain_id}:{}", pool.to_ascii_lowercase())
}

fn membership_prefix(chain_id: u64) -> String {
    format!("agent-worker:{chain_id}:")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

impl Worker {
    /// A worker over `pools`; `lease_store` is the lease keeper's own handle on the same
    /// database (one connection is enough: it renews everything in one statement).
    pub fn new(
        ctx: TickContext,
        pools: Vec<PoolEntry>,
        store: PgStore,
        lease_store: PgStore,
        sink: DecisionSink,
        status: Arc<LoopStatus>,
        hook: Option<DecisionHook>,
    ) -> Self {
        Self {
            ctx: Arc::new(ctx),
            pools,
            store,
            lease_store,
            sink,
            status,
            held: Arc::default(),
            membership: Arc::default(),
            history: Mutex::default(),
            hook,
            live_workers: Mutex::new(1),
        }
    }

    fn interval(&self) -> Duration {
        self.ctx.cfg.interval()
    }

    fn ttl(&self) -> Duration {
        (self.interval() * 3 / 4).max(Duration::from_millis(500))
    }

    /// Runs ticks until `stop` is cancelled (the current tick finishes first), or for one tick
    /// when `once`; then releases every lease and writes out buffered decisions.
    pub async fn run(self, stop: CancellationToken, once: bool) {
        let keeper = (!once).then(|| self.spawn_keeper(stop.clone()));
        let interval_ms = self.interval().as_millis().max(1);
        let mut last_tick: Option<u64> = None;
        let mut backoff = 0u32;
        loop {
            let now = now_ms();
            let current = u64::try_from(now / interval_ms).unwrap_or(u64::MAX);
            let tick = match last_tick {
                None if once => current,
                _ => {
                    let next = last_tick.map_or(current + 1, |t| current.max(t) + 1);
                    let at = u128::from(next) * interval_ms;
                    let wait =
                        Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0));
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                    next
                }
            };
            if let Some(prev) = last_tick
                && tick > prev + 1
            {
                metrics::counter!("pmm_agent_ticks_overrun_total").increment(tick - prev - 1);
            }
            last_tick = Some(tick);
            let hub_down = self.tick(tick, once).await;
            self.status.finished();
            if once {
                break;
            }
            if hub_down {
                if !self.back_off(&stop, &mut backoff).await {
                    break;
                }
            } else {
                backoff = 0;
            }
        }
        if let Some(k) = keeper {
            k.abort();
        }
        self.release_all().await;
        if !self.sink.flush(Duration::from_secs(5)).await {
            tracing::warn!(
                pending = self.sink.pending().await,
                "decisions not written before exit"
            );
        }
        self.ctx.hub.close().await;
    }

    /// Waits, with exponential backoff and full jitter, until the hub answers again. Returns
    /// `false` when stopped meanwhile.
    async fn back_off(&self, stop: &CancellationToken, attempt: &mut u32) -> bool {
        loop {
            let cap = Duration::from_secs(self.ctx.cfg.backoff_max_s);
            let ceiling =
                (Duration::from_millis(250) * 2u32.saturating_pow((*attempt).min(16))).min(cap);
            let wait = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
            *attempt = attempt.saturating_add(1);
            metrics::counter!("pmm_agent_hub_backoffs_total").increment(1);
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                attempt = *attempt,
                "hub unavailable: backing off"
            );
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(wait) => {}
            }
            if self.ctx.hub.reachable().await {
                tracing::info!("hub answers again");
                return true;
            }
        }
    }

    /// One tick over this worker's share of the pools. Returns whether the hub was down.
    async fn tick(&self, tick: u64, once: bool) -> bool {
        self.announce().await;
        let share = if once {
            self.pools.len()
        } else {
            self.share().await
        };
        self.acquire(share).await;
        let jobs: Vec<(PoolEntry, Option<u64>)> = {
            let held = self.held.lock().await;
            self.pools
                .iter()
                .filter_map(|p| {
                    held.get(&pool_lease_name(self.ctx.chain_id, &p.address.to_string()))
                        .map(|l| (p.clone(), Some(l.fence)))
                })
                .collect()
        };
        metrics::gauge!("pmm_agent_leases_held").set(jobs.len() as f64);
        let results: Vec<bool> = futures::stream::iter(jobs)
            .map(|(entry, fence)| self.run_pool(entry, tick, fence))
            .buffer_unordered(self.ctx.cfg.max_concurrent_pools)
            .collect()
            .await;
        if !once {
            let share = self.share().await;
            self.release_excess(share).await;
        }
        results.into_iter().any(|down| down)
    }

    async fn run_pool(&self, entry: PoolEntry, tick: u64, fence: Option<u64>) -> bool {
        let pool = entry.address.to_string();
        let history = self.history_of(&pool).await;
        let job = PoolTick {
            entry,
            tick,
            fence,
            history,
        };
        match self.ctx.run(&job).await {
            TickOutcome::HubDown(e) => {
                metrics::counter!("pmm_agent_ticks_total", "outcome" => "hub_down").increment(1);
                tracing::warn!(%pool, tick, error = %e, "tick skipped: hub unavailable");
                true
            }
            TickOutcome::Decided(d) => {
                metrics::counter!("pmm_agent_ticks_total", "outcome" => "decided").increment(1);
                self.remember(&d).await;
                if let Some(hook) = &self.hook {
                    hook(&d);
                }
                self.sink.push(*d).await;
                false
            }
        }
    }

    async fn history_of(&self, pool: &str) -> Vec<PastDecision> {
        let n = self.ctx.cfg.history;
        if n == 0 {
            return Vec::new();
        }
        match self
            .store
            .recent_decisions(self.ctx.chain_id, pool, n)
            .await
        {
            Ok(rows) => rows
                .into_iter()
                .map(|d| PastDecision {
                    proposal: d.proposal,
                    verdict: d.verdict,
                    rule: d.matched_rule,
                })
                .collect(),
            Err(_) => self
                .history
                .lock()
                .await
                .get(pool)
                .cloned()
                .unwrap_or_default(),
        }
    }

    async fn remember(&self, d: &Decision) {
        let mut h = self.history.lock().await;
        let list = h.entry(d.pool.clone()).or_default();
        list.insert(
            0,
            PastDecision {
                proposal: d.proposal.clone(),
                verdict: d.verdict.clone(),
                rule: d.matched_rule.clone(),
            },
        );
        list.truncate(self.ctx.cfg.history as usize);
    }

    /// Renews (or takes) this worker's membership lease.
    async fn announce(&self) {
        let name = format!(
            "{}{}",
            membership_prefix(self.ctx.chain_id),
            self.ctx.worker
        );
        match self
            .store
            .acquire_lease(&name, &self.ctx.worker, self.ttl())
            .await
        {
            Ok(Some(l)) => *self.membership.lock().await = Some(l),
            Ok(None) => tracing::error!(%name, "another process holds this worker's id"),
            Err(e) => tracing::warn!(error = %e, "cannot announce this worker"),
        }
    }

    /// This worker's fair share of the pools among the live workers (the last known count when
    /// the store does not answer).
    async fn share(&self) -> usize {
        let mut live = self.live_workers.lock().await;
        match self
            .store
            .live_holders(&membership_prefix(self.ctx.chain_id))
            .await
        {
            Ok(holders) => *live = holders.len().max(1),
            Err(e) => tracing::warn!(error = %e, "cannot count live workers; keeping {}", *live),
        }
        self.pools.len().div_ceil(*live)
    }

    /// The pools in this worker's preferred order: rotated by its id, so workers that start
    /// together reach for different pools first.
    fn preferred(&self) -> Vec<&PoolEntry> {
        let n = self.pools.len().max(1);
        let start = self.ctx.worker.bytes().fold(0usize, |a, b| {
            a.wrapping_mul(31).wrapping_add(usize::from(b))
        }) % n;
        self.pools
            .iter()
            .cycle()
            .skip(start)
            .take(self.pools.len())
            .collect()
    }

    async fn acquire(&self, share: usize) {
        for entry in self.preferred() {
            let name = pool_lease_name(self.ctx.chain_id, &entry.address.to_string());
            let mut held = self.held.lock().await;
            if held.contains_key(&name) {
                continue;
            }
            if held.len() >= share {
                break;
            }
            match self
                .store
                .acquire_lease(&name, &self.ctx.worker, self.ttl())
                .await
            {
                Ok(Some(l)) => {
                    tracing::info!(pool = %entry.address, fence = l.fence, "took pool lease");
                    held.insert(name, l);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take pool leases");
                    return;
                }
            }
        }
    }

    async fn release_excess(&self, share: usize) {
        let mut held = self.held.lock().await;
        while held.len() > share {
            let Some((name, lease)) = held.pop_last() else {
                break;
            };
            match self.store.release_lease(&lease).await {
                Ok(_) => tracing::info!(%name, "released pool lease to share the pools"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot release a lease; keeping it");
                    held.insert(name, lease);
                    break;
                }
            }
        }
        metrics::gauge!("pmm_agent_leases_held").set(held.len() as f64);
    }

    async fn release_all(&self) {
        let leases: Vec<Lease> = std::mem::take(&mut *self.held.lock().await)
            .into_values()
            .chain(self.membership.lock().await.take())
            .collect();
        for l in leases {
            if let Err(e) = self.store.release_lease(&l).await {
                tracing::warn!(name = %l.name, error = %e, "lease not released; it lapses by itself");
            }
        }
        metrics::gauge!("pmm_agent_leases_held").set(0.0);
    }

    /// Renews the held leases (membership and pools) four times per lease lifetime, all in one
    /// statement on the keeper's own connection: a busy tick never makes it wait for a pooled
    /// connection, and a round trip more per lease never adds up to a lapse. A lease someone
    /// else took is dropped and counted; one that cannot be renewed because the store is away
    /// is kept: nobody else can take it while the store is down, and the database refuses a
    /// duplicate decision. A round that lands past half the lifetime since the last one is
    /// logged and counted, so a lapse under load is visible before it happens.
    fn spawn_keeper(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.lease_store.clone();
        let held = self.held.clone();
        let membership = self.membership.clone();
        let ttl = self.ttl();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ttl / 4);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_renewed = Instant::now();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                let mut m = membership.lock().await;
                let mut held = held.lock().await;
                let leases: Vec<Lease> = m.iter().chain(held.values()).cloned().collect();
                if leases.is_empty() {
                    last_renewed = Instant::now();
                    continue;
                }
                let Ok(renewed) = store.renew_leases(&leases, ttl).await else {
                    continue;
                };
                let gap = last_renewed.elapsed();
                last_renewed = Instant::now();
                if gap > ttl / 2 {
                    metrics::counter!("pmm_agent_lease_renewals_late_total").increment(1);
                    tracing::warn!(
                        gap_ms = gap.as_millis() as u64,
                        ttl_ms = ttl.as_millis() as u64,
                        "lease renewal late"
                    );
                }
                let mut renewed: HashMap<String, Lease> =
                    renewed.into_iter().map(|l| (l.name.clone(), l)).collect();
                if let Some(l) = m.take() {
                    *m = renewed.remove(&l.name);
                    if m.is_none() {
                        tracing::warn!(name = %l.name, "membership lease lost");
                    }
                }
                let names: Vec<String> = held.keys().cloned().collect();
                for name in names {
                    match renewed.remove(&name) {
                        Some(l) => {
                            held.insert(name, l);
                        }
                        None => {
                            metrics::counter!("pmm_agent_leases_lost_total").increment(1);
                            tracing::warn!(%name, "pool lease lost to another worker");
                            held.remove(&name);
                        }
                    }
                }
                metrics::gauge!("pmm_agent_leases_held").set(held.len() as f64);
            }
        })
    }
}
