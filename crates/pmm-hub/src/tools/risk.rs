//! Policy tools: `dodo.risk_check` and `dodo.simulate_action`. Neither signs nor sends.

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use pmm_chain::PoolRead;
use pmm_chain::abi::IDODOV2Shares;
use pmm_core::keys::{BreakerState, daily_cap_scope, utc_day};
use pmm_core::math;
use pmm_core::policy::{
    ActionProposal, ExpectedOutcome, PolicyInput, RiskReport, Verdict, evaluate,
};
use pmm_core::schema::{Amount, PoolState};

use super::read::{add, inventory_ratio, liquidity_of, mid_after_deposit, pmm_of};
use super::{
    ChainDryRun, PredictedState, RiskCheckParams, SimulateParams, SimulationResult, parse_address,
    rule_name,
};
use crate::error::ToolError;
use crate::hub::{Hub, now_s};

impl Hub {
    /// `dodo.risk_check`: the policy over the live state and the store's counters.
    pub async fn risk_check(&self, p: &RiskCheckParams) -> Result<RiskReport, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let action = p.action.clone().unwrap_or(ActionProposal::Hold {
            reason: "risk check".into(),
        });
        if let Some(target) = action.pool()
            && target != pool
        {
            return Err(ToolError::InvalidParams(format!(
                "action.pool {target} differs from pool {pool}"
            )));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let expected = self.expected_outcome(&read, &action).ok();
        self.evaluate_policy(&read, &state, &action, expected).await
    }

    /// `dodo.simulate_action`: exact math, a dry run on the node, and the policy. Never signs.
    pub async fn simulate_action(&self, p: &SimulateParams) -> Result<SimulationResult, ToolError> {
        let action = &p.action;
        let Some(pool) = action.pool() else {
            return Err(ToolError::InvalidParams(
                "action: hold names no pool and has nothing to simulate; dodo.risk_check {pool} checks a pool"
                    .into(),
            ));
        };
        let (read, state, _) = self.read_state(pool).await?;
        let expected = self.expected_outcome(&read, action);
        let (predicted, dry_run) = match &expected {
            Ok(_) => self.dry_run(&read, action).await?,
            Err(e) => (
                None,
                ChainDryRun {
                    error: Some(e.to_string()),
                    ..ChainDryRun::empty(read.block.number)
                },
            ),
        };
        let report = self
            .evaluate_policy(&read, &state, action, expected.ok())
            .await?;
        let (verdict, denied_by) = if report.verdict == Verdict::Deny {
            (Verdict::Deny, rule_name(report.decided_by))
        } else if dry_run.error.is_some() || dry_run.matches_math == Some(false) {
            (Verdict::Deny, Some("simulation".to_owned()))
        } else {
            (Verdict::Allow, None)
        };
        Ok(SimulationResult {
            verdict,
            denied_by,
            risk: report,
            predicted,
            dry_run: Some(dry_run),
        })
    }

    fn expected_outcome(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<ExpectedOutcome, ToolError> {
        match action {
            ActionProposal::Hold { .. } => {
                Err(ToolError::Unsupported("hold has no outputs".into()))
            }
            ActionProposal::AddLiquidity {
                base_amount,
                quote_amount,
                ..
            } => {
                let (kind, liq) = liquidity_of(read)?;
                let bs = math::buy_shares(
                    kind,
                    &liq,
                    add(read.base_balance, base_amount.0, "base_amount")?,
                    add(read.quote_balance, quote_amount.0, "quote_amount")?,
                )?;
                Ok(ExpectedOutcome::Add {
                    shares: Amount(bs.received),
                })
            }
            ActionProposal::RemoveLiquidity { shares, .. } => {
                let (kind, liq) = liquidity_of(read)?;
                // The executor's holding bounds the burn; the dry run checks it on chain.
                let ss = math::sell_shares(
                    kind,
                    &liq,
                    read.base_balance,
                    read.quote_balance,
                    shares.0,
                    shares.0,
                )?;
                Ok(ExpectedOutcome::Remove {
                    base: Amount(ss.base_amount),
                    quote: Amount(ss.quote_amount),
                })
            }
        }
    }

    /// Breaker, cooldown and the daily usage of `now`'s UTC day from Redis (`None` = unknown,
    /// which denies writes). Keys name the chain as the allowlist does; usage is read under
    /// `daily_cap_scope`, the scope a write reserves under.
    async fn store_inputs(
        &self,
        pool: Address,
        write: bool,
        now: u64,
    ) -> Result<(Option<BreakerState>, Option<u64>, Option<Amount>), ToolError> {
        let Some(redis) = &self.inner.redis else {
            return Ok((None, None, None));
        };
        let chain = &self.inner.chain_name;
        let breaker = redis.breaker(chain, pool).await;
        let cooldown = redis.cooldown(chain, pool).await;
        let used = redis
            .daily_cap_used(&daily_cap_scope(chain, pool), utc_day(now))
            .await;
        if write && (breaker.is_err() || cooldown.is_err() || used.is_err()) {
            metrics::counter!("pmm_hub_store_failures_total").increment(1);
        }
        let breaker = breaker.ok().map(|b| b.unwrap_or_else(BreakerState::clear));
        Ok((
            breaker,
            cooldown.ok().map(|c| c.unwrap_or(0)),
            used.ok().map(|u| Amount(U256::from(u))),
        ))
    }

    pub(crate) async fn evaluate_policy(
        &self,
        read: &PoolRead,
        state: &PoolState,
        action: &ActionProposal,
        expected: Option<ExpectedOutcome>,
    ) -> Result<RiskReport, ToolError> {
        let pool = read.pool;
        let now = now_s();
        let (breaker, cooldown_until, daily_used) =
            self.store_inputs(pool, action.is_write(), now).await?;
        let gas_price_wei = self.inner.chain.provider().get_gas_price().await.ok();
        let report = evaluate(&PolicyInput {
            proposal: action,
            state,
            allowlist: &self.inner.allowlist,
            expected,
            oracle: state.oracle_price.as_ref(),
            breaker: breaker.as_ref(),
            cooldown_until,
            daily_used,
            gas_price_wei,
            now,
        });
        // The policy alone decides a trip (deviation, stale or missing feed); the hub stores it.
        if let (Some(reason), Some(redis)) = (&report.trip_breaker, &self.inner.redis) {
            match redis
                .trip_breaker(&self.inner.chain_name, pool, reason, now)
                .await
            {
                Ok(_) => {
                    metrics::counter!("pmm_hub_breaker_trips_total").increment(1);
                    tracing::warn!(%pool, reason, "circuit breaker tripped");
                }
                Err(e) => tracing::error!(%pool, error = %e, "could not trip the circuit breaker"),
            }
        }
        Ok(report)
    }

    async fn dry_run(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<(Option<PredictedState>, ChainDryRun), ToolError> {
        let chain = &self.inner.chain;
        let from = self.inner.executor;
        let pool = read.pool;
        let (kind, liq) = liquidity_of(read)?;
        let mut run = ChainDryRun::empty(read.block.number);
        match action {
            ActionProposal::AddLiquidity {
                base_amount,
                quote_amount,
                ..
            } => {
                let bb = add(read.base_balance, base_amount.0, "base_amount")?;
                let qb = add(read.quote_balance, quote_amount.0, "quote_amount")?;
                let bs = math::buy_shares(kind, &liq, bb, qb)?;
                let ratio = mid_after_deposit(
                    kind,
                    &pmm_of(read)?,
                    bb,
                    qb,
                    bs.targets.map(|t| (t.base, t.quote)),
                )
                .and_then(|m| inventory_ratio(bb, qb, m));
                let predicted = PredictedState {
                    base_reserve: Amount(bb),
                    quote_reserve: Amount(qb),
                    total_shares: Amount(bs.new_total_supply),
                    inventory_ratio: ratio,
                };
                let overrides = chain
                    .balance_overrides(&[
                        (read.base_token.address, pool, bb),
                        (read.quote_token.address, pool, qb),
                    ])
                    .await;
                let tx = tx_of(
                    from,
                    pool,
                    IDODOV2Shares::buySharesCall { to: from }.abi_encode(),
                );
                match overrides {
                    Err(e) => run.error = Some(e.to_string()),
                    Ok(ov) => match chain.simulate(&tx, Some(read.block.number), Some(ov)).await {
                        Ok(sim) => {
                            match IDODOV2Shares::buySharesCall::abi_decode_returns(&sim.output) {
                                Ok(r) => {
                                    run.gas_estimate = Some(sim.gas);
                                    run.primary_output = Some(Amount(r.shares));
                                    run.matches_math = Some(r.shares == bs.received);
                                }
                                Err(e) => {
                                    run.error = Some(format!("undecodable buyShares return: {e}"))
                                }
                            }
                        }
                        Err(e) => run.error = Some(e.to_string()),
                    },
                }
                Ok((Some(predicted), run))
            }
            ActionProposal::RemoveLiquidity {
                shares,
                min_base,
                min_quote,
                ..
            } => {
                let ss = math::sell_shares(
                    kind,
                    &liq,
                    read.base_balance,
                    read.quote_balance,
                    shares.0,
                    shares.0,
                )?;
                let predicted = PredictedState {
                    base_reserve: Amount(ss.new_base_reserve),
                    quote_reserve: Amount(ss.new_quote_reserve),
                    total_shares: Amount(ss.new_total_supply),
                    inventory_ratio: read.mid_price.and_then(|m| {
                        inventory_ratio(ss.new_base_reserve, ss.new_quote_reserve, m)
                    }),
                };
                let call = IDODOV2Shares::sellSharesCall {
                    shareAmount: shares.0,
                    to: from,
                    baseMinAmount: min_base.0,
                    quoteMinAmount: min_quote.0,
                    data: Bytes::new(),
                    deadline: U256::from(read.block.timestamp.saturating_add(600)),
                };
                let tx = tx_of(from, pool, call.abi_encode());
                match chain.simulate(&tx, Some(read.block.number), None).await {
                    Ok(sim) => match IDODOV2Shares::sellSharesCall::abi_decode_returns(&sim.output)
                    {
                        Ok(r) => {
                            run.gas_estimate = Some(sim.gas);
                            run.primary_output = Some(Amount(r.baseAmount));
                            run.secondary_output = Some(Amount(r.quoteAmount));
                            run.matches_math = Some(
                                r.baseAmount == ss.base_amount && r.quoteAmount == ss.quote_amount,
                            );
                        }
                        Err(e) => run.error = Some(format!("undecodable sellShares return: {e}")),
                    },
                    Err(e) => run.error = Some(e.to_string()),
                }
                Ok((Some(predicted), run))
            }
            ActionProposal::Hold { .. } => Ok((None, run)),
        }
    }
}

fn tx_of(from: Address, to: Address, input: Vec<u8>) -> TransactionRequest {
    TransactionRequest::default()
        .from(from)
        .to(to)
        .input(Bytes::from(input).into())
}
