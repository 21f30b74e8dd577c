//! `notional_ledger` and `notional_windows`: daily notional caps in Postgres.
//!
//! A reservation is made before a transaction is signed, then committed when it lands or
//! refunded when it does not (the Zodiac Roles pattern). The window row is updated with a
//! conditional `UPDATE`, so concurrent reservations from any number of replicas serialize on it
//! and the cap can never be overrun.

use alloy_primitives::U256;
use chrono::{DateTime, NaiveDate, Utc};
use pmm_core::keys::DailyCapScope;
use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::{Result, StoreError, parse_amount};
use crate::pg::PgStore;

/// Totals of one (scope, UTC day) window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowUsage {
    /// Cap scope as stored, `<chain>:<pool>` (see `pmm_core::keys::daily_cap_scope`).
    pub scope: String,
    /// UTC day.
    pub day: NaiveDate,
    /// Reserved but not yet settled.
    pub reserved: U256,
    /// Committed (the action happened).
    pub committed: U256,
}

impl WindowUsage {
    /// What counts against the cap: reserved plus committed (saturating: NUMERIC(78,0) holds
    /// sums a U256 cannot, and a saturated sum still exceeds every cap).
    pub fn used(&self) -> U256 {
        self.reserved.saturating_add(self.committed)
    }
}

/// Result of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The amount fit and is now reserved; usage after the reservation.
    Reserved(WindowUsage),
    /// The amount would exceed the cap; nothing changed; current usage.
    Denied(WindowUsage),
}

/// A reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotionalReservation {
    /// Id chosen by the caller; the later commit or refund names it.
    pub id: Uuid,
    /// Cap scope: the same one the hub reads usage under.
    pub scope: DailyCapScope,
    /// Time of the request; its UTC date selects the window.
    pub at: DateTime<Utc>,
    /// Notional to reserve, in the cap's smallest unit.
    pub amount: U256,
    /// Cap of the window.
    pub cap: U256,
}

async fn usage_of<C: GenericClient>(
    client: &C,
    scope: &str,
    day: NaiveDate,
) -> Result<WindowUsage> {
    let row = client
        .query_opt(
            "SELECT reserved::text, committed::text FROM notional_windows \
             WHERE scope = $1 AND window_day = $2",
            &[&scope, &day],
        )
        .await?;
    let (reserved, committed) = match row {
        Some(row) => (
            parse_amount("notional_windows.reserved", row.try_get(0)?)?,
            parse_amount("notional_windows.committed", row.try_get(1)?)?,
        ),
        None => (U256::ZERO, U256::ZERO),
    };
    Ok(WindowUsage {
        scope: scope.to_owned(),
        day,
        reserved,
        committed,
    })
}

/// The two ways a reservation is settled.
#[derive(Clone, Copy)]
enum Settlement {
    /// The action happened and spent this much (what the chain moved, which can differ from
    /// the reserved prediction by the rounding of later state).
    Commit(U256),
    Refund,
}

impl PgStore {
    /// Reserves `amount` in the window of `at`'s UTC day if reserved + committed + amount stays
    /// within `cap`.
    pub async fn reserve_notional(&self, r: &NotionalReservation) -> Result<ReserveOutcome> {
        let day = r.at.date_naive();
        let amount = r.amount.to_string();
        let cap = r.cap.to_string();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM notional_ledger WHERE reservation_id = $1 AND kind = 'reserve'",
                &[&r.id],
            )
            .await?;
        if exists.is_some() {
            return Err(StoreError::DuplicateReservation(r.id));
        }
        tx.execute(
            "INSERT INTO notional_windows (scope, window_day) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[&r.scope.as_str(), &day],
        )
        .await?;
        let updated = tx
            .execute(
                "UPDATE notional_windows SET reserved = reserved + $3::text::numeric, \
                 updated_at = now() WHERE scope = $1 AND window_day = $2 \
                 AND reserved + committed + $3::text::numeric <= $4::text::numeric",
                &[&r.scope.as_str(), &day, &amount, &cap],
            )
            .await?;
        if updated == 0 {
            let usage = usage_of(&*tx, r.scope.as_str(), day).await?;
            tx.commit().await?;
            return Ok(ReserveOutcome::Denied(usage));
        }
        let inserted = tx
            .execute(
                "INSERT INTO notional_ledger \
                 (reservation_id, scope, window_day, kind, amount, cap, recorded_at) \
                 VALUES ($1, $2, $3, 'reserve', $4::text::numeric, $5::text::numeric, $6)",
                &[&r.id, &r.scope.as_str(), &day, &amount, &cap, &r.at],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::DuplicateReservation(r.id));
            }
            other => other?,
        };
        let usage = usage_of(&*tx, r.scope.as_str(), day).await?;
        tx.commit().await?;
        Ok(ReserveOutcome::Reserved(usage))
    }

    /// Marks a reservation as spent: its amount leaves reserved and `spent` (what the action
    /// really moved) joins committed, so the ledger equals the chain.
    pub async fn commit_notional(&self, id: Uuid, spent: U256) -> Result<WindowUsage> {
        self.settle(id, Settlement::Commit(spent)).await
    }

    /// Gives a reservation back (the action did not happen): its amount leaves the window.
    pub async fn refund_notional(&self, id: Uuid) -> Result<WindowUsage> {
        self.settle(id, Settlement::Refund).await
    }

    async fn settle(&self, id: Uuid, how: Settlement) -> Result<WindowUsage> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let reservation = tx
            .query_opt(
                "SELECT scope, window_day, amount::text FROM notional_ledger \
                 WHERE reservation_id = $1 AND kind = 'reserve'",
                &[&id],
            )
            .await?
            .ok_or(StoreError::UnknownReservation(id))?;
        let scope: String = reservation.try_get(0)?;
        let day: NaiveDate = reservation.try_get(1)?;
        let amount: String = reservation.try_get(2)?;
        let (kind, booked) = match how {
            Settlement::Commit(spent) => ("commit", spent.to_string()),
            Settlement::Refund => ("refund", amount.clone()),
        };
        let inserted = tx
            .execute(
                "INSERT INTO notional_ledger (reservation_id, scope, window_day, kind, amount) \
                 VALUES ($1, $2, $3, $4, $5::text::numeric)",
                &[&id, &scope, &day, &kind, &booked],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(tx);
                let settlement: String = conn
                    .query_one(
                        "SELECT kind FROM notional_ledger WHERE reservation_id = $1 \
                         AND kind IN ('commit', 'refund')",
                        &[&id],
                    )
                    .await?
                    .try_get(0)?;
                return Err(StoreError::ReservationSettled { id, settlement });
            }
            other => other?,
        };
        let committed_delta = match how {
            Settlement::Commit(_) => booked.as_str(),
            Settlement::Refund => "0",
        };
        tx.execute(
            "UPDATE notional_windows SET reserved = reserved - $3::text::numeric, \
             committed = committed + $4::text::numeric, updated_at = now() \
             WHERE scope = $1 AND window_day = $2",
            &[&scope, &day, &amount, &committed_delta],
        )
        .await?;
        let usage = usage_of(&*tx, &scope, day).await?;
        tx.commit().await?;
        Ok(usage)
    }

    /// Every window of `day` with its totals: what `pmm-state bootstrap` restores Redis'
    /// daily counters from.
    pub async fn windows_of_day(&self, day: NaiveDate) -> Result<Vec<WindowUsage>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT scope, reserved::text, committed::text FROM notional_windows \
                 WHERE window_day = $1 ORDER BY scope",
                &[&day],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WindowUsage {
                    scope: row.try_get(0)?,
                    day,
                    reserved: parse_amount("notional_windows.reserved", row.try_get(1)?)?,
                    committed: parse_amount("notional_windows.committed", row.try_get(2)?)?,
                })
            })
            .collect()
    }

    /// Current totals of a window (zero when nothing was reserved in it).
    pub async fn notional_usage(
        &self,
        scope: &DailyCapScope,
        day: NaiveDate,
    ) -> Result<WindowUsage> {
        usage_of(&**self.conn().await?, scope.as_str(), day).await
    }
}
