//! pmm-chain against the fixture pools on a private anvil.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use pmm_chain::abi::{IDODOV2Pool, IDODOV2Shares};
use pmm_chain::{ChainClient, ChainError, DetectedProfile, PoolType, ReadSpec};
use pmm_testkit::devnet::{Devnet, ONE, PoolParams};

struct Fixture {
    devnet: Devnet,
    base: Address,
    quote: Address,
    dvm: Address,
    dsp: Address,
    dpp: Address,
}

async fn fixture() -> anyhow::Result<Fixture> {
    let devnet = Devnet::start()?;
    let base = devnet.deploy_token("WETH", 18).await?;
    let quote = devnet.deploy_token("USDC", 6).await?;
    let me = devnet.deployer();
    let big = U256::from(10u128.pow(30));
    devnet.mint(base, me, big).await?;
    devnet.mint(quote, me, big).await?;
    let p = PoolParams {
        base,
        quote,
        lp_fee_rate: U256::from(ONE / 1000),
        mt_fee_rate: U256::from(ONE / 10_000),
        i: U256::from(2_000_000_000u64),
        k: U256::from(ONE / 10),
    };
    let dvm = devnet.deploy_dvm(p).await?;
    let dsp = devnet.deploy_dsp(p).await?;
    let dpp = devnet.deploy_dpp(p).await?;
    let ten_eth = U256::from(10u128 * ONE);
    let usdc = U256::from(20_000_000_000u64);
    devnet.buy_shares(me, dvm, ten_eth, usdc).await?;
    devnet.buy_shares(me, dsp, ten_eth, usdc).await?;
    devnet.dpp_deposit(dpp, ten_eth, usdc).await?;
    Ok(Fixture { devnet, base, quote, dvm, dsp, dpp })
}

fn spec(pool: Address, kind: PoolType) -> ReadSpec {
    ReadSpec { pool, kind, feed: None, fee_trader: Address::ZERO }
}

#[tokio::test]
async fn reads_match_direct_getters_and_identify_names_each_type() -> anyhow::Result<()> {
    let f = fixture().await?;
    let chain = ChainClient::connect(f.devnet.rpc_url()).await?;
    assert_eq!(chain.chain_id(), f.devnet.chain_id());
    let provider = f.devnet.provider();
    for (pool, kind) in [(f.dvm, PoolType::Dvm), (f.dsp, PoolType::Dsp), (f.dpp, PoolType::Dpp)] {
        let read = chain.read_pool(&spec(pool, kind)).await?;
        let c = IDODOV2Pool::new(pool, provider);
        let st = c.getPMMStateForCall().call().await?;
        let pmm = read.pmm.expect("v2 state");
        assert_eq!((pmm.i, pmm.k, pmm.b, pmm.q, pmm.b0, pmm.q0, pmm.r), (st.i, st.K, st.B, st.Q, st.B0, st.Q0, st.R));
        assert_eq!(read.mid_price, Some(c.getMidPrice().call().await?));
        let fees = c.getUserFeeRate(Address::ZERO).call().await?;
        assert_eq!(read.fee_rates, (fees.lpFeeRate, fees.mtFeeRate));
        assert_eq!(read.base_token.address, f.base);
        assert_eq!(read.quote_token.address, f.quote);
        assert_eq!(read.base_token.symbol.as_deref(), Some("WETH"));
        assert_eq!(read.quote_token.decimals, 6);
        assert_eq!(read.base_balance, f.devnet.balance_of(f.base, pool).await?);
        assert_eq!(read.block.number, provider.get_block_number().await?);
        if kind == PoolType::Dpp {
            assert_eq!(read.total_shares, None);
        } else {
            let ts = IDODOV2Shares::new(pool, provider).totalSupply().call().await?;
            assert_eq!(read.total_shares, Some(ts));
        }
        // Same block: served from the cache, identical value.
        let again = chain.read_pool_at(&spec(pool, kind), read.block.number).await?;
        assert!(std::sync::Arc::ptr_eq(&read, &again));

        let report = chain.identify_pool_interface(pool).await?;
        let expected = match kind {
            PoolType::Dvm => DetectedProfile::Dvm,
            PoolType::Dsp => DetectedProfile::Dsp,
            _ => DetectedProfile::Dpp,
        };
        assert_eq!(report.detected_profile, expected, "{report:?}");
        assert!(report.functions_found.iter().any(|f| f == "getPMMStateForCall"));
    }
    let token = chain.identify_pool_interface(f.base).await?;
    assert_eq!(token.detected_profile, DetectedProfile::Unknown);
    assert!(token.notes.iter().any(|n| n.contains("ERC20")), "{token:?}");
    let eoa = chain.identify_pool_interface(f.devnet.account(3)?).await?;
    assert_eq!(eoa.detected_profile, DetectedProfile::Unknown);
    assert!(eoa.notes[0].contains("no code"));

    // Reading an ERC20 as a pool fails with a typed error naming the getter.
    let err = chain.read_pool(&spec(f.base, PoolType::Dvm)).await.unwrap_err();
    assert!(matches!(err, ChainError::MissingGetter { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn unreachable_rpc_is_a_typed_error_without_credentials() {
    let err = ChainClient::connect("http://user:hunter2@127.0.0.1:9/secretpath").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ChainError::Rpc { .. }), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("secretpath"), "{text}");
}
