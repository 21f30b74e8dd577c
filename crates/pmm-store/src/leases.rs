//! `worker_leases`: at most one live holder per named job across replicas.
//!
//! Expiry is judged by the database clock, so replicas with skewed clocks still agree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use crate::error::{Result, StoreError, from_i64, to_i64};
use crate::pg::PgStore;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Job name, e.g. `agent:31337:0xpool`.
    pub name: String,
    /// Holder id (host/process).
    pub holder: String,
    /// Grows whenever the holder changes; writes carrying an older fence are stale.
    pub fence: u64,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(Self {
            name: row.try_get("name")?,
            holder: row.try_get("holder")?,
            fence: from_i64("worker_leases.fence", row.try_get("fence")?)?,
            expires_at: row.try_get("expires_at")?,
        })
    }
}

fn ttl_millis(ttl: Duration) -> Result<i64> {
    match i64::try_from(ttl.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err(StoreError::InvalidInput {
            field: "ttl",
            reason: format!("{ttl:?} must be between 1 ms and i64::MAX ms"),
        }),
    }
}

impl PgStore {
    /// Takes the lease if it is free, expired, or already held by `holder` (then it is
    /// extended). Returns `None` while another holder's lease is live.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let ttl = ttl_millis(ttl)?;
        self.conn()
            .await?
            .query_opt(
                "INSERT INTO worker_leases AS l \
                 (name, holder, fence, acquired_at, renewed_at, expires_at) \
                 VALUES ($1, $2, 1, now(), now(), now() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET \
                   holder = EXCLUDED.holder, \
                   fence = CASE WHEN l.holder = EXCLUDED.holder THEN l.fence ELSE l.fence + 1 END, \
                   acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at \
                                      ELSE now() END, \
                   renewed_at = now(), \
                   expires_at = EXCLUDED.expires_at \
                 WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now() \
                 RETURNING name, holder, fence, expires_at",
                &[&name, &holder, &ttl],
            )
            .await?
            .as_ref()
            .map(Lease::from_row)
            .transpose()
    }

    /// Extends a held lease. Fails with [`StoreError::LeaseLost`] when it expired and someone
    /// else took it (the fence moved) or it was released.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let ttl = ttl_millis(ttl)?;
        let fence = to_i64("fence", lease.fence)?;
        self.conn()
            .await?
            .query_opt(
                "UPDATE worker_leases SET renewed_at = now(), \
                 expires_at = now() + $4::bigint * interval '1 millisecond' \
                 WHERE name = $1 AND holder = $2 AND fence = $3 \
                 RETURNING name, holder, fence, expires_at",
                &[&lease.name, &lease.holder, &fence, &ttl],
            )
            .await?
            .as_ref()
            .map(Lease::from_row)
            .transpose()?
            .ok_or_else(|| StoreError::LeaseLost {
                name: lease.name.clone(),
                holder: lease.holder.clone(),
            })
    }

    /// Extends several held leases in one statement, so a holder of many renews them all in
    /// one round trip however busy the database is. Returns the renewed leases; one missing
    /// from the result was lost (it expired and someone else took it, or it was released
    /// and retaken).
    pub async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<Lease>> {
        let ttl = ttl_millis(ttl)?;
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = leases.iter().map(|l| l.name.as_str()).collect();
        let holders: Vec<&str> = leases.iter().map(|l| l.holder.as_str()).collect();
        let fences = leases
            .iter()
            .map(|l| to_i64("fence", l.fence))
            .collect::<Result<Vec<i64>>>()?;
        let rows = self
            .conn()
            .await?
            .query(
                "UPDATE worker_leases AS l SET renewed_at = now(), \
                 expires_at = now() + $4::bigint * interval '1 millisecond' \
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS h(name, holder, fence) \
                 WHERE l.name = h.name AND l.holder = h.holder AND l.fence = h.fence \
                 RETURNING l.name, l.holder, l.fence, l.expires_at",
                &[&names, &holders, &fences, &ttl],
            )
            .await?;
        rows.iter().map(Lease::from_row).collect()
    }

    /// Lets a lease go early so another worker can take it at once. Returns whether it was
    /// still held by this lease.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let fence = to_i64("fence", lease.fence)?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE worker_leases SET expires_at = now() \
                 WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()",
                &[&lease.name, &lease.holder, &fence],
            )
            .await?;
        Ok(n == 1)
    }

    /// Holders of the live leases whose names start with `prefix`, sorted: e.g. the workers
    /// that currently announce themselves under `agent-worker:<chain>:`.
    pub async fn live_holders(&self, prefix: &str) -> Result<Vec<String>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT DISTINCT holder FROM worker_leases \
                 WHERE starts_with(name, $1) AND expires_at > now() ORDER BY holder",
                &[&prefix],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get("holder").map_err(Into::into))
            .collect()
    }
}
