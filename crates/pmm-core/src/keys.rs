//! Redis key names and stored value types shared by the hub, the agent and the store.
//!
//! This module is the one definition of the layout; the store only prefixes a namespace (empty in
//! production, unique per test). Keys embed the chain *name* as the allowlist spells it
//! ([`ChainName`], restricted to `[a-z0-9_-]`, so no `:`), never the numeric chain id, and the pool
//! address as lowercase hex, so two spellings of one address always name one key:
//!
//! | key | value |
//! |---|---|
//! | `cb:<chain>:<pool>` | JSON [`BreakerState`] |
//! | `cb:<chain>:*` | JSON [`BreakerState`] of the global pause (blocks every pool) |
//! | `cooldown:<chain>:<pool>` | Unix seconds before which no write is allowed |
//! | `notional:<chain>:<pool>:<utc_day>` | decimal quote raw units committed that day |
//! | `pmm:schema_version` | version of this layout: the bootstrap marker |
//!
//! Redis holds the current values; Postgres (`policy_events`, `notional_windows`) is the
//! durable record they are rebuilt from. The bootstrap marker is written last, after that
//! rebuild, so a Redis without it (flushed, restarted without persistence, never bootstrapped)
//! is known to have lost state: a missing breaker key then means "unknown", never "clear".

use alloy_primitives::Address;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::ChainName;

/// Seconds in one accounting day for the daily notional window (UTC days).
pub const SECONDS_PER_DAY: u64 = 86_400;

/// Lowercase `0x`-prefixed hex of an address.
fn lower(pool: Address) -> String {
    format!("{pool:#x}")
}

/// Circuit-breaker key of a pool: `cb:<chain>:<pool>`; its value is a JSON [`BreakerState`].
pub fn breaker_key(chain: &ChainName, pool: Address) -> String {
    format!("cb:{chain}:{}", lower(pool))
}

/// How operators name every pool at once (`dodo.pause_pool {"pool": "*"}`).
pub const GLOBAL_POOL: &str = "*";

/// Global pause key: `cb:<chain>:*`; while it holds a tripped [`BreakerState`] every write on
/// the chain is denied.
pub fn global_breaker_key(chain: &ChainName) -> String {
    format!("cb:{chain}:{GLOBAL_POOL}")
}

/// Cooldown key of a pool: `cooldown:<chain>:<pool>`; its value is the Unix time (seconds) before
/// which no new write to the pool is allowed.
pub fn cooldown_key(chain: &ChainName, pool: Address) -> String {
    format!("cooldown:{chain}:{}", lower(pool))
}

/// The UTC day number (days since the Unix epoch) a timestamp falls in.
pub fn utc_day(unix_s: u64) -> u64 {
    unix_s / SECONDS_PER_DAY
}

/// Key holding the version of this layout: the bootstrap marker, written by the store's
/// bootstrap only after it rebuilt the policy state from Postgres.
pub const SCHEMA_VERSION_KEY: &str = "pmm:schema_version";

/// The window a pool's `max_notional_per_day` counts in, without the day: `<chain>:<pool>`.
///
/// Reading a day's usage (the policy input) and reserving before a write must name the same
/// window, or the cap could be passed with usage read from one place and spent in another; so this
/// type has no other constructor than [`daily_cap_scope`], and every daily-cap read, reservation
/// and release (the Redis counter and the Postgres ledger alike) takes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DailyCapScope(String);

impl DailyCapScope {
    /// The scope as stored: `<chain>:<pool>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DailyCapScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The daily-cap scope of a pool: `<chain>:<pool>`.
pub fn daily_cap_scope(chain: &ChainName, pool: Address) -> DailyCapScope {
    DailyCapScope(format!("{chain}:{}", lower(pool)))
}

/// Daily notional key of a scope: `notional:<chain>:<pool>:<utc_day>`; its value is the decimal
/// string of quote raw units already committed that day (see [`utc_day`]). A new day is a new
/// key, so the window resets without a cleanup job (give the key a TTL of a couple of days).
pub fn daily_notional_key(scope: &DailyCapScope, day: u64) -> String {
    format!("notional:{scope}:{day}")
}

/// The value stored under [`breaker_key`]. A missing key means "not tripped"; a key the reader
/// cannot read or parse must be treated as unknown, which the policy denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerState {
    /// Whether writes to the pool are blocked.
    pub tripped: bool,
    /// Why it was tripped (or reset).
    pub reason: String,
    /// Unix time of the last change.
    pub ts: u64,
}

impl BreakerState {
    /// The state meaning "no breaker key present".
    pub fn clear() -> Self {
        Self {
            tripped: false,
            reason: String::new(),
            ts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::address;

    use super::*;

    fn chain() -> ChainName {
        ChainName::new("devnet").unwrap()
    }

    const POOL: Address = address!("00000000000000000000000000000000000000aA");

    #[test]
    fn keys_use_lowercase_addresses() {
        assert_eq!(
            breaker_key(&chain(), POOL),
            "cb:devnet:0x00000000000000000000000000000000000000aa"
        );
        assert_eq!(
            cooldown_key(&chain(), POOL),
            "cooldown:devnet:0x00000000000000000000000000000000000000aa"
        );
        let scope = daily_cap_scope(&chain(), POOL);
        assert_eq!(
            scope.as_str(),
            "devnet:0x00000000000000000000000000000000000000aa"
        );
        assert_eq!(
            daily_notional_key(&scope, utc_day(1_700_000_000)),
            "notional:devnet:0x00000000000000000000000000000000000000aa:19675"
        );
    }

    #[test]
    fn chains_and_pools_name_distinct_keys() {
        let other_chain = ChainName::new("ethereum").unwrap();
        let other_pool = address!("00000000000000000000000000000000000000bb");
        assert_ne!(breaker_key(&chain(), POOL), breaker_key(&other_chain, POOL));
        assert_eq!(global_breaker_key(&chain()), "cb:devnet:*");
        assert_ne!(
            breaker_key(&chain(), POOL),
            breaker_key(&chain(), other_pool)
        );
        assert_ne!(
            daily_cap_scope(&chain(), POOL),
            daily_cap_scope(&other_chain, POOL)
        );
        assert_eq!(SCHEMA_VERSION_KEY, "pmm:schema_version");
    }

    #[test]
    fn utc_day_boundaries() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(86_399), 0);
        assert_eq!(utc_day(86_400), 1);
    }

    #[test]
    fn breaker_state_json_shape() {
        let b = BreakerState {
            tripped: true,
            reason: "oracle deviation 250 bps".into(),
            ts: 7,
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"tripped": true, "reason": "oracle deviation 250 bps", "ts": 7})
        );
        assert_eq!(serde_json::from_value::<BreakerState>(v).unwrap(), b);
        assert!(
            serde_json::from_str::<BreakerState>(r#"{"tripped":false,"reason":"","ts":1,"x":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<BreakerState>(r#"{"tripped":"no","reason":"","ts":1}"#).is_err()
        );
    }
}
