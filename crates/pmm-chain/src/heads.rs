//! Where new chain heads come from: an `eth_subscribe newHeads` subscription over websocket
//! when the node offers one, polling `eth_blockNumber` otherwise.
//!
//! A [`HeadSource`] publishes the latest head it knows as a [`HeadUpdate`]. Subscribed, the node
//! pushes each new head and nothing is requested per block; the connection is probed with
//! websocket pings (no JSON-RPC) every poll interval, so a silent, half-open connection is
//! found within two intervals. When the endpoint has no websocket, or the subscription drops,
//! the source polls at the poll interval and retries the subscription with exponential
//! backoff. alloy's own silent reconnect is turned off: a head missed while it reconnected
//! would leave a live-looking subscription one block behind, so every new subscription starts
//! with one `eth_blockNumber` instead.

use std::time::Duration;

use alloy::primitives::U64;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::pubsub::{ConnectionHandle, PubSubConnect, SubscriptionItem};
use alloy::transports::ws::WsConnect;
use alloy::transports::{TransportErrorKind, TransportResult};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ChainClient;
use crate::endpoint::Endpoint;

/// Longest wait between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest keepalive interval: a pong has one whole interval to arrive, and below a second
/// a busy host would drop healthy connections.
const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

/// How a [`HeadSource`] learns of new heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HeadMode {
    /// `eth_subscribe newHeads` over websocket, polling while it is unavailable.
    #[default]
    Subscribe,
    /// `eth_blockNumber` every poll interval.
    Poll,
}

/// The latest head a [`HeadSource`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadUpdate {
    /// Block number of the head.
    pub number: u64,
    /// When the node last reported `number` as its latest (pushed or polled).
    pub seen: Instant,
    /// Whether a live subscription vouches for `number`: the node pushes every new head on
    /// it, so until it drops the head stays current however long ago it came.
    pub live: bool,
}

impl HeadUpdate {
    /// Whether the head may be taken as the chain's current one: vouched for by a live
    /// subscription, or reported within `max_age`.
    pub fn is_fresh(&self, max_age: Duration) -> bool {
        self.live || self.seen.elapsed() <= max_age
    }
}

/// A task following the chain head; stops when dropped.
#[derive(Debug)]
pub struct HeadSource {
    heads: watch::Receiver<Option<HeadUpdate>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeadSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HeadSource {
    /// Follows `client`'s node in `mode`, polling (and probing a subscription) every `poll`.
    pub fn spawn(client: &ChainClient, mode: HeadMode, poll: Duration) -> Self {
        let (tx, heads) = watch::channel(None);
        let task = tokio::spawn(follow(client.clone(), mode, poll, tx));
        Self { heads, task }
    }

    /// The latest head, `None` before the node first answered.
    pub fn latest(&self) -> Option<HeadUpdate> {
        *self.heads.borrow()
    }

    /// Waits for the next update (a new head, a poll confirming one, or a subscription
    /// dropping) and returns it.
    pub async fn changed(&mut self) -> Option<HeadUpdate> {
        self.heads.changed().await.ok()?;
        *self.heads.borrow_and_update()
    }
}

/// A websocket connector that leaves reconnecting to [`follow`].
#[derive(Debug, Clone)]
struct OneConnection(WsConnect);

impl PubSubConnect for OneConnection {
    fn is_local(&self) -> bool {
        self.0.is_local()
    }

    async fn connect(&self) -> TransportResult<ConnectionHandle> {
        self.0.connect().await
    }

    async fn try_reconnect(&self) -> TransportResult<ConnectionHandle> {
        Err(TransportErrorKind::non_retryable_str(
            "head subscription dropped; the head source resubscribes",
        ))
    }
}

/// The part of a `newHeads` notification the source reads.
#[derive(Debug, Deserialize)]
struct PushedHead {
    number: U64,
}

fn publish(tx: &watch::Sender<Option<HeadUpdate>>, number: u64, live: bool) {
    tx.send_replace(Some(HeadUpdate {
        number,
        seen: Instant::now(),
        live,
    }));
}

/// Marks the current head as no longer vouched for, keeping when it was last seen.
fn unvouch(tx: &watch::Sender<Option<HeadUpdate>>) {
    tx.send_if_modified(|h| match h {
        Some(u) if u.live => {
            u.live = false;
            true
        }
        _ => false,
    });
}

async fn follow(
    client: ChainClient,
    mode: HeadMode,
    poll: Duration,
    tx: watch::Sender<Option<HeadUpdate>>,
) {
    // The first retry comes one poll after a failure; the floor keeps a tiny poll interval
    // from hammering an endpoint without a websocket.
    let first_backoff = poll.max(Duration::from_millis(100));
    let mut backoff = first_backoff;
    let mut next_attempt = Instant::now();
    let mut warned = false;
    loop {
        if mode == HeadMode::Subscribe && Instant::now() >= next_attempt {
            match subscribe(&client.endpoint, poll).await {
                Ok((provider, sub)) => {
                    warned = false;
                    tracing::info!(rpc = %client.endpoint, "following heads over websocket");
                    // Only a subscription that delivered resets the backoff: a node that
                    // accepts and drops every subscription is retried ever more slowly.
                    if follow_subscription(&client, provider, sub, &tx).await {
                        backoff = first_backoff;
                    }
                    unvouch(&tx);
                    tracing::warn!(rpc = %client.endpoint, "head subscription dropped; polling");
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(rpc = %client.endpoint, error = %client.endpoint.scrub(&e.to_string()),
                        "no head subscription; polling");
                }
                Err(e) => {
                    tracing::debug!(error = %client.endpoint.scrub(&e.to_string()), "head subscription retry failed")
                }
            }
            next_attempt = Instant::now() + backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        match client.block_number().await {
            Ok(n) => publish(&tx, n, false),
            Err(e) => tracing::warn!(error = %e, "no chain head"),
        }
        let mut wake = Instant::now() + poll;
        if mode == HeadMode::Subscribe {
            wake = wake.min(next_attempt);
        }
        tokio::time::sleep_until(wake).await;
    }
}

type HeadSubscription = alloy::pubsub::Subscription<PushedHead>;

/// Connects to the endpoint's websocket and subscribes to new heads.
async fn subscribe(
    endpoint: &Endpoint,
    poll: Duration,
) -> TransportResult<(DynProvider, HeadSubscription)> {
    let connect = WsConnect::new(endpoint.ws_url().to_string())
        .with_max_retries(0)
        .with_keepalive_interval(poll.max(MIN_KEEPALIVE));
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_pubsub_with(OneConnection(connect))
        .await?
        .erased();
    let sub = provider.subscribe::<_, PushedHead>(("newHeads",)).await?;
    Ok((provider, sub))
}

/// Publishes every pushed head until the subscription ends; returns whether any was pushed.
/// The head at subscription time is asked once: the subscription only speaks of blocks
/// after it.
async fn follow_subscription(
    client: &ChainClient,
    // Owns the connection the subscription lives on.
    _connection: DynProvider,
    mut sub: HeadSubscription,
    tx: &watch::Sender<Option<HeadUpdate>>,
) -> bool {
    match client.block_number().await {
        Ok(n) => publish(tx, n, true),
        Err(e) => {
            tracing::warn!(error = %e, "no chain head at subscription");
            return false;
        }
    }
    let mut delivered = false;
    loop {
        match sub.recv_any().await {
            Ok(SubscriptionItem::Item(head)) => {
                let number = head.number.to::<u64>();
                tracing::trace!(number, "head pushed");
                publish(tx, number, true);
                delivered = true;
            }
            Ok(SubscriptionItem::Other(raw)) => {
                tracing::warn!(notification = %raw.get(), "undecodable head notification");
                return delivered;
            }
            // Only the newest head matters: skipped ones need no replay.
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return delivered,
        }
    }
}
