//! Settling a finished write: its reservation committed at what the chain really moved, or
//! refunded.

use super::*;

impl Hub {
    /// Ends an intent nothing of which was sent: its reservation goes back and it is `dropped`
    /// with why. When the store cannot record that, the intent stays open and the next start's
    /// `recover_intents` voids it, so this only logs.
    pub(super) async fn void_unsent(&self, pg: &pmm_store::PgStore, it: &Intent, why: String) {
        self.settle(it, false).await;
        if let Err(e) = pg.finish_intent(it.id, &Outcome::dropped(why)).await {
            tracing::warn!(intent = %it.id, error = %e, "unsent intent left open; the next start voids it");
        }
    }

    /// Commits (success) or refunds the reservation of a write, in Redis and the ledger.
    pub(super) async fn settle(&self, main: &Intent, success: bool) {
        let (Some(redis), Some(pg)) = (&self.inner.redis, &self.inner.pg) else {
            return;
        };
        let Some(id) = main.reservation_id else {
            return;
        };
        let Some((scope, day)) = reservation_of(main) else {
            tracing::error!(key = %main.key, "intent without its reservation window");
            return;
        };
        let spent = if success {
            Some(self.spent_notional(main).await)
        } else {
            None
        };
        let r = if let Some(spent) = spent {
            redis.commit_write(id, &scope, day, spent).await.map(drop)
        } else {
            redis.refund_write(id, &scope, day).await.map(drop)
        };
        if let Err(e) = r {
            tracing::error!(key = %main.key, error = %e, "could not settle the Redis reservation");
        }
        let l = if let Some(spent) = spent {
            pg.commit_notional(id, spent).await
        } else {
            pg.refund_notional(id).await
        };
        match l {
            Ok(_) | Err(pmm_store::StoreError::ReservationSettled { .. }) => {}
            Err(e) => tracing::error!(key = %main.key, error = %e, "could not settle the ledger"),
        }
    }

    /// What a confirmed write really moved, valued at the mid price its policy check used: the
    /// tokens its receipt's `Transfer` logs carried between the signer and the pool (into the
    /// pool for a deposit, out of it for a removal). Later state can round a deposit a few units
    /// below its prediction, and the ledger must equal the chain. Falls back to the reserved
    /// notional when the receipt or the saved valuation is missing (over-counting fails closed).
    pub(super) async fn spent_notional(&self, main: &Intent) -> U256 {
        let reserved = main
            .notional
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(U256::ZERO);
        let Some(pg) = &self.inner.pg else {
            return reserved;
        };
        let it = match pg.intent_by_key(&main.key).await {
            Ok(Some(it)) => it,
            _ => return reserved,
        };
        let (Some(signer), Some(saved)) = (&self.writes().signer, it.steps.as_ref()) else {
            return reserved;
        };
        let mined: Option<Mined> = it
            .receipt
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        let valuation = saved.get("valuation").and_then(|v| {
            Some((
                v.get("mid")?.as_str()?.parse::<U256>().ok()?,
                v.get("base")?.as_str()?.parse::<Address>().ok()?,
                v.get("quote")?.as_str()?.parse::<Address>().ok()?,
            ))
        });
        let (Some(mined), Some((mid, base, quote)), Some(pool)) = (
            mined,
            valuation,
            it.pool.as_deref().and_then(|p| p.parse::<Address>().ok()),
        ) else {
            return reserved;
        };
        let me = signer.address();
        let (from, to) = match it.intent.get("tool").and_then(Value::as_str) {
            Some(crate::tools::ADD_LIQUIDITY) => (me, pool),
            Some(crate::tools::REMOVE_LIQUIDITY) => (pool, me),
            _ => return reserved,
        };
        pmm_core::policy::notional_of(
            Amount(mined.moved(base, from, to)),
            Amount(mined.moved(quote, from, to)),
            Amount(mid),
        )
        .map_or(reserved, |n| n.0)
    }
}
