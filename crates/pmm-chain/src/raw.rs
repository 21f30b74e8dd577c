//! From a [`PoolRead`] to pmm-core's [`RawPoolRead`], the input of `schema::normalize`.

use alloy::primitives::{Address, I256, U256};
use pmm_core::config::{OracleConfig, PoolEntry};
use pmm_core::math::{FeeRates, Generation, PmmState, RState};
use pmm_core::schema::{ChainName, OracleKind, OracleRead, RawPoolRead, TokenInfo};

use crate::error::ChainError;
use crate::types::{PoolRead, RawPmmState};

/// Decimals of DODO's own oracle prices (1e18 on raw units).
const DODO_ORACLE_DECIMALS: u8 = 18;

impl PoolRead {
    /// Converts to pmm-core's raw read, for a pool of template `generation`. `oracle` picks which answer of the batch is the pool's
    /// reference price. Fails when a getter the schema needs did not answer.
    pub fn to_raw(
        &self,
        chain: ChainName,
        profile: &str,
        generation: Option<Generation>,
        oracle: Option<&OracleConfig>,
    ) -> Result<RawPoolRead, ChainError> {
        let pool = self.pool;
        let missing = |getter: &'static str| ChainError::MissingGetter {
            pool,
            getter,
            reason: "no value in the batch".to_owned(),
        };
        let (pmm, base_reserve, quote_reserve) = match (&self.pmm, &self.v1) {
            (Some(s), _) => {
                let (b, q) = self
                    .vault_reserve
                    .ok_or_else(|| missing("getVaultReserve"))?;
                (s.to_pmm_state(pool)?, b, q)
            }
            (None, Some(v)) => (
                PmmState {
                    i: v.oracle_price,
                    k: v.k,
                    b: v.base_balance,
                    q: v.quote_balance,
                    b0: v.expected_target_base,
                    q0: v.expected_target_quote,
                    r: r_state(pool, U256::from(v.r_status))?,
                },
                v.base_balance,
                v.quote_balance,
            ),
            (None, None) => return Err(missing("getPMMStateForCall")),
        };
        let oracle = match oracle {
            None => None,
            Some(cfg) => self.oracle_read(cfg),
        };
        Ok(RawPoolRead {
            pool_address: pool,
            chain,
            pool_type: self.kind,
            generation,
            profile: profile.to_owned(),
            version: self.version.clone().unwrap_or_default(),
            block_number: self.block.number,
            block_timestamp: self.block.timestamp,
            pmm,
            mid_price: self.mid_price,
            base_reserve,
            quote_reserve,
            fees: FeeRates {
                lp: self.fee_rates.0,
                mt: self.fee_rates.1,
            },
            base_token: TokenInfo {
                address: self.base_token.address,
                symbol: self.base_token.symbol.clone().unwrap_or_default(),
                decimals: self.base_token.decimals,
            },
            quote_token: TokenInfo {
                address: self.quote_token.address,
                symbol: self.quote_token.symbol.clone().unwrap_or_default(),
                decimals: self.quote_token.decimals,
            },
            oracle,
        })
    }

    /// The answer matching the configured oracle kind, if the batch holds one.
    fn oracle_read(&self, cfg: &OracleConfig) -> Option<OracleRead> {
        match cfg.kind {
            OracleKind::Chainlink => self.feed.map(|f| OracleRead {
                kind: OracleKind::Chainlink,
                answer: f.answer,
                decimals: f.decimals,
                updated_at: f.updated_at,
            }),
            // DODO oracles carry no timestamp: the read's block time is when the answer held.
            kind @ (OracleKind::V1 | OracleKind::DppOracle) => {
                let price = self.oracle_price?;
                Some(OracleRead {
                    kind,
                    answer: I256::try_from(price).ok()?,
                    decimals: DODO_ORACLE_DECIMALS,
                    updated_at: self.block.timestamp,
                })
            }
        }
    }

    /// Refuses a pool whose tokens differ from the allowlist entry's.
    pub fn check_entry(&self, entry: &PoolEntry) -> Result<(), ChainError> {
        if entry.pool_type != self.kind {
            return Err(ChainError::Mismatch {
                pool: self.pool,
                what: "pool_type",
                expected: entry.pool_type.to_string(),
                found: self.kind.to_string(),
            });
        }
        for (what, expected, found) in [
            ("base_token", entry.base_token, self.base_token.address),
            ("quote_token", entry.quote_token, self.quote_token.address),
        ] {
            if expected != found {
                return Err(ChainError::Mismatch {
                    pool: self.pool,
                    what,
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl RawPmmState {
    /// pmm-core's math state. `pool` only names the pool in the error when `r` is not a valid
    /// R state (0, 1 or 2).
    pub fn to_pmm_state(&self, pool: Address) -> Result<PmmState, ChainError> {
        Ok(PmmState {
            i: self.i,
            k: self.k,
            b: self.b,
            q: self.q,
            b0: self.b0,
            q0: self.q0,
            r: r_state(pool, self.r)?,
        })
    }
}

fn r_state(pool: Address, r: U256) -> Result<RState, ChainError> {
    u8::try_from(r)
        .ok()
        .and_then(|r| RState::try_from(r).ok())
        .ok_or_else(|| ChainError::MissingGetter {
            pool,
            getter: "R state",
            reason: format!("value {r} is not 0, 1 or 2"),
        })
}
