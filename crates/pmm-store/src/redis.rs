//! The Redis side of the store: circuit breakers, cooldowns and daily cap counters shared by
//! every replica, plus the bootstrap that marks the key layout version.
//!
//! Anything that must be atomic across replicas (cap reservation, bootstrap) is one Lua script,
//! so two hubs can never both pass a check that only one of them should.
//!
//! Every key is `<namespace>` + a name built by `pmm_core::keys` (the layout is documented
//! there); the namespace is empty in production and unique per test.

use std::sync::LazyLock;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use deadpool_redis::redis::{self, AsyncCommands, IntoConnectionInfo, Script};
use deadpool_redis::{Config, Pool, Runtime};
use pmm_core::keys::{self, BreakerState, DailyCapScope};
use pmm_core::schema::ChainName;

use crate::error::{Result, StoreError, parse_amount};

/// Version of the Redis key layout this binary reads and writes.
/// Version 2: the marker is written only after the policy state was rebuilt from Postgres,
/// so a Redis marked 1 was never rebuilt and counts as lost state.
pub const REDIS_SCHEMA_VERSION: u32 = 2;

/// Daily cap counters outlive their day by one day, then Redis drops them.
const DAILY_CAP_TTL_SECS: u64 = 2 * 24 * 60 * 60;

/// How long to wait for a pooled Redis connection before reporting Redis unavailable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Decimal-string arithmetic for the cap scripts: amounts are raw token units (18 decimals make
/// them exceed 2^53 at once), and Lua numbers are doubles, so they never become numbers.
pub(crate) const DECIMAL_LUA: &str = r"
local function valid(s) return type(s) == 'string' and string.match(s, '^%d+$') ~= nil end
local function norm(s)
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end
local function cmp(a, b)
  if #a ~= #b then if #a < #b then return -1 else return 1 end end
  if a == b then return 0 end
  if a < b then return -1 else return 1 end
end
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
  end
  return norm(string.reverse(table.concat(out)))
end
local function sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then d = d - (string.byte(b, j) - 48); j = j - 1 end
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    out[#out + 1] = string.char(48 + d)
    i = i - 1
  end
  return norm(string.reverse(table.concat(out)))
end
local used = redis.call('GET', KEYS[1]) or '0'
if not valid(used) then return redis.error_reply('daily cap counter is not a decimal integer') end
used = norm(used)
";

/// Returns {granted (0/1), used after the call}.
static RESERVE_CAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DECIMAL_LUA}
local amount, cap = norm(ARGV[1]), norm(ARGV[2])
local after = add(used, amount)
if cmp(after, cap) > 0 then return {{0, used}} end
redis.call('SET', KEYS[1], after, 'EX', ARGV[3])
return {{1, after}}
"
    ))
});

/// Returns the amount used after the release; never below zero.
static RELEASE_CAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DECIMAL_LUA}
local amount = norm(ARGV[1])
local after = '0'
if cmp(amount, used) < 0 then after = sub(used, amount) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], after, 'KEEPTTL') end
return after
"
    ))
});

/// Raises the counter to ARGV[1] when it holds less; returns the counter after.
static RESTORE_CAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DECIMAL_LUA}
local want = norm(ARGV[1])
if cmp(want, used) > 0 then
  redis.call('SET', KEYS[1], want, 'EX', ARGV[2])
  return want
end
return used
"
    ))
});

/// Sets the breaker value ARGV[1] unless a tripped one is there; returns {1, value} when it
/// was set, {0, existing} when an earlier trip was kept.
static TRIP_BREAKER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, st = pcall(cjson.decode, cur)
  if ok and type(st) == 'table' and st['tripped'] == true then return {0, cur} end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, ARGV[1]}
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

/// The breaker key of a pool, or the global pause's for `None`.
fn breaker_name(chain: &ChainName, pool: Option<Address>) -> String {
    match pool {
        Some(pool) => keys::breaker_key(chain, pool),
        None => keys::global_breaker_key(chain),
    }
}

/// Result of a daily cap reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReservation {
    /// Whether the amount fit under the cap and was added.
    pub granted: bool,
    /// Amount used in the window after the call (unchanged when not granted).
    pub used: U256,
}

/// What `INFO` says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisInfo {
    /// `redis_version`.
    pub version: String,
    /// Whether the append-only file is on; without it a restart can lose breaker trips.
    pub aof_enabled: bool,
    /// `maxmemory_policy`, when the server reports one; anything but
    /// [`REQUIRED_EVICTION_POLICY`] may evict a breaker or cap key.
    pub maxmemory_policy: Option<String>,
}

/// The only `maxmemory-policy` under which a missing key is one that was never written: any
/// other may evict a breaker, cooldown or cap key under memory pressure, and an evicted key
/// reads as "clear".
pub const REQUIRED_EVICTION_POLICY: &str = "noeviction";

/// What [`RedisStore::ensure_noeviction`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionOutcome {
    /// The server already had [`REQUIRED_EVICTION_POLICY`].
    Unchanged,
    /// The policy was `from` and is now [`REQUIRED_EVICTION_POLICY`].
    Set {
        /// The policy found.
        from: String,
    },
}

/// One `name:value` line of an `INFO` section.
fn info_field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
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

    /// `name` (from `pmm_core::keys`) inside this store's namespace.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.namespace)
    }

    /// The value under `name` decoded by `decode`; a value that does not decode is
    /// [`StoreError::Corrupt`], never "absent".
    async fn get_decoded<T, E: std::fmt::Display>(
        &self,
        name: &str,
        decode: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Result<Option<T>> {
        let key = self.key(name);
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map(|raw| {
            decode(&raw).map_err(|e| StoreError::Corrupt {
                location: key,
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_redis::Connection> {
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
        let memory: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        let version = info_field(&server, "redis_version").ok_or_else(|| StoreError::Corrupt {
            location: "INFO server".into(),
            reason: "no redis_version".into(),
        })?;
        let aof_enabled = info_field(&persistence, "aof_enabled").as_deref() == Some("1");
        Ok(RedisInfo {
            version,
            aof_enabled,
            maxmemory_policy: info_field(&memory, "maxmemory_policy"),
        })
    }

    /// The bootstrap marker's version and the server's `maxmemory_policy`, in one round trip
    /// (a pipeline): what every policy check asks before it trusts a missing key.
    pub async fn state_guard(&self) -> Result<(Option<u32>, Option<String>)> {
        let key = self.key(keys::SCHEMA_VERSION_KEY);
        let (marker, memory): (Option<String>, String) = redis::pipe()
            .get(&key)
            .cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn().await?)
            .await?;
        let version = marker
            .map(|raw| {
                raw.parse::<u32>().map_err(|e| StoreError::Corrupt {
                    location: key.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok((version, info_field(&memory, "maxmemory_policy")))
    }

    /// Sets the server's `maxmemory-policy` to [`REQUIRED_EVICTION_POLICY`] unless it already
    /// is, and verifies it took. A server that refuses `CONFIG SET` (managed Redis often
    /// does) is an error naming what to configure instead.
    pub async fn ensure_noeviction(&self) -> Result<EvictionOutcome> {
        let found = self.server_info().await?.maxmemory_policy;
        if found.as_deref() == Some(REQUIRED_EVICTION_POLICY) {
            return Ok(EvictionOutcome::Unchanged);
        }
        let refused = |reason: String| StoreError::InvalidInput {
            field: "maxmemory-policy",
            reason,
        };
        let from = found.unwrap_or_else(|| "unreported".to_owned());
        let set: redis::RedisResult<()> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(REQUIRED_EVICTION_POLICY)
            .query_async(&mut self.conn().await?)
            .await;
        if let Err(e) = set {
            return Err(refused(format!(
                "is {from} and CONFIG SET was refused ({e}): configure maxmemory-policy                  {REQUIRED_EVICTION_POLICY} on the server"
            )));
        }
        match self.server_info().await?.maxmemory_policy {
            Some(p) if p == REQUIRED_EVICTION_POLICY => Ok(EvictionOutcome::Set { from }),
            other => Err(refused(format!(
                "is still {} after CONFIG SET",
                other.unwrap_or_else(|| "unreported".to_owned())
            ))),
        }
    }

    /// The breaker of a pool; `None` when it is not tripped. A value that is not a
    /// [`BreakerState`] is [`StoreError::Corrupt`], never "not tripped".
    pub async fn breaker(&self, chain: &ChainName, pool: Address) -> Result<Option<BreakerState>> {
        self.get_decoded(&keys::breaker_key(chain, pool), |raw| {
            serde_json::from_str(raw)
        })
        .await
    }

    /// Trips the breaker of a pool, or of every pool when `pool` is `None` (the global
    /// pause), unless it is already tripped: the first trip's reason and time are kept.
    /// Returns the stored state and whether this call tripped it.
    pub async fn trip_breaker(
        &self,
        chain: &ChainName,
        pool: Option<Address>,
        reason: &str,
        ts: u64,
    ) -> Result<(BreakerState, bool)> {
        let state = BreakerState {
            tripped: true,
            reason: reason.to_owned(),
            ts,
        };
        let value = serde_json::to_string(&state).map_err(|e| StoreError::InvalidInput {
            field: "reason",
            reason: e.to_string(),
        })?;
        let key = self.key(&breaker_name(chain, pool));
        let (set, stored): (i64, String) = TRIP_BREAKER
            .key(&key)
            .arg(value)
            .invoke_async(&mut self.conn().await?)
            .await?;
        let stored = serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt {
            location: key,
            reason: e.to_string(),
        })?;
        Ok((stored, set == 1))
    }

    /// The global pause of a chain (`cb:<chain>:*`); `None` when not paused.
    pub async fn global_breaker(&self, chain: &ChainName) -> Result<Option<BreakerState>> {
        self.get_decoded(&keys::global_breaker_key(chain), |raw| {
            serde_json::from_str(raw)
        })
        .await
    }

    /// Resets the breaker of a pool, or the global pause when `pool` is `None`; returns
    /// whether it was tripped.
    pub async fn reset_breaker(&self, chain: &ChainName, pool: Option<Address>) -> Result<bool> {
        let key = self.key(&breaker_name(chain, pool));
        let removed: u64 = self.conn().await?.del(key).await?;
        Ok(removed > 0)
    }

    /// The next allowed action time of a pool (unix seconds); `None` when no cooldown is set or
    /// it has passed.
    pub async fn cooldown(&self, chain: &ChainName, pool: Address) -> Result<Option<u64>> {
        self.get_decoded(&keys::cooldown_key(chain, pool), str::parse)
            .await
    }

    /// Sets the next allowed action time of a pool. The key expires at that time, so a passed
    /// cooldown leaves nothing behind.
    pub async fn set_cooldown(
        &self,
        chain: &ChainName,
        pool: Address,
        next_allowed: u64,
    ) -> Result<()> {
        let key = self.key(&keys::cooldown_key(chain, pool));
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(next_allowed)
            .arg("EXAT")
            .arg(next_allowed.max(1))
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    /// Adds `amount` to the `scope` counter of `day` (`pmm_core::keys::utc_day`) if the total
    /// stays within `cap`, atomically across every client.
    pub async fn reserve_daily_cap(
        &self,
        scope: &DailyCapScope,
        day: u64,
        amount: U256,
        cap: U256,
    ) -> Result<CapReservation> {
        let key = self.key(&keys::daily_notional_key(scope, day));
        let (granted, used): (i64, String) = RESERVE_CAP
            .key(&key)
            .arg(amount.to_string())
            .arg(cap.to_string())
            .arg(DAILY_CAP_TTL_SECS)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(CapReservation {
            granted: granted == 1,
            used: parse_amount(&key, &used)?,
        })
    }

    /// Gives back `amount` (for a reservation whose action did not happen); never goes below 0.
    /// Returns the amount used after the release.
    pub async fn release_daily_cap(
        &self,
        scope: &DailyCapScope,
        day: u64,
        amount: U256,
    ) -> Result<U256> {
        let key = self.key(&keys::daily_notional_key(scope, day));
        let used: String = RELEASE_CAP
            .key(&key)
            .arg(amount.to_string())
            .invoke_async(&mut self.conn().await?)
            .await?;
        parse_amount(&key, &used)
    }

    /// Amount used in the `scope` window of `day` (`pmm_core::keys::utc_day`): the same counter
    /// [`RedisStore::reserve_daily_cap`] adds to.
    pub async fn daily_cap_used(&self, scope: &DailyCapScope, day: u64) -> Result<U256> {
        let key = self.key(&keys::daily_notional_key(scope, day));
        let raw: Option<String> = self.conn().await?.get(&key).await?;
        raw.map_or(Ok(U256::ZERO), |raw| parse_amount(&key, &raw))
    }

    /// Raises the `scope` counter of `day` to `used` if it holds less (a rebuild from the
    /// Postgres ledger never lowers what Redis already counted). Returns the counter after.
    pub async fn restore_daily_cap(
        &self,
        scope: &DailyCapScope,
        day: u64,
        used: U256,
    ) -> Result<U256> {
        let key = self.key(&keys::daily_notional_key(scope, day));
        let after: String = RESTORE_CAP
            .key(&key)
            .arg(used.to_string())
            .arg(DAILY_CAP_TTL_SECS)
            .invoke_async(&mut self.conn().await?)
            .await?;
        parse_amount(&key, &after)
    }

    /// The key layout version recorded by the last bootstrap, if any.
    pub async fn schema_version(&self) -> Result<Option<u32>> {
        self.get_decoded(keys::SCHEMA_VERSION_KEY, str::parse).await
    }

    /// Records [`REDIS_SCHEMA_VERSION`] under the schema-version key, atomically and
    /// idempotently. Refuses a Redis that already holds a newer layout.
    pub async fn bootstrap(&self) -> Result<BootstrapOutcome> {
        let key = self.key(keys::SCHEMA_VERSION_KEY);
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
