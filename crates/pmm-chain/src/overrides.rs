//! State overrides that credit ERC20 balances, so a deposit can be dry-run as if the tokens
//! had already been transferred (DODO pools read their inputs as balance minus reserve).
//!
//! The balance mapping's storage slot differs per token; it is found by probing: write a
//! marker into the candidate slot of a holder through an override and see whether
//! `balanceOf(holder)` returns it. Found slots are cached per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::state::{AccountOverride, StateOverride};
use alloy::sol_types::SolValue;

use crate::abi::IERC20;
use crate::client::ChainClient;
use crate::error::ChainError;

/// Candidate slots probed: solmate/OpenZeppelin layouts put `balanceOf` within the first few.
const MAX_SLOT_PROBE: u64 = 12;
/// A value no real balance holds, so a match proves the slot.
const MARKER: U256 = U256::from_limbs([0x5eed_5eed_5eed_5eed, 0x1234, 0, 0]);

/// Per-token balance-slot cache, shared by clones of a client.
pub(crate) type SlotCache = Arc<Mutex<HashMap<Address, Option<u64>>>>;

/// Storage key of `holder` in a Solidity `mapping(address => uint256)` at `slot`.
fn mapping_key(holder: Address, slot: u64) -> B256 {
    keccak256((holder, U256::from(slot)).abi_encode())
}

impl ChainClient {
    /// The storage slot of `token`'s balance mapping, or an error when no candidate matches
    /// (a token with non-standard storage cannot be dry-run this way) or the node is
    /// unreachable (not cached: a later call probes again).
    pub async fn balance_slot(&self, token: Address) -> Result<u64, ChainError> {
        if let Some(hit) = self.slots.lock().ok().and_then(|m| m.get(&token).copied()) {
            return hit.ok_or(ChainError::NoBalanceSlot(token));
        }
        let probe = Address::repeat_byte(0x5e);
        let mut found = None;
        for slot in 0..MAX_SLOT_PROBE {
            let mut acct = AccountOverride::default();
            acct.set_state_diff([(mapping_key(probe, slot), B256::from(MARKER))]);
            let mut overrides = StateOverride::default();
            overrides.insert(token, acct);
            let got = self
                .call_sol(
                    token,
                    Address::ZERO,
                    &IERC20::balanceOfCall { owner: probe },
                    None,
                    Some(overrides),
                )
                .await;
            match got {
                Ok(v) if v == MARKER => {
                    found = Some(slot);
                    break;
                }
                // An unreachable node says nothing about the token's storage: neither a
                // verdict nor a cache entry.
                Err(e @ ChainError::Rpc { .. }) => return Err(e),
                _ => {}
            }
        }
        if let Ok(mut m) = self.slots.lock() {
            m.insert(token, found);
        }
        found.ok_or(ChainError::NoBalanceSlot(token))
    }

    /// Overrides setting `holder`'s balance of each token to the given amount.
    pub async fn balance_overrides(
        &self,
        balances: &[(Address, Address, U256)],
    ) -> Result<StateOverride, ChainError> {
        let mut overrides = StateOverride::default();
        for &(token, holder, amount) in balances {
            let slot = self.balance_slot(token).await?;
            overrides
                .entry(token)
                .or_default()
                .state_diff
                .get_or_insert_with(Default::default)
                .insert(mapping_key(holder, slot), B256::from(amount));
        }
        Ok(overrides)
    }
}
