//! Policy tools: `dodo.risk_check` and `dodo.simulate_action`. Neither signs, sends, nor
//! changes any state: breakers are tripped by the pool monitor ([`crate::monitor`]), and these
//! tools report what is stored.

use alloy::primitives::{Address, Bytes, U256};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use pmm_chain::abi::IDODOV2Shares;
use pmm_chain::types::has_shares;
use pmm_chain::{Head, PoolRead};
use pmm_core::keys::{BreakerState, daily_cap_scope, utc_day};
use pmm_core::math;
use pmm_core::policy::{
    ActionProposal, Donation, ExpectedOutcome, Holdings, PolicyInput, RiskReport, Verdict, evaluate,
};
use pmm_core::schema::{Amount, PoolState};
use pmm_store::policy_state;

use super::read::{
    add, inventory_ratio, liquidity_of, mid_after_deposit, pmm_of, state_after, twap_check,
};
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
        let head = self.current_head().await?;
        let (read, state, _) = self.read_unchecked_at(pool, head.number).await?;
        let expected = self.expected_outcome(&read, &action).ok();
        self.evaluate_policy(&read, &state, &action, expected, head)
            .await
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
        let head = self.current_head().await?;
        let (read, state, _) = self.read_unchecked_at(pool, head.number).await?;
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
            .evaluate_policy(&read, &state, action, expected.ok(), head)
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

    /// The exact outputs of the action, and for an add what it donates to the other LPs.
    pub(crate) fn expected_outcome(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<(ExpectedOutcome, Option<Donation>), ToolError> {
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
                let generation = self.generation_of(read)?;
                let (bb, qb) = (
                    add(read.base_balance, base_amount.0, "base_amount")?,
                    add(read.quote_balance, quote_amount.0, "quote_amount")?,
                );
                let bs = math::buy_shares(kind, generation, &liq, bb, qb)?;
                let targets = bs.targets.map(|t| (t.base, t.quote));
                twap_check(
                    read,
                    generation,
                    &state_after(kind, &pmm_of(read)?, bb, qb, targets),
                )?;
                Ok((
                    ExpectedOutcome::Add {
                        shares: Amount(bs.received),
                    },
                    Some(Donation {
                        base: Amount(bs.donated_base),
                        quote: Amount(bs.donated_quote),
                    }),
                ))
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
                // The burn syncs the reserves (and a TWAP pool prices them) only when it pays.
                if !(ss.base_amount.is_zero() && ss.quote_amount.is_zero()) {
                    let after = state_after(
                        kind,
                        &pmm_of(read)?,
                        ss.new_base_reserve,
                        ss.new_quote_reserve,
                        ss.targets.map(|t| (t.base, t.quote)),
                    );
                    twap_check(read, self.generation_of(read)?, &after)?;
                }
                Ok((
                    ExpectedOutcome::Remove {
                        base: Amount(ss.base_amount),
                        quote: Amount(ss.quote_amount),
                    },
                    None,
                ))
            }
        }
    }

    /// Breaker (the global pause wins), cooldown and the daily usage of `now`'s UTC day from
    /// Redis (`None` = unknown, which denies writes), and why the store's state cannot be
    /// trusted, if it cannot: without the bootstrap marker a missing key may be a lost trip
    /// or cap, so nothing read from it counts. Usage is read under `daily_cap_scope`, the
    /// scope a write reserves under.
    async fn store_inputs(&self, pool: Address, write: bool, now: u64) -> StoreInputs {
        let Some(redis) = &self.inner.redis else {
            return StoreInputs::default();
        };
        let chain = &self.inner.chain_name;
        let available = policy_state::availability(redis).await;
        let global = redis.global_breaker(chain).await;
        let breaker = redis.breaker(chain, pool).await;
        let cooldown = redis.cooldown(chain, pool).await;
        let used = redis
            .daily_cap_used(&daily_cap_scope(chain, pool), utc_day(now))
            .await;
        let failed = available.is_err()
            || global.is_err()
            || breaker.is_err()
            || cooldown.is_err()
            || used.is_err();
        if write && failed {
            metrics::counter!("pmm_hub_store_failures_total").increment(1);
        }
        let breaker = match (global, breaker) {
            (Ok(Some(g)), _) if g.tripped => Some(BreakerState {
                reason: format!("global pause: {}", g.reason),
                ..g
            }),
            (Ok(_), Ok(b)) => Some(b.unwrap_or_else(BreakerState::clear)),
            _ => None,
        };
        StoreInputs {
            unavailable: match available {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(why),
                // Redis unreachable: the unknown inputs below deny already.
                Err(_) => None,
            },
            breaker,
            cooldown_until: cooldown.ok().map(|c| c.unwrap_or(0)),
            daily_used: used.ok().map(Amount),
        }
    }

    /// The executor's holdings in the pool's tokens and shares at the read's block; `None`
    /// without an executor or when they cannot be read.
    async fn holdings(&self, read: &PoolRead) -> Option<Holdings> {
        let owner = self.inner.executor?;
        let h = self
            .inner
            .chain
            .holdings(
                read.pool,
                read.base_token.address,
                read.quote_token.address,
                has_shares(read.kind),
                owner,
                read.block.number,
            )
            .await
            .map_err(
                |e| tracing::warn!(pool = %read.pool, error = %e, "executor holdings unreadable"),
            )
            .ok()?;
        Some(Holdings {
            base: Amount(h.base),
            quote: Amount(h.quote),
            shares: h.shares.map(Amount),
        })
    }

    pub(crate) async fn evaluate_policy(
        &self,
        read: &PoolRead,
        state: &PoolState,
        action: &ActionProposal,
        expected: Option<(ExpectedOutcome, Option<Donation>)>,
        head: Head,
    ) -> Result<RiskReport, ToolError> {
        let now = now_s();
        let store = self.store_inputs(read.pool, action.is_write(), now).await;
        let holdings = if action.is_write() {
            self.holdings(read).await
        } else {
            None
        };
        Ok(evaluate(&PolicyInput {
            proposal: action,
            state,
            allowlist: &self.inner.allowlist,
            profiles: &self.inner.profiles,
            expected: expected.map(|(e, _)| e),
            donation: expected.and_then(|(_, d)| d),
            holdings,
            state_unavailable: store.unavailable.as_deref(),
            oracle: state.oracle_price.as_ref(),
            breaker: store.breaker.as_ref(),
            cooldown_until: store.cooldown_until,
            daily_used: store.daily_used,
            gas_price_wei: Some(head.gas_price_wei),
            now,
        }))
    }

    async fn dry_run(
        &self,
        read: &PoolRead,
        action: &ActionProposal,
    ) -> Result<(Option<PredictedState>, ChainDryRun), ToolError> {
        let chain = &self.inner.chain;
        let from = self.fee_trader();
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
                let bs = math::buy_shares(kind, self.generation_of(read)?, &liq, bb, qb)?;
                let ratio = mid_after_deposit(
                    kind,
                    self.generation_of(read)?,
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

/// What the store says about a pool, as policy inputs.
#[derive(Default)]
struct StoreInputs {
    unavailable: Option<String>,
    breaker: Option<BreakerState>,
    cooldown_until: Option<u64>,
    daily_used: Option<Amount>,
}

fn tx_of(from: Address, to: Address, input: Vec<u8>) -> TransactionRequest {
    TransactionRequest::default()
        .from(from)
        .to(to)
        .input(Bytes::from(input).into())
}
