//! Postgres and Redis I/O: typed inserts and queries, breaker and cooldown state.
//!
//! [`PgStore`] holds the audit and accounting tables created by [`migrate`]; [`RedisStore`]
//! holds the live policy state every replica shares. Both are pools and cheap to clone.
//!
//! Redis key names and the breaker value are `pmm_core::keys`'s, used as they are: this crate
//! only prefixes its namespace, so the hub, the agent and the store cannot disagree on them.

pub mod decisions;
pub mod error;
pub mod intents;
pub mod leases;
pub mod ledger;
pub mod migrate;
pub mod pg;
pub mod policy_events;
pub mod policy_state;
pub mod redis;
pub mod reservations;
pub mod snapshots;
pub mod tool_calls;
pub mod transactions;

pub use decisions::Decision;
pub use error::{Result, StoreError};
pub use intents::{Attempt, Intent, IntentCall, IntentStart, NewIntent, Outcome, SignerLock};
pub use leases::Lease;
pub use ledger::{NotionalReservation, ReserveOutcome, WindowUsage};
pub use migrate::{MigrateError, MigrateReport, MigrationSet, Migrator, SchemaStatus};
pub use pg::PgStore;
pub use policy_events::{ActiveCooldown, ActiveTrip, PolicyEvent, PolicyEventKind, pool_text};
pub use redis::{
    BootstrapOutcome, CapReservation, EvictionOutcome, REQUIRED_EVICTION_POLICY, RedisInfo,
    RedisStore,
};
pub use reservations::{ReserveResult, Settled, WriteReservation};
pub use snapshots::PoolSnapshot;
pub use tool_calls::{ToolCall, ToolOutcome};
pub use transactions::TxStatus;
