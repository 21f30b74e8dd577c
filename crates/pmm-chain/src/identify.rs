//! Names the DODO interface an arbitrary address speaks, from probes in one batch.
//!
//! Works for addresses in no allowlist: nothing is assumed beyond the published getters.
//! `version()` decides when it answers; otherwise the set of getters that answer does.

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes, keccak256};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;

use pmm_core::templates::eip1167_implementation;

use crate::abi::{
    IChainlinkFeed, IDODOV1Pool, IDODOV2Pool, IDODOV2Shares, IDODOV2Targets, IDPPOracle, IERC20,
};
use crate::batch::{CallOutcome, add_call, rpc_error};
use crate::client::ChainClient;
use crate::error::ChainError;
use crate::types::{DetectedProfile, InterfaceReport};

impl ChainClient {
    /// Probes `pool` and reports which DODO getters it answers and which family it looks like.
    pub async fn identify_pool_interface(
        &self,
        pool: Address,
    ) -> Result<InterfaceReport, ChainError> {
        let ep = &self.endpoint;
        let at = BlockId::latest();
        let client = self.provider.client();
        let mut batch = BatchRequest::new(client);
        let code_w = batch
            .add_call::<_, Bytes>("eth_getCode", &(pool, at))
            .map_err(|e| rpc_error("eth_getCode", ep, &e))?;
        let v2_version = add_call(&mut batch, ep, pool, &IDODOV2Pool::versionCall {}, at)?;
        let v1_version = add_call(&mut batch, ep, pool, &IDODOV1Pool::versionCall {}, at)?;
        let pmm = add_call(
            &mut batch,
            ep,
            pool,
            &IDODOV2Pool::getPMMStateForCallCall {},
            at,
        )?;
        let mid = add_call(&mut batch, ep, pool, &IDODOV2Pool::getMidPriceCall {}, at)?;
        let reserve = add_call(
            &mut batch,
            ep,
            pool,
            &IDODOV2Pool::getVaultReserveCall {},
            at,
        )?;
        let base_token = add_call(&mut batch, ep, pool, &IDODOV2Pool::_BASE_TOKEN_Call {}, at)?;
        let i = add_call(&mut batch, ep, pool, &IDODOV2Pool::_I_Call {}, at)?;
        let base_target = add_call(
            &mut batch,
            ep,
            pool,
            &IDODOV2Targets::_BASE_TARGET_Call {},
            at,
        )?;
        let rstate = add_call(&mut batch, ep, pool, &IDODOV2Targets::_RState_Call {}, at)?;
        let oracle = add_call(&mut batch, ep, pool, &IDPPOracle::_O_Call {}, at)?;
        let oracle_enabled = add_call(
            &mut batch,
            ep,
            pool,
            &IDPPOracle::_IS_ORACLE_ENABLEDCall {},
            at,
        )?;
        let total_supply = add_call(&mut batch, ep, pool, &IDODOV2Shares::totalSupplyCall {}, at)?;
        let symbol = add_call(&mut batch, ep, pool, &IERC20::symbolCall {}, at)?;
        let decimals = add_call(&mut batch, ep, pool, &IERC20::decimalsCall {}, at)?;
        let oracle_price = add_call(
            &mut batch,
            ep,
            pool,
            &IDODOV1Pool::getOraclePriceCall {},
            at,
        )?;
        let r_status = add_call(&mut batch, ep, pool, &IDODOV1Pool::_R_STATUS_Call {}, at)?;
        let base_balance = add_call(
            &mut batch,
            ep,
            pool,
            &IDODOV1Pool::_BASE_BALANCE_Call {},
            at,
        )?;
        let round = add_call(
            &mut batch,
            ep,
            pool,
            &IChainlinkFeed::latestRoundDataCall {},
            at,
        )?;
        batch.send().await.map_err(|e| rpc_error("batch", ep, &e))?;

        let code = code_w.await.map_err(|e| rpc_error("eth_getCode", ep, &e))?;
        let mut found = Vec::new();
        let mut note = |name: &str, ok: bool| {
            if ok {
                found.push(name.to_owned());
            }
        };
        let v2_version = v2_version.resolve(ep).await?;
        let v1_version = v1_version.resolve(ep).await?;
        // A V2 string return also decodes as a uint (its offset word), so the uint reading
        // counts only when the string reading failed.
        let version = match (&v2_version, &v1_version) {
            (CallOutcome::Ok(s), _) => Some(s.clone()),
            (_, CallOutcome::Ok(n)) => Some(n.to_string()),
            _ => None,
        };
        note("version", version.is_some());
        let probes = Probes {
            pmm: pmm.resolve(ep).await?.is_ok(),
            mid: mid.resolve(ep).await?.is_ok(),
            reserve: reserve.resolve(ep).await?.is_ok(),
            base_token: base_token.resolve(ep).await?.is_ok(),
            i: i.resolve(ep).await?.is_ok(),
            base_target: base_target.resolve(ep).await?.is_ok(),
            rstate: rstate.resolve(ep).await?.is_ok(),
            oracle: oracle.resolve(ep).await?.is_ok(),
            oracle_enabled: oracle_enabled.resolve(ep).await?.is_ok(),
            total_supply: total_supply.resolve(ep).await?.is_ok(),
            symbol: symbol.resolve(ep).await?.ok(),
            decimals: decimals.resolve(ep).await?.is_ok(),
            oracle_price: oracle_price.resolve(ep).await?.is_ok(),
            r_status: r_status.resolve(ep).await?.is_ok(),
            base_balance: base_balance.resolve(ep).await?.is_ok(),
            round: round.resolve(ep).await?.is_ok(),
        };
        for (name, ok) in [
            ("getPMMStateForCall", probes.pmm),
            ("getMidPrice", probes.mid),
            ("getVaultReserve", probes.reserve),
            ("_BASE_TOKEN_", probes.base_token),
            ("_I_", probes.i),
            ("_BASE_TARGET_", probes.base_target),
            ("_RState_", probes.rstate),
            ("_O_", probes.oracle),
            ("_IS_ORACLE_ENABLED", probes.oracle_enabled),
            ("totalSupply", probes.total_supply),
            ("symbol", probes.symbol.is_some()),
            ("decimals", probes.decimals),
            ("getOraclePrice", probes.oracle_price),
            ("_R_STATUS_", probes.r_status),
            ("_BASE_BALANCE_", probes.base_balance),
            ("latestRoundData", probes.round),
        ] {
            note(name, ok);
        }
        let (detected_profile, notes) = classify(code.is_empty(), version.as_deref(), &probes);
        let template = eip1167_implementation(&code);
        let template_code_hash = match template {
            Some(t) => {
                let code = self
                    .provider
                    .get_code_at(t)
                    .block_id(at)
                    .await
                    .map_err(|e| rpc_error("eth_getCode", ep, &e))?;
                (!code.is_empty()).then(|| keccak256(&code))
            }
            None => None,
        };
        Ok(InterfaceReport {
            pool,
            functions_found: found,
            detected_profile,
            version,
            notes,
            template,
            template_code_hash,
            generation: None,
        })
    }
}

/// Which probes answered.
#[derive(Debug, Default, Clone)]
struct Probes {
    pmm: bool,
    mid: bool,
    reserve: bool,
    base_token: bool,
    i: bool,
    base_target: bool,
    rstate: bool,
    oracle: bool,
    oracle_enabled: bool,
    total_supply: bool,
    symbol: Option<String>,
    decimals: bool,
    oracle_price: bool,
    r_status: bool,
    base_balance: bool,
    round: bool,
}

/// The decision, separated from I/O so each rule is testable alone.
fn classify(no_code: bool, version: Option<&str>, p: &Probes) -> (DetectedProfile, Vec<String>) {
    let mut notes = Vec::new();
    if no_code {
        notes.push("no code at this address: an EOA or an undeployed contract".to_owned());
        return (DetectedProfile::Unknown, notes);
    }
    let v1_getters = p.r_status && p.oracle_price && p.base_balance;
    if let Some(v) = version {
        let by_version = if v.starts_with("DVM") {
            Some(DetectedProfile::Dvm)
        } else if v.starts_with("DSP") {
            Some(DetectedProfile::Dsp)
        } else if v.starts_with("DPP Oracle") {
            Some(DetectedProfile::DppOracle)
        } else if v.starts_with("DPP") {
            Some(DetectedProfile::Dpp)
        } else if v.starts_with("GSP") {
            Some(DetectedProfile::Gsp)
        } else if v1_getters && v.parse::<u64>().is_ok() {
            Some(DetectedProfile::V1)
        } else {
            None
        };
        if let Some(profile) = by_version {
            notes.push(format!("version() = {v:?}"));
            if profile != DetectedProfile::V1 && !p.pmm {
                notes.push(
                    "version() names a V2 pool but getPMMStateForCall does not answer".to_owned(),
                );
            }
            return (profile, notes);
        }
        notes.push(format!("version() = {v:?} names no known DODO pool"));
    }
    if v1_getters {
        notes.push("V1 getters (_R_STATUS_, getOraclePrice, _BASE_BALANCE_) answer".to_owned());
        return (DetectedProfile::V1, notes);
    }
    if p.pmm && p.base_token && p.reserve {
        let profile = if p.oracle {
            notes.push("V2 getters plus _O_: oracle-priced private pool".to_owned());
            DetectedProfile::DppOracle
        } else if p.base_target && p.total_supply {
            notes.push("V2 getters, stored targets and LP shares: DSP (a GSP looks the same without version())".to_owned());
            DetectedProfile::Dsp
        } else if p.base_target {
            notes.push("V2 getters and stored targets without LP shares: private pool".to_owned());
            DetectedProfile::Dpp
        } else {
            notes.push("V2 getters without stored targets: vending machine".to_owned());
            DetectedProfile::Dvm
        };
        return (profile, notes);
    }
    if p.decimals && p.total_supply {
        let sym = p.symbol.as_deref().unwrap_or("?");
        notes.push(format!("an ERC20 token ({sym}), not a pool"));
    } else if p.round {
        notes.push("a price feed (latestRoundData answers), not a pool".to_owned());
    } else {
        notes.push("no DODO pool getter answers".to_owned());
    }
    (DetectedProfile::Unknown, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(base_target: bool, shares: bool, oracle: bool) -> Probes {
        Probes {
            pmm: true,
            mid: true,
            reserve: true,
            base_token: true,
            i: true,
            base_target,
            rstate: base_target,
            oracle,
            total_supply: shares,
            decimals: shares,
            ..Probes::default()
        }
    }

    #[test]
    fn version_string_decides() {
        let p = v2(false, true, false);
        assert_eq!(
            classify(false, Some("DVM 1.0.2"), &p).0,
            DetectedProfile::Dvm
        );
        assert_eq!(
            classify(false, Some("DSP 1.0.1"), &p).0,
            DetectedProfile::Dsp
        );
        assert_eq!(
            classify(false, Some("DPP Oracle 1.1.0"), &p).0,
            DetectedProfile::DppOracle
        );
        assert_eq!(
            classify(false, Some("DPP Advanced 1.0.0"), &p).0,
            DetectedProfile::Dpp
        );
        assert_eq!(
            classify(false, Some("GSP 1.0.1"), &p).0,
            DetectedProfile::Gsp
        );
    }

    #[test]
    fn getters_decide_without_version() {
        assert_eq!(
            classify(false, None, &v2(false, true, false)).0,
            DetectedProfile::Dvm
        );
        assert_eq!(
            classify(false, None, &v2(true, true, false)).0,
            DetectedProfile::Dsp
        );
        assert_eq!(
            classify(false, None, &v2(true, false, false)).0,
            DetectedProfile::Dpp
        );
        assert_eq!(
            classify(false, None, &v2(true, false, true)).0,
            DetectedProfile::DppOracle
        );
    }

    #[test]
    fn eoa_token_and_v1() {
        assert_eq!(
            classify(true, None, &Probes::default()).0,
            DetectedProfile::Unknown
        );
        let token = Probes {
            decimals: true,
            total_supply: true,
            symbol: Some("WETH".into()),
            ..Probes::default()
        };
        let (p, notes) = classify(false, None, &token);
        assert_eq!(p, DetectedProfile::Unknown);
        assert!(notes[0].contains("ERC20"));
        let v1 = Probes {
            r_status: true,
            oracle_price: true,
            base_balance: true,
            ..Probes::default()
        };
        assert_eq!(classify(false, Some("101"), &v1).0, DetectedProfile::V1);
    }
}
