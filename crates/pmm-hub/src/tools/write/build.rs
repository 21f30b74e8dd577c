//! Building a write: the exact calls each tool will sign, from the pool state at a pinned
//! block, and what they are predicted to do.

use super::*;

impl Hub {
    /// `dodo.add_liquidity`.
    pub async fn add_liquidity(&self, p: &AddLiquidityParams) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        if p.base_amount.is_zero() {
            return Err(ToolError::InvalidParams(
                "base_amount: must be greater than 0 (buyShares needs base input)".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let (kind, liq) = liquidity_of(&read)?;
        let (base_reserve, quote_reserve) = read.vault_reserve.unwrap_or_default();
        let (base_in, quote_in) = tx::balanced_amounts(
            p.base_amount.0,
            p.quote_amount.0,
            base_reserve,
            quote_reserve,
        );
        let bs = math::buy_shares(
            kind,
            self.generation_of(&read)?,
            &liq,
            add(read.base_balance, base_in, "base_amount")?,
            add(read.quote_balance, quote_in, "quote_amount")?,
        )?;
        if bs.received < p.min_shares.0 {
            return Err(ToolError::InvalidParams(format!(
                "min_shares: the balanced deposit ({base_in} base, {quote_in} quote) mints {} shares, fewer than {}",
                bs.received, p.min_shares.0
            )));
        }
        // The proxies bound amounts, not shares: scale the share slippage onto each amount.
        let scale = |v: U256| {
            if bs.received.is_zero() {
                v
            } else {
                v.saturating_mul(p.min_shares.0) / bs.received
            }
        };
        let deadline = p
            .deadline
            .unwrap_or_else(|| now_s() + self.writes().tx_deadline_s);
        let routers = self.writes().routers;
        let main = tx::add_liquidity(
            read.kind,
            &routers,
            pool,
            p.base_amount.0,
            p.quote_amount.0,
            scale(base_in),
            scale(quote_in),
            deadline,
        )
        .map_err(|e| ToolError::Unsupported(e.to_string()))?;
        let spender = routers.approve.ok_or_else(|| {
            ToolError::Unsupported("no DODOApprove address for this chain".into())
        })?;
        let mut approvals = Vec::new();
        for (label, token, amount) in [
            ("approve_base", read.base_token.address, base_in),
            ("approve_quote", read.quote_token.address, quote_in),
        ] {
            if amount.is_zero() {
                continue;
            }
            let have = self
                .inner
                .chain
                .allowance(token, signer, spender, Some(read.block.number))
                .await?;
            if have != amount {
                approvals.push((
                    tx::approve_exact(label, token, spender, amount),
                    token,
                    amount,
                ));
            }
        }
        let action = ActionProposal::AddLiquidity {
            pool,
            base_amount: Amount(base_in),
            quote_amount: Amount(quote_in),
            min_shares: p.min_shares,
            reason: "dodo.add_liquidity".into(),
        };
        let intent = json!({
            "tool": crate::tools::ADD_LIQUIDITY,
            "pool": format!("{pool:#x}"),
            "base_amount": p.base_amount,
            "quote_amount": p.quote_amount,
            "min_shares": p.min_shares,
            "deadline": p.deadline,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(crate::tools::ADD_LIQUIDITY, &intent, read.block.number),
        };
        let decode = if read.kind == PoolType::Dvm {
            Decode::DvmDeposit
        } else {
            Decode::DspDeposit
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals,
            main,
            action: Some(action),
            predicted: Some(WritePrediction {
                shares: Amount(bs.received),
                base: Amount(base_in),
                quote: Amount(quote_in),
            }),
            expected: Some(ExpectedOutcome::Add {
                shares: Amount(bs.received),
            }),
            decode,
            read,
            state,
        })
        .await
    }

    /// `dodo.remove_liquidity`.
    pub async fn remove_liquidity(
        &self,
        p: &RemoveLiquidityParams,
    ) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        if p.shares.is_zero() {
            return Err(ToolError::InvalidParams(
                "shares: must be greater than 0".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let (kind, liq) = liquidity_of(&read)?;
        let held = self
            .inner
            .chain
            .call_sol(
                pool,
                Address::ZERO,
                &pmm_chain::abi::IDODOV2Shares::balanceOfCall { owner: signer },
                Some(read.block.number),
                None,
            )
            .await?;
        if p.shares.0 > held {
            return Err(ToolError::InvalidParams(format!(
                "shares: {} exceeds the {held} shares the signer holds",
                p.shares.0
            )));
        }
        let ss = math::sell_shares(
            kind,
            &liq,
            read.base_balance,
            read.quote_balance,
            p.shares.0,
            held,
        )?;
        let deadline = p
            .deadline
            .unwrap_or_else(|| now_s() + self.writes().tx_deadline_s);
        let main = tx::sell_shares(
            read.kind,
            pool,
            p.shares.0,
            signer,
            p.min_base.0,
            p.min_quote.0,
            deadline,
        )
        .map_err(|e| ToolError::Unsupported(e.to_string()))?;
        let action = ActionProposal::RemoveLiquidity {
            pool,
            shares: p.shares,
            min_base: p.min_base,
            min_quote: p.min_quote,
            reason: "dodo.remove_liquidity".into(),
        };
        let intent = json!({
            "tool": crate::tools::REMOVE_LIQUIDITY,
            "pool": format!("{pool:#x}"),
            "shares": p.shares,
            "min_base": p.min_base,
            "min_quote": p.min_quote,
            "deadline": p.deadline,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(crate::tools::REMOVE_LIQUIDITY, &intent, read.block.number),
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals: Vec::new(),
            main,
            action: Some(action),
            predicted: Some(WritePrediction {
                shares: p.shares,
                base: Amount(ss.base_amount),
                quote: Amount(ss.quote_amount),
            }),
            expected: Some(ExpectedOutcome::Remove {
                base: Amount(ss.base_amount),
                quote: Amount(ss.quote_amount),
            }),
            decode: Decode::SellShares,
            read,
            state,
        })
        .await
    }

    /// `dodo.reset_pool`: new i, k and fee rate of a DPP the signer owns; reserves move only
    /// out (deposits need an atomic path the hub does not have for DPPs).
    pub async fn reset_pool(&self, p: &ResetPoolParams) -> Result<WriteResult, ToolError> {
        self.gate()?;
        if let Some(k) = &p.idempotency_key {
            check_key(k)?;
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
        }
        let pool = parse_address("pool", &p.pool)?;
        let one = U256::from(math::ONE);
        if p.new_i.is_zero() || p.new_i.0 > one * one {
            return Err(ToolError::InvalidParams(
                "new_i: must be in (0, 1e36]".into(),
            ));
        }
        if p.new_k.0 > one {
            return Err(ToolError::InvalidParams("new_k: must be <= 1e18".into()));
        }
        if p.new_lp_fee_rate.0 > one {
            return Err(ToolError::InvalidParams(
                "new_lp_fee_rate: must be <= 1e18".into(),
            ));
        }
        let (read, state, _) = self.read_state(pool).await?;
        let signer = self.gate()?.0.address();
        let main = tx::dpp_reset(
            read.kind,
            pool,
            &DppReset {
                asset_to: signer,
                lp_fee_rate: p.new_lp_fee_rate.0,
                i: p.new_i.0,
                k: p.new_k.0,
                base_out: p.base_out.0,
                quote_out: p.quote_out.0,
                min_base_reserve: p.min_base_reserve.0,
                min_quote_reserve: p.min_quote_reserve.0,
            },
        )
        .map_err(|_| {
            ToolError::Unsupported(format!(
                "dodo.reset_pool needs a DPP or DPP Oracle pool, not {}",
                read.kind
            ))
        })?;
        let intent = json!({
            "tool": crate::tools::RESET_POOL,
            "pool": format!("{pool:#x}"),
            "new_i": p.new_i, "new_k": p.new_k, "new_lp_fee_rate": p.new_lp_fee_rate,
            "base_out": p.base_out, "quote_out": p.quote_out,
            "min_base_reserve": p.min_base_reserve, "min_quote_reserve": p.min_quote_reserve,
        });
        let key = match &p.idempotency_key {
            Some(k) => k.clone(),
            None => derived_key(crate::tools::RESET_POOL, &intent, read.block.number),
        };
        self.execute(Plan {
            key,
            pool,
            intent,
            approvals: Vec::new(),
            main,
            action: None,
            predicted: None,
            expected: None,
            decode: Decode::Reset,
            read,
            state,
        })
        .await
    }
}
