//! Signing at the shared nonce, sending, waiting for receipts and replacing stuck
//! transactions at the same nonce with higher fees.

use super::*;

impl Hub {
    /// Signs an unsigned intent at the signer's next nonce (no-op when already signed).
    pub(super) async fn sign_intent(
        &self,
        it: &Intent,
        fees: FeeCaps,
    ) -> Result<Attempt, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let call = intent_call(it)?;
        let gas_limit = it.call.as_ref().map_or(0, |c| c.gas_limit);
        let pending = chain.pending_nonce(signer.address()).await?;
        let chain_id = chain.chain_id();
        let signed = pg
            .sign_with_next_nonce(
                it.id,
                chain_id,
                &format!("{:#x}", signer.address()),
                pending,
                |nonce| {
                    pmm_chain::send::sign(
                        signer.tx_signer(),
                        &call,
                        &TxParams {
                            chain_id,
                            nonce,
                            gas_limit,
                            fees,
                        },
                    )
                    .map(|s| attempt_of(&s, 0))
                },
            )
            .await
            .map_err(store_err)?;
        signed.map_err(ToolError::Chain)
    }

    /// Sends and awaits the open intents of one write (approvals, then the deposit), then
    /// settles the deposit's reservation and records every outcome.
    pub(super) async fn drive_family(&self, main: &Intent) -> Result<(), ToolError> {
        let (_, pg) = self.gate()?;
        let mut family = Vec::new();
        for label in ["approve_base", "approve_quote"] {
            if let Some(it) = pg
                .intent_by_key(&format!("{}#{label}", main.key))
                .await
                .map_err(store_err)?
            {
                family.push(it);
            }
        }
        for it in &family {
            if !it.status.is_final() {
                self.send_intent(it).await?;
            }
        }
        let finished = self.drive_intent(main).await?;
        for it in &family {
            if !it.status.is_final() {
                self.drive_intent(it).await?;
            }
        }
        if let Some(success) = finished {
            self.settle(main, success).await;
        }
        Ok(())
    }

    /// Sends the latest attempt of an intent (signing it first if it never was).
    pub(super) async fn send_intent(&self, it: &Intent) -> Result<Option<Attempt>, ToolError> {
        let (_, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let mut attempts = pg.attempts(it.id).await.map_err(store_err)?;
        if attempts.is_empty() {
            if it.status != TxStatus::Pending {
                return Err(ToolError::Store(format!(
                    "intent {} lost its attempts",
                    it.key
                )));
            }
            let entry_cap = self.gas_cap_of(it);
            let fees = chain
                .fee_caps(entry_cap)
                .await?
                .map_err(|e| ToolError::Unsupported(e.to_string()))?;
            attempts.push(self.sign_intent(it, fees).await?);
        }
        let Some(latest) = attempts.last().cloned() else {
            return Ok(None);
        };
        match chain.send_raw(&signed_of(&latest)?).await? {
            SendOutcome::Accepted | SendOutcome::NonceUsed(_) => {
                pg.mark_sent(it.id).await.map_err(store_err)?;
            }
            SendOutcome::Rejected(reason) => {
                tracing::warn!(key = %it.key, %reason, "transaction rejected by the node");
                return Err(ToolError::Unsupported(format!(
                    "node rejected the transaction: {reason}"
                )));
            }
        }
        Ok(Some(latest))
    }

    /// Sends, waits, replaces when stuck; records the outcome. `Some(success)` once mined (or
    /// failed for good), `None` while still pending after the receipt timeout.
    pub(super) async fn drive_intent(&self, it: &Intent) -> Result<Option<bool>, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain = &self.inner.chain;
        let w = self.writes();
        let Some(mut latest) = self.send_intent(it).await? else {
            return Ok(None);
        };
        let started = Instant::now();
        loop {
            let hashes: Vec<B256> = pg
                .attempts(it.id)
                .await
                .map_err(store_err)?
                .iter()
                .filter_map(|a| a.tx_hash.parse().ok())
                .collect();
            let remaining = w.receipt_timeout.saturating_sub(started.elapsed());
            let wait = w.replace_after.min(remaining);
            if let Some(m) = chain.wait_mined(&hashes, w.confirmations, wait).await? {
                return self.record_mined(it, &m).await.map(Some);
            }
            if started.elapsed() >= w.receipt_timeout {
                return Ok(None);
            }
            // Still not mined: replace at the same nonce with both caps raised.
            let cap = self.gas_cap_of(it);
            let fees = FeeCaps {
                max_fee_per_gas: latest.max_fee_per_gas,
                max_priority_fee_per_gas: latest.max_priority_fee_per_gas,
            };
            let bumped = match fees.bumped(cap) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(key = %it.key, error = %e, "replacement refused by the gas cap");
                    continue;
                }
            };
            let call = intent_call(it)?;
            let gas_limit = it.call.as_ref().map_or(0, |c| c.gas_limit);
            let signed = pmm_chain::send::sign(
                signer.tx_signer(),
                &call,
                &TxParams {
                    chain_id: chain.chain_id(),
                    nonce: latest.nonce,
                    gas_limit,
                    fees: bumped,
                },
            )?;
            let next = attempt_of(&signed, latest.attempt + 1);
            pg.record_replacement(it.id, &next)
                .await
                .map_err(store_err)?;
            match chain.send_raw(&signed).await? {
                SendOutcome::Accepted | SendOutcome::NonceUsed(_) => {}
                SendOutcome::Rejected(reason) => {
                    tracing::warn!(key = %it.key, %reason, "replacement rejected");
                }
            }
            metrics::counter!("pmm_hub_tx_replacements_total").increment(1);
            tracing::info!(key = %it.key, nonce = latest.nonce, tx = %next.tx_hash, "replaced a stuck transaction");
            latest = next;
        }
    }

    pub(super) async fn record_mined(&self, it: &Intent, m: &Mined) -> Result<bool, ToolError> {
        let (signer, pg) = self.gate()?;
        let revert_reason = if m.success {
            None
        } else {
            let call = intent_call(it)?;
            let gas = it.call.as_ref().map_or(0, |c| c.gas_limit);
            Some(
                self.inner
                    .chain
                    .revert_reason(m.hash, signer.address(), &call, gas, m.block_number)
                    .await,
            )
        };
        pg.finish_intent(
            it.id,
            &Outcome {
                status: if m.success {
                    TxStatus::Confirmed
                } else {
                    TxStatus::Failed
                },
                tx_hash: Some(format!("{:#x}", m.hash)),
                receipt: serde_json::to_value(m).ok(),
                revert_reason,
                gas_used: Some(m.gas_used),
                error: None,
            },
        )
        .await
        .map_err(store_err)?;
        metrics::counter!("pmm_hub_writes_total", "status" => if m.success { "confirmed" } else { "reverted" }).increment(1);
        Ok(m.success)
    }
}

fn intent_call(it: &Intent) -> Result<Call, ToolError> {
    let c = it
        .call
        .as_ref()
        .ok_or_else(|| ToolError::Store(format!("intent {} has no call", it.key)))?;
    Ok(Call {
        label: "stored",
        to: c
            .to
            .parse()
            .map_err(|_| ToolError::Store("stored call target is not an address".into()))?,
        input: parse_hex("call_input", &c.input)?,
    })
}

fn attempt_of(s: &SignedTx, attempt: u32) -> Attempt {
    Attempt {
        attempt,
        nonce: s.nonce,
        tx_hash: format!("{:#x}", s.hash),
        raw_tx: hex_of(&s.raw),
        max_fee_per_gas: s.fees.max_fee_per_gas,
        max_priority_fee_per_gas: s.fees.max_priority_fee_per_gas,
    }
}

fn signed_of(a: &Attempt) -> Result<SignedTx, ToolError> {
    Ok(SignedTx {
        hash: a
            .tx_hash
            .parse()
            .map_err(|_| ToolError::Store("stored hash is not 32 bytes".into()))?,
        raw: parse_hex("raw_tx", &a.raw_tx)?,
        nonce: a.nonce,
        fees: FeeCaps {
            max_fee_per_gas: a.max_fee_per_gas,
            max_priority_fee_per_gas: a.max_priority_fee_per_gas,
        },
    })
}
