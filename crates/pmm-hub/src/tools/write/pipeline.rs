//! The steps every write runs after `build`: dry run, policy, reservation, the durable
//! intent and its signature, then driving it to an outcome.

use super::*;

impl Hub {
    /// The named steps after `build` (see the module docs).
    pub(super) async fn execute(&self, plan: Plan) -> Result<WriteResult, ToolError> {
        let (signer, pg) = self.gate()?;
        let signer = signer.clone();
        let pg = pg.clone();
        let chain = &self.inner.chain;
        let mut steps = Vec::new();
        step(
            &mut steps,
            "build",
            true,
            format!(
                "{} to {:#x}{}",
                plan.main.label,
                plan.main.to,
                if plan.approvals.is_empty() {
                    String::new()
                } else {
                    format!(
                        " after {}",
                        plan.approvals
                            .iter()
                            .map(|a| a.0.label)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        );
        // dry run: exactly the call that will be signed, from the signer, at the pinned block,
        // with the approvals it depends on as state overrides.
        let block = plan.read.block.number;
        let mut overrides = StateOverride::default();
        if let Some(spender) = self.writes().routers.approve {
            for (_, token, amount) in &plan.approvals {
                chain
                    .add_allowance_override(
                        &mut overrides,
                        *token,
                        signer.address(),
                        spender,
                        *amount,
                    )
                    .await?;
            }
        }
        let req = TransactionRequest::default()
            .from(signer.address())
            .to(plan.main.to)
            .input(plan.main.input.clone().into());
        let sim = chain
            .simulate(
                &req,
                Some(block),
                (!overrides.is_empty()).then_some(overrides),
            )
            .await;
        let sim = match sim.map_err(|e| e.to_string()).and_then(|s| {
            check_dry_run(plan.decode, &s.output, plan.predicted.as_ref()).map(|()| s)
        }) {
            Ok(s) => s,
            Err(why) => {
                step(&mut steps, "dry_run", false, why);
                // A failing dry run is refused whatever the policy says, but a rule that
                // explains it (a deposit beyond the signer's balance fails both) is the
                // named reason.
                let report = self.policy_report(&plan).await?;
                return Ok(match (report.verdict, report.decided_by) {
                    (Verdict::Deny, Some(rule)) => {
                        step(
                            &mut steps,
                            "policy",
                            false,
                            format!("denied by {}", rule.as_str()),
                        );
                        denied(
                            &plan.key,
                            rule.as_str(),
                            steps,
                            Some(report),
                            plan.predicted,
                        )
                    }
                    _ => denied(&plan.key, "simulation", steps, Some(report), plan.predicted),
                });
            }
        };
        step(
            &mut steps,
            "dry_run",
            true,
            format!("block {block}, gas {}", sim.gas),
        );
        // policy
        let report = self.policy_report(&plan).await?;
        if report.verdict == Verdict::Deny {
            let by = report
                .decided_by
                .map_or("policy", |r| r.as_str())
                .to_owned();
            step(&mut steps, "policy", false, format!("denied by {by}"));
            return Ok(denied(&plan.key, &by, steps, Some(report), plan.predicted));
        }
        step(&mut steps, "policy", true, "allowed");
        let entry = self
            .inner
            .allowlist
            .pool(plan.pool)
            .ok_or_else(|| ToolError::Unsupported("pool is not allowlisted".into()))?;
        let limits = entry.effective_limits();
        let fees = match chain.fee_caps(limits.gas_cap_gwei).await? {
            Ok(f) => f,
            Err(e) => {
                step(&mut steps, "policy", false, e.to_string());
                return Ok(denied(
                    &plan.key,
                    "gas_cap",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
        };
        // reserve
        let redis = self.redis_required()?;
        let now = now_s();
        let scope = daily_cap_scope(&self.inner.chain_name, plan.pool);
        let day = utc_day(now);
        let notional = report.notional.map_or(U256::ZERO, |n| n.0);
        let reservation = Uuid::new_v4();
        let reserved = redis
            .reserve_write(&WriteReservation {
                id: reservation,
                chain: self.inner.chain_name.clone(),
                pool: plan.pool,
                scope: scope.clone(),
                day,
                amount: notional,
                cap: limits.max_notional_per_day.0,
                now,
                cooldown_until: now.saturating_add(limits.cooldown_s),
            })
            .await
            .map_err(|e| ToolError::Store(e.to_string()))?;
        match reserved {
            ReserveResult::Reserved { used } => step(
                &mut steps,
                "reserve",
                true,
                format!(
                    "{notional} reserved, {used} used today; cooldown {} s",
                    limits.cooldown_s
                ),
            ),
            ReserveResult::OverCap { used } => {
                step(
                    &mut steps,
                    "reserve",
                    false,
                    format!("{notional} over the daily cap ({used} used)"),
                );
                return Ok(denied(
                    &plan.key,
                    "max_notional_per_day",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
            ReserveResult::CoolingDown { until } => {
                step(
                    &mut steps,
                    "reserve",
                    false,
                    format!("cooling down until {until}"),
                );
                return Ok(denied(
                    &plan.key,
                    "cooldown",
                    steps,
                    Some(report),
                    plan.predicted,
                ));
            }
            ReserveResult::Exists(v) => {
                return Err(ToolError::Store(format!("reservation id reused ({v})")));
            }
        }
        if let Err(e) = pg
            .mirror_reservation(
                reservation,
                &scope,
                chrono::Utc::now(),
                notional,
                limits.max_notional_per_day.0,
            )
            .await
        {
            let _ = redis.refund_write(reservation, &scope, day).await;
            return Err(ToolError::Store(e.to_string()));
        }
        // intent: approvals first (their nonces precede the deposit's), under the signer lock.
        let _local = self.writes().local.clone().lock_owned().await;
        let lock = self.lock_signer().await?;
        let from = format!("{:#x}", signer.address());
        let gas_limit = sim.gas.saturating_mul(100 + GAS_MARGIN_PCT) / 100;
        let mut reservation_json = json!({"id": reservation, "scope": scope.as_str(), "day": day});
        let created = pg
            .create_intent(&NewIntent {
                key: plan.key.clone(),
                chain_id: chain.chain_id(),
                pool: Some(format!("{:#x}", plan.pool)),
                intent: plan.intent.clone(),
                from_address: from.clone(),
                call: IntentCall {
                    to: format!("{:#x}", plan.main.to),
                    input: hex_of(&plan.main.input),
                    gas_limit,
                },
                reservation_id: Some(reservation),
                notional: Some(notional.to_string()),
                steps: saved_steps(&steps, reservation_json.take(), &plan, &report),
            })
            .await;
        let main = match created {
            Ok(IntentStart::New(it)) => it,
            Ok(IntentStart::Existing(it)) => {
                // Another call with this key got here first: its intent stands, ours is void.
                let _ = redis.refund_write(reservation, &scope, day).await;
                let _ = pg.refund_notional(reservation).await;
                let r = self.drive_family(&it).await;
                lock.release().await;
                r?;
                return self
                    .replay(&plan.key)
                    .await?
                    .ok_or_else(|| ToolError::Store("intent vanished".into()));
            }
            Err(e) => {
                lock.release().await;
                let _ = redis.refund_write(reservation, &scope, day).await;
                let _ = pg.refund_notional(reservation).await;
                return Err(store_err(e));
            }
        };
        for (call, _, _) in &plan.approvals {
            let approve_gas = chain
                .estimate_gas(
                    &TransactionRequest::default()
                        .from(signer.address())
                        .to(call.to)
                        .input(call.input.clone().into()),
                    None,
                    None,
                )
                .await?;
            let created = pg
                .create_intent(&NewIntent {
                    key: format!("{}#{}", plan.key, call.label),
                    chain_id: chain.chain_id(),
                    pool: Some(format!("{:#x}", plan.pool)),
                    intent: json!({"of": plan.key, "call": call.label, "to": format!("{:#x}", call.to), "input": hex_of(&call.input)}),
                    from_address: from.clone(),
                    call: IntentCall {
                        to: format!("{:#x}", call.to),
                        input: hex_of(&call.input),
                        gas_limit: approve_gas.saturating_mul(100 + GAS_MARGIN_PCT) / 100,
                    },
                    reservation_id: None,
                    notional: None,
                    steps: json!({}),
                })
                .await
                .map_err(store_err)?;
            let it = match created {
                IntentStart::New(it) | IntentStart::Existing(it) => it,
            };
            if let Err(e) = self.sign_intent(&it, fees).await {
                lock.release().await;
                self.void_unsent(&pg, &main, e.to_string()).await;
                return Err(e);
            }
        }
        let attempt = match self.sign_intent(&main, fees).await {
            Ok(a) => a,
            Err(e) => {
                lock.release().await;
                self.void_unsent(&pg, &main, e.to_string()).await;
                return Err(e);
            }
        };
        step(
            &mut steps,
            "intent",
            true,
            format!("nonce {}, tx {}", attempt.nonce, attempt.tx_hash),
        );
        let saved = saved_steps(
            &steps,
            json!({"id": reservation, "scope": scope.as_str(), "day": day}),
            &plan,
            &report,
        );
        pg.set_steps(main.id, &saved).await.map_err(store_err)?;
        let r = self.drive_family(&main).await;
        lock.release().await;
        r?;
        let it = pg
            .intent_by_key(&plan.key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ToolError::Store("intent vanished".into()))?;
        Ok(stored_result(&it))
    }

    /// The policy's verdict on a planned write, at the pinned read and the current head.
    pub(super) async fn policy_report(&self, plan: &Plan) -> Result<RiskReport, ToolError> {
        let head = self.inner.chain.head().await?;
        Ok(match &plan.action {
            Some(action) => {
                // The policy's own view of the outputs (and any donation) at the pinned read.
                let expected = self
                    .expected_outcome(&plan.read, action)
                    .ok()
                    .filter(|(e, _)| Some(*e) == plan.expected);
                self.evaluate_policy(&plan.read, &plan.state, action, expected, head)
                    .await?
            }
            None => {
                let hold = ActionProposal::Hold {
                    reason: "dodo.reset_pool".into(),
                };
                let mut r = self
                    .evaluate_policy(&plan.read, &plan.state, &hold, None, head)
                    .await?;
                // A reset moves no notional, but every state rule must pass for it.
                if let Some(c) = r.rules.iter().find(|c| c.outcome == RuleOutcome::Warn) {
                    r.verdict = Verdict::Deny;
                    r.decided_by = Some(c.rule);
                }
                r
            }
        })
    }
}

/// What an intent row keeps of its write: the steps so far, its reservation, the prediction,
/// the risk report, and how its spend is valued at settlement (mid price and tokens).
fn saved_steps(steps: &[Step], reservation: Value, plan: &Plan, report: &RiskReport) -> Value {
    json!({
        "steps": steps,
        "reservation": reservation,
        "predicted": plan.predicted,
        "risk": report,
        "valuation": plan.state.mid_price_raw.map(|mid| json!({
            "mid": mid.0.to_string(),
            "base": format!("{:#x}", plan.read.base_token.address),
            "quote": format!("{:#x}", plan.read.quote_token.address),
        })),
    })
}

/// Whether the node's dry-run return equals the exact prediction.
fn check_dry_run(
    decode: Decode,
    out: &Bytes,
    predicted: Option<&WritePrediction>,
) -> Result<(), String> {
    let Some(p) = predicted else {
        return match decode {
            Decode::Reset => Ok(()),
            _ => Err("no prediction to compare".into()),
        };
    };
    let (shares, base, quote) = match decode {
        Decode::DvmDeposit => IDODOV2Proxy02::addDVMLiquidityCall::abi_decode_returns(out)
            .map(|r| (r.shares, r.baseAdjustedInAmount, r.quoteAdjustedInAmount))
            .map_err(|e| format!("undecodable addDVMLiquidity return: {e}"))?,
        Decode::DspDeposit => IDODODspProxy::addDSPLiquidityCall::abi_decode_returns(out)
            .map(|r| (r.shares, r.baseAdjustedInAmount, r.quoteAdjustedInAmount))
            .map_err(|e| format!("undecodable addDSPLiquidity return: {e}"))?,
        Decode::SellShares => {
            pmm_chain::abi::IDODOV2Shares::sellSharesCall::abi_decode_returns(out)
                .map(|r| (p.shares.0, r.baseAmount, r.quoteAmount))
                .map_err(|e| format!("undecodable sellShares return: {e}"))?
        }
        Decode::Reset => return Ok(()),
    };
    if (shares, base, quote) != (p.shares.0, p.base.0, p.quote.0) {
        return Err(format!(
            "the node's dry run ({shares} shares, {base} base, {quote} quote) differs from the exact math ({}, {}, {})",
            p.shares.0, p.base.0, p.quote.0
        ));
    }
    Ok(())
}
