//! Finishing at start what a killed hub left open.

use super::*;

impl Hub {
    pub(super) fn gas_cap_of(&self, it: &Intent) -> u64 {
        it.pool
            .as_deref()
            .and_then(|p| p.parse::<Address>().ok())
            .and_then(|p| self.inner.allowlist.pool(p))
            .map_or(0, |e| e.effective_limits().gas_cap_gwei)
    }

    /// Finishes every open intent of the signer (approvals and deposits alike): run at start,
    /// so a hub killed between send and receipt completes what it sent.
    pub async fn recover_intents(&self) -> Result<usize, ToolError> {
        let (signer, pg) = self.gate()?;
        let chain_id = self.inner.chain.chain_id();
        let from = format!("{:#x}", signer.address());
        let pending = self.inner.chain.pending_nonce(signer.address()).await?;
        pg.reconcile_nonce(chain_id, &from, pending)
            .await
            .map_err(store_err)?;
        let _local = self.writes().local.clone().lock_owned().await;
        let lock = self.lock_signer().await?;
        let open = pg
            .unfinished_intents(chain_id, &from)
            .await
            .map_err(store_err)?;
        let mut done = 0;
        let mut result = Ok(());
        for it in open.iter().filter(|i| !i.key.contains('#')) {
            if it.status == TxStatus::Pending && it.nonce.is_none() {
                // Never signed: nothing left the hub. Void it and give the notional back.
                self.void_unsent(pg, it, "never signed before a restart".into())
                    .await;
                done += 1;
                continue;
            }
            match self.drive_family(it).await {
                Ok(()) => done += 1,
                Err(e) => result = Err(e),
            }
        }
        lock.release().await;
        result.map(|()| done)
    }
}
