//! Typed errors of the store layer.

use uuid::Uuid;

/// Everything a store call can fail with. Callers on a state-changing path treat every variant
/// as "deny": an unreachable or inconsistent store never means "allowed".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Postgres connection string did not parse.
    #[error("invalid Postgres URL: {0}")]
    InvalidPostgresUrl(String),
    /// The Redis connection string did not parse.
    #[error("invalid Redis URL: {0}")]
    InvalidRedisUrl(String),
    /// No Postgres connection could be obtained (refused, timed out, pool closed).
    #[error("Postgres unavailable at {endpoint}: {reason}")]
    PostgresUnavailable {
        /// host:port list, without credentials.
        endpoint: String,
        /// What the driver reported.
        reason: String,
    },
    /// No Redis connection could be obtained.
    #[error("Redis unavailable at {endpoint}: {reason}")]
    RedisUnavailable {
        /// host:port, without credentials.
        endpoint: String,
        /// What the driver reported.
        reason: String,
    },
    /// A Postgres statement failed.
    #[error("Postgres error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A Redis command failed.
    #[error("Redis error: {0}")]
    Redis(#[from] deadpool_redis::redis::RedisError),
    /// A stored value could not be decoded: the store is treated as unreadable, not as empty.
    #[error("corrupt value in {location}: {reason}")]
    Corrupt {
        /// Table/column or Redis key.
        location: String,
        /// Why it did not decode.
        reason: String,
    },
    /// An argument is outside what the schema can hold.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A notional reservation id was used twice.
    #[error("notional reservation {0} already exists")]
    DuplicateReservation(Uuid),
    /// Commit or refund of a reservation that was never made.
    #[error("notional reservation {0} does not exist")]
    UnknownReservation(Uuid),
    /// Commit or refund of a reservation that was already committed or refunded.
    #[error("notional reservation {id} was already settled ({settlement})")]
    ReservationSettled {
        /// The reservation.
        id: Uuid,
        /// `commit` or `refund`.
        settlement: String,
    },
    /// An idempotency key came back with a different intent than the one stored under it.
    #[error("idempotency key {0} is already used by a different intent")]
    IdempotencyConflict(String),
    /// The caller no longer holds the lease it tried to renew or release.
    #[error("lease {name} is no longer held by {holder}")]
    LeaseLost {
        /// Lease name.
        name: String,
        /// The holder that lost it.
        holder: String,
    },
    /// The background tool-call writer has stopped.
    #[error("tool call writer is closed")]
    WriterClosed,
    /// Redis holds a newer bootstrap schema than this binary knows.
    #[error("Redis schema version {found} is newer than this binary's {expected}")]
    RedisSchemaNewer {
        /// Version found in Redis.
        found: u32,
        /// Version this binary writes.
        expected: u32,
    },
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Converts an unsigned value into the signed column type, rejecting what does not fit.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::InvalidInput {
        field,
        reason: format!("{value} exceeds {}", i64::MAX),
    })
}

/// Converts a signed column value back, treating a negative value as corruption.
pub(crate) fn from_i64(location: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        location: location.to_owned(),
        reason: format!("negative value {value}"),
    })
}

/// Parses a stored decimal amount (a NUMERIC column or a Redis counter), treating anything else
/// as corruption rather than zero.
pub(crate) fn parse_amount(location: &str, raw: &str) -> Result<alloy_primitives::U256> {
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    let parsed = if digits {
        alloy_primitives::U256::from_str_radix(raw, 10).map_err(|e| e.to_string())
    } else {
        Err("not a decimal integer".to_owned())
    };
    parsed.map_err(|e| StoreError::Corrupt {
        location: location.to_owned(),
        reason: format!("{raw:?}: {e}"),
    })
}
