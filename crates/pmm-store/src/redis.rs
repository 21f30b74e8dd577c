//! The Redis side of the store: circuit breakers, cooldowns and daily cap counters shared by
//! every replica, plus the bootstrap that marks the key layout version.
//!
//! Anything that must be atomic across replicas (cap reservation, bootstrap) is one Lua script,
//! so two hubs can never both pass a check that only one of them should.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::NaiveDate;
use deadpool_redis::redis::{self, AsyncCommands, IntoConnectionInfo, Script};
use deadpool_redis::{Config, Pool, Runtime};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::keys;

/// Version of the Redis key layout this binary reads and writes.
pub const REDIS_SCHEMA_VERSION: u32 = 1;

/// Lua numbers are doubles: integers above 2^53 - 1 would be compared inexactly, so cap amounts
/// are limited to this.
pub const MAX_CAP_AMOUNT: u64 = (1 << 53) - 1;

/// Daily cap counters outlive their day by one day, then Redis drops them.
const DAILY_CAP_TTL_SECS: u64 = 2 * 24 * 60 * 60;

/// How long to wait for a pooled Redis connection before reporting Redis unavailable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

static RESERVE_CAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used == nil then return redis.error_reply('daily cap counter is not a number') end
local amount = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
if used + amount > cap then
  return {0, used}
end
local now = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, now}
",
    )
});

static RELEASE_CAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used == nil then return redis.error_reply('daily cap counter is not a number') end
local amount = tonumber(ARGV[1])
if used == 0 then return 0 end
if amount >= used then
  redis.call('SET', KEYS[1], '0', 'KEEPTTL')
  return 0
end
return redis.call('DECRBY', KEYS[1], ARGV[1])
",
    )
});

/// Returns {status, previous}: 0 created, 1 unchanged, 2 upgraded, 3 newer, 4 corrupt.
static BOOTSTRAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local raw = redis.call('GET', KEYS[1])
local want = tonumber(ARGV[1])
if not raw then
  redis.call('SET', KEYS[1], ARGV[1])
  return {0, -1}
end
local cur = tonumber(raw)
if cur == nil then return {4, -1} end
if cur == want then return {1, cur} end
if cur > want then return {3, cur} end
redis.call('SET', KEYS[1], ARGV[1])
return {2, cur}
",
    )
});

/// The value stored under `cb:<chain>:<pool>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Always true for a stored breaker; a reset deletes the key.
    pub tripped: bool,
    /// Why it tripped.
    pub reason: String,
    /// When it tripped, unix seconds.
    pub ts: i64,
}

/// Result of a daily cap reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReservation {
    /// Whether the amount fit under the cap and was added.
    pub granted: bool,
    /// Amount used in the window after the call (unchanged when not granted).
    pub used: u64,
}

/// What `INFO` says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisInfo {
    /// `redis_version`.
    pub version: String,
    /// Whether the append-only file is on; without it a restart can lose breaker trips.
    pub aof_enabled: bool,
}

/// What a bootstrap did to the schema-version key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The key did not exist and was written.
    Created,
    /// The key already held this binary's version.
    Unchanged,
    /// The key held an older version and was raised.
    Upgraded {
        /// The version found.
        from: u32,
    },
}

/// Typed access to the project's Redis keys. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    namespace: String,
    endpoint: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn check_cap_amount(field: &'static str, value: u64) -> Result<()> {
    if value > MAX_CAP_AMOUNT {
        return Err(StoreError::InvalidInput {
            field,
            reason: format!("{value} exceeds {MAX_CAP_AMOUNT}"),
        });
    }
    Ok(())
}

fn non_negative(location: &str, value: i64) -> Result<u64> {
    crate::error::from_i64(location, value)
}

impl RedisStore {
    /// Builds a pool for `url`; every key is prefixed with `namespace` (empty in production).
    /// Connections are opened lazily; call [`RedisStore::ping`] to check reachability.
    pub fn connect(url: &str, namespace: impl Into<String>) -> Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| StoreError::InvalidRedisUrl(e.to_string()))?;
        let endpoint = info.addr().to_string();
        let pool = Config::from_url(url)
            .builder()
            .map_err(|e| StoreError::InvalidRedisUrl(e.to_string()))?
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(REDIS_TIMEOUT))
            .create_timeout(Some(REDIS_TIMEOUT))
            .build()
            .map_err(|e| StoreError::InvalidRedisUrl(e.to_string()))?;
        Ok(Self {
            pool,
            namespace: namespace.into(),
            endpoint,
        })
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `host:port` of the server, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::RedisUnavailable {
                endpoint: self.endpoint.clone(),
                reason: match e {
                    deadpool_redis::PoolError::Backend(e) => e.to_string(),
                    other => other.to_string(),
                },
            })
    }

    /// Sends `PING`.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong != "PONG" {
            return Err(StoreError::Corrupt {
                location: "PING reply".into(),
                reason: format!("unexpected {pong:?}"),
            });
        }
        Ok(())
    }

    /// Server version and persistence settings from `INFO`.
    pub async fn server_info(&self) -> Result<RedisInfo> {
        let mut conn = self.conn().await?;
        let server: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        let persistence: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await?;
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let version = field(&server, "redis_version").ok_or_else(|| StoreError::Corrupt {
            location: "INFO server".into(),
            reason: "no redis_version".into(),
        })?;
        let aof_enabled = field(&persistence, "aof_enabled").as_deref() == Some("1");
        Ok(RedisInfo {
            version,
            aof_enabled,
        })
    }

    /// The breaker of a pool; `None` when it is not tripped.
    pub async fn breaker(&self, chain_id: u64, pool: &str) -> Result<Option<BreakerState>> {
        let key = keys::breaker(&self.namespace, chain_id, pool);
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
                location: key.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Trips the breaker of a pool (overwriting an earlier trip's reason).
    pub async fn trip_breaker(
        &self,
        chain_id: u64,
        pool: &str,
        reason: &str,
        ts: i64,
    ) -> Result<BreakerState> {
        let state = BreakerState {
            tripped: true,
            reason: reason.to_owned(),
            ts,
        };
        let value = serde_json::to_string(&state).map_err(|e| StoreError::InvalidInput {
            field: "reason",
            reason: e.to_string(),
        })?;
        let key = keys::breaker(&self.namespace, chain_id, pool);
        let () = self.conn().await?.set(key, value).await?;
        Ok(state)
    }

    /// Resets the breaker of a pool; returns whether it was tripped.
    pub async fn reset_breaker(&self, chain_id: u64, pool: &str) -> Result<bool> {
        let key = keys::breaker(&self.namespace, chain_id, pool);
        let removed: u64 = self.conn().await?.del(key).await?;
        Ok(removed > 0)
    }

    /// The next allowed action time of a pool (unix seconds); `None` when no cooldown is set or
    /// it has passed.
    pub async fn cooldown(&self, chain_id: u64, pool: &str) -> Result<Option<u64>> {
        let key = keys::cooldown(&self.namespace, chain_id, pool);
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map(|raw| {
            raw.parse::<u64>().map_err(|e| StoreError::Corrupt {
                location: key.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Sets the next allowed action time of a pool. The key expires at that time, so a passed
    /// cooldown leaves nothing behind.
    pub async fn set_cooldown(&self, chain_id: u64, pool: &str, next_allowed: u64) -> Result<()> {
        let key = keys::cooldown(&self.namespace, chain_id, pool);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(next_allowed)
            .arg("EXAT")
            .arg(next_allowed.max(1))
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    /// Adds `amount` to the `scope` counter of `day` if the total stays within `cap`, atomically
    /// across every client.
    pub async fn reserve_daily_cap(
        &self,
        scope: &str,
        day: NaiveDate,
        amount: u64,
        cap: u64,
    ) -> Result<CapReservation> {
        check_cap_amount("amount", amount)?;
        check_cap_amount("cap", cap)?;
        let key = keys::daily_cap(&self.namespace, scope, day);
        let (granted, used): (i64, i64) = RESERVE_CAP
            .key(&key)
            .arg(amount)
            .arg(cap)
            .arg(DAILY_CAP_TTL_SECS)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(CapReservation {
            granted: granted == 1,
            used: non_negative(&key, used)?,
        })
    }

    /// Gives back `amount` (for a reservation whose action did not happen); never goes below 0.
    /// Returns the amount used after the release.
    pub async fn release_daily_cap(&self, scope: &str, day: NaiveDate, amount: u64) -> Result<u64> {
        check_cap_amount("amount", amount)?;
        let key = keys::daily_cap(&self.namespace, scope, day);
        let used: i64 = RELEASE_CAP
            .key(&key)
            .arg(amount)
            .invoke_async(&mut self.conn().await?)
            .await?;
        non_negative(&key, used)
    }

    /// Amount used in the `scope` window of `day`.
    pub async fn daily_cap_used(&self, scope: &str, day: NaiveDate) -> Result<u64> {
        let key = keys::daily_cap(&self.namespace, scope, day);
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map_or(Ok(0), |raw| {
            raw.parse::<u64>().map_err(|e| StoreError::Corrupt {
                location: key.clone(),
                reason: e.to_string(),
            })
        })
    }

    /// The key layout version recorded by the last bootstrap, if any.
    pub async fn schema_version(&self) -> Result<Option<u32>> {
        let key = keys::schema_version(&self.namespace);
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map(|raw| {
            raw.parse::<u32>().map_err(|e| StoreError::Corrupt {
                location: key.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Records [`REDIS_SCHEMA_VERSION`] under the schema-version key, atomically and
    /// idempotently. Refuses a Redis that already holds a newer layout.
    pub async fn bootstrap(&self) -> Result<BootstrapOutcome> {
        let key = keys::schema_version(&self.namespace);
        let (status, previous): (i64, i64) = BOOTSTRAP
            .key(&key)
            .arg(REDIS_SCHEMA_VERSION)
            .invoke_async(&mut self.conn().await?)
            .await?;
        let previous_version = || {
            u32::try_from(previous).map_err(|_| StoreError::Corrupt {
                location: key.clone(),
                reason: format!("version {previous} out of range"),
            })
        };
        match status {
            0 => Ok(BootstrapOutcome::Created),
            1 => Ok(BootstrapOutcome::Unchanged),
            2 => Ok(BootstrapOutcome::Upgraded {
                from: previous_version()?,
            }),
            3 => Err(StoreError::RedisSchemaNewer {
                found: previous_version()?,
                expected: REDIS_SCHEMA_VERSION,
            }),
            _ => Err(StoreError::Corrupt {
                location: key.clone(),
                reason: "schema version is not a number".into(),
            }),
        }
    }
}
