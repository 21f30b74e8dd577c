//! Operator tools: `dodo.pause_pool` and `dodo.resume_pool`, for one pool or (`"pool": "*"`)
//! every pool. Each is a `policy_events` row naming the operator, written before Redis
//! changes; a resume whose row cannot be written does not happen.

use pmm_store::PolicyEventKind;
use pmm_store::policy_state::{self, Change};

use super::{BreakerResult, PauseParams, ResumeParams, parse_breaker_target};
use crate::auth::Caller;
use crate::error::ToolError;
use crate::hub::{Hub, now_s};

impl Hub {
    /// `dodo.pause_pool` (operator): trips the breaker, keeping an earlier trip's reason.
    pub async fn pause_pool(
        &self,
        caller: &Caller,
        p: &PauseParams,
    ) -> Result<BreakerResult, ToolError> {
        let pool = parse_breaker_target(&p.pool)?;
        let redis = self.redis_required()?;
        let change = Change {
            chain_id: self.inner.chain.chain_id(),
            chain: &self.inner.chain_name,
            pool,
            actor: &caller.name,
            reason: &p.reason,
            block: None,
            now: now_s(),
        };
        let (outcome, not_durable) = policy_state::trip(
            self.inner.pg.as_ref(),
            redis,
            PolicyEventKind::Pause,
            &change,
        )
        .await
        .map_err(|e| ToolError::Store(e.to_string()))?;
        if let Some(e) = not_durable {
            tracing::error!(pool = %p.pool, error = %e, "pause not recorded in Postgres");
        }
        Ok(BreakerResult {
            pool: p.pool.clone(),
            tripped: outcome.state.tripped,
            reason: outcome.state.reason,
            changed: outcome.tripped_now,
        })
    }

    /// `dodo.resume_pool` (operator): clears the breaker once the resume is recorded.
    pub async fn resume_pool(
        &self,
        caller: &Caller,
        p: &ResumeParams,
    ) -> Result<BreakerResult, ToolError> {
        let pool = parse_breaker_target(&p.pool)?;
        let redis = self.redis_required()?;
        let pg = self.inner.pg.as_ref().ok_or_else(|| {
            ToolError::Store(
                "no DATABASE_URL configured: a resume must be recorded before it happens".into(),
            )
        })?;
        let change = Change {
            chain_id: self.inner.chain.chain_id(),
            chain: &self.inner.chain_name,
            pool,
            actor: &caller.name,
            reason: "resumed by operator",
            block: None,
            now: now_s(),
        };
        let was = policy_state::resume(pg, redis, &change)
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        Ok(BreakerResult {
            pool: p.pool.clone(),
            tripped: false,
            reason: String::new(),
            changed: was,
        })
    }
}
