//! Operator tools: `dodo.pause_pool` and `dodo.resume_pool`.

use super::{BreakerResult, PauseParams, PoolParams, parse_address};
use crate::error::ToolError;
use crate::hub::{Hub, now_s};

impl Hub {
    /// `dodo.pause_pool` (operator): trips the breaker.
    pub async fn pause_pool(&self, p: &PauseParams) -> Result<BreakerResult, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let redis = self.redis_required()?;
        let st = redis
            .trip_breaker(&self.inner.chain_name, pool, &p.reason, now_s())
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        Ok(BreakerResult {
            pool,
            tripped: st.tripped,
            reason: st.reason,
        })
    }

    /// `dodo.resume_pool` (operator): clears the breaker.
    pub async fn resume_pool(&self, p: &PoolParams) -> Result<BreakerResult, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let redis = self.redis_required()?;
        redis
            .reset_breaker(&self.inner.chain_name, pool)
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        Ok(BreakerResult {
            pool,
            tripped: false,
            reason: String::new(),
        })
    }
}
