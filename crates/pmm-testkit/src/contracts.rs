//! Typed bindings to the fixture contracts, generated from the committed artifacts in
//! tests/fixtures/artifacts (ABI and bytecode), so the bindings can never drift from what is
//! deployed. Each binding lives in its own module because the artifacts repeat shared types
//! (PMMMath.State, PMMMath.RState).
#![allow(missing_docs, clippy::too_many_arguments)]

/// ERC20 with open mint and settable decimals.
pub mod test_erc20 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        TestERC20,
        "../../tests/fixtures/artifacts/TestERC20.json"
    );
}
/// Per-trader maintainer fee rate model.
pub mod fee_rate_model {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        FeeRateModel,
        "../../tests/fixtures/artifacts/FeeRateModel.json"
    );
}
/// DVM-like pool ("DVM 1.0.2").
pub mod dvm {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DVM,
        "../../tests/fixtures/artifacts/DVM.json"
    );
}
/// DSP-like pool ("DSP 1.0.1").
pub mod dsp {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DSP,
        "../../tests/fixtures/artifacts/DSP.json"
    );
}
/// The 2021-generation DVM template ("DVM 1.0.2", 2021 rules); the DVM binding drives it.
pub mod dvm2021 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DVM2021,
        "../../tests/fixtures/artifacts/DVM2021.json"
    );
}
/// The 2021-generation DSP template ("DSP 1.0.1", 2021 rules); the DSP binding drives it.
pub mod dsp2021 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DSP2021,
        "../../tests/fixtures/artifacts/DSP2021.json"
    );
}
/// EIP-1167 clone factory: every V2 fixture pool is a clone of its template.
pub mod clone_factory {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        CloneFactory,
        "../../tests/fixtures/artifacts/CloneFactory.json"
    );
}
/// GSP-like pool ("GSP 1.0.1"), DSP behaviour.
pub mod gsp {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        GSP,
        "../../tests/fixtures/artifacts/GSP.json"
    );
}
/// DPP-like private pool ("DPP 1.0.0").
pub mod dpp {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DPP,
        "../../tests/fixtures/artifacts/DPP.json"
    );
}
/// DPP with an oracle guide price ("DPP Oracle 1.1.0").
pub mod dpp_oracle {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DPPOracle,
        "../../tests/fixtures/artifacts/DPPOracle.json"
    );
}
/// V1-like classic pool (version() = 101).
pub mod v1_pool {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        V1Pool,
        "../../tests/fixtures/artifacts/V1Pool.json"
    );
}
/// Chainlink-style aggregator with setters.
pub mod chainlink_feed {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ChainlinkFeed,
        "../../tests/fixtures/artifacts/ChainlinkFeed.json"
    );
}
/// Settable guide-price oracle for DPPOracle and V1Pool.
pub mod price_oracle {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        PriceOracle,
        "../../tests/fixtures/artifacts/PriceOracle.json"
    );
}
/// Stateless PMM math window for differential tests.
pub mod pmm_probe {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        PMMProbe,
        "../../tests/fixtures/artifacts/PMMProbe.json"
    );
}

/// The spender deposits are approved to (DODOApprove's interface).
pub mod dodo_approve {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DODOApprove,
        "../../tests/fixtures/artifacts/DODOApprove.json"
    );
}
/// DVM deposits through DODOApprove (`DODOV2Proxy02.addDVMLiquidity`'s interface).
pub mod dodo_v2_proxy02 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DODOV2Proxy02,
        "../../tests/fixtures/artifacts/DODOV2Proxy02.json"
    );
}
/// DSP deposits through DODOApprove (`DODODspProxy.addDSPLiquidity`'s interface).
pub mod dodo_dsp_proxy {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        DODODspProxy,
        "../../tests/fixtures/artifacts/DODODspProxy.json"
    );
}

pub use chainlink_feed::ChainlinkFeed;
pub use clone_factory::CloneFactory;
pub use dodo_approve::DODOApprove;
pub use dodo_dsp_proxy::DODODspProxy;
pub use dodo_v2_proxy02::DODOV2Proxy02;
pub use dpp::DPP;
pub use dpp_oracle::DPPOracle;
pub use dsp::DSP;
pub use dsp2021::DSP2021;
pub use dvm::DVM;
pub use dvm2021::DVM2021;
pub use fee_rate_model::FeeRateModel;
pub use gsp::GSP;
pub use pmm_probe::PMMProbe;
pub use price_oracle::PriceOracle;
pub use test_erc20::TestERC20;
pub use v1_pool::V1Pool;
