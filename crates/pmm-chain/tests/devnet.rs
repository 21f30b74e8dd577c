//! pmm-chain against the fixture pools on a private anvil.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use pmm_chain::abi::{IDODOV2Pool, IDODOV2Shares};
use pmm_chain::{ChainClient, ChainError, DetectedProfile, PoolType, ReadSpec};
use pmm_testkit::contracts::ChainlinkFeed;
use pmm_testkit::devnet::{Devnet, ONE, PoolParams, WethUsdcPools};

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
    let WethUsdcPools {
        base,
        quote,
        dvm,
        dsp,
        dpp,
    } = devnet.deploy_weth_usdc_pools().await?;
    Ok(Fixture {
        devnet,
        base,
        quote,
        dvm,
        dsp,
        dpp,
    })
}

fn spec(pool: Address, kind: PoolType) -> ReadSpec {
    ReadSpec {
        pool,
        kind,
        feed: None,
        fee_trader: Address::ZERO,
    }
}

#[tokio::test]
async fn reads_match_direct_getters_and_identify_names_each_type() -> anyhow::Result<()> {
    let f = fixture().await?;
    let chain = ChainClient::connect(f.devnet.rpc_url()).await?;
    assert_eq!(chain.chain_id(), f.devnet.chain_id());
    let provider = f.devnet.provider();
    for (pool, kind) in [
        (f.dvm, PoolType::Dvm),
        (f.dsp, PoolType::Dsp),
        (f.dpp, PoolType::Dpp),
    ] {
        let read = chain.read_pool(&spec(pool, kind)).await?;
        let c = IDODOV2Pool::new(pool, provider);
        let st = c.getPMMStateForCall().call().await?;
        let pmm = read.pmm.expect("v2 state");
        assert_eq!(
            (pmm.i, pmm.k, pmm.b, pmm.q, pmm.b0, pmm.q0, pmm.r),
            (st.i, st.K, st.B, st.Q, st.B0, st.Q0, st.R)
        );
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
            let ts = IDODOV2Shares::new(pool, provider)
                .totalSupply()
                .call()
                .await?;
            assert_eq!(read.total_shares, Some(ts));
        }
        // Same block: served from the cache, identical value.
        let again = chain
            .read_pool_at(&spec(pool, kind), read.block.number)
            .await?;
        assert!(std::sync::Arc::ptr_eq(&read, &again));

        let report = chain.identify_pool_interface(pool).await?;
        let expected = match kind {
            PoolType::Dvm => DetectedProfile::Dvm,
            PoolType::Dsp => DetectedProfile::Dsp,
            _ => DetectedProfile::Dpp,
        };
        assert_eq!(report.detected_profile, expected, "{report:?}");
        assert!(
            report
                .functions_found
                .iter()
                .any(|f| f == "getPMMStateForCall")
        );
    }
    let token = chain.identify_pool_interface(f.base).await?;
    assert_eq!(token.detected_profile, DetectedProfile::Unknown);
    assert!(token.notes.iter().any(|n| n.contains("ERC20")), "{token:?}");
    let eoa = chain.identify_pool_interface(f.devnet.account(3)?).await?;
    assert_eq!(eoa.detected_profile, DetectedProfile::Unknown);
    assert!(eoa.notes[0].contains("no code"));

    // Reading an ERC20 as a pool fails with a typed error naming the getter.
    let err = chain
        .read_pool(&spec(f.base, PoolType::Dvm))
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::MissingGetter { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn unreachable_rpc_is_a_typed_error_without_credentials() {
    let err = ChainClient::connect("http://user:hunter2@127.0.0.1:9/secretpath")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ChainError::Rpc { .. }), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("secretpath"),
        "{text}"
    );
}

#[tokio::test]
async fn gsp_dpp_oracle_v1_and_feed_are_named_and_read() -> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let base = devnet.deploy_token("WBTC", 8).await?;
    let quote = devnet.deploy_token("DAI", 18).await?;
    let me = devnet.deployer();
    let big = U256::from(10u128.pow(30));
    devnet.mint(base, me, big).await?;
    devnet.mint(quote, me, big).await?;
    // 50,000 DAI per WBTC on raw units: 50_000e18 / 1e8 = 5e32 (1e18 fixed point).
    let i = U256::from(5u128 * 10u128.pow(14)) * U256::from(ONE);
    let p = PoolParams {
        base,
        quote,
        lp_fee_rate: U256::ZERO,
        mt_fee_rate: U256::ZERO,
        i,
        k: U256::from(ONE / 2),
    };
    let gsp = devnet.deploy_gsp(p).await?;
    devnet
        .buy_shares(
            me,
            gsp,
            U256::from(10u64.pow(8)),
            U256::from(50_000u128 * ONE),
        )
        .await?;
    let oracle_price = i + U256::from(ONE);
    let oracle = devnet.deploy_price_oracle(oracle_price).await?;
    let dppo = devnet.deploy_dpp_oracle(p, oracle).await?;
    devnet
        .dpp_deposit(dppo, U256::from(10u64.pow(8)), U256::from(50_000u128 * ONE))
        .await?;
    let v1 = devnet
        .deploy_v1(base, quote, oracle, U256::from(ONE / 10))
        .await?;
    let feed = devnet
        .deploy_feed(8, alloy::primitives::I256::try_from(5_000_000_000_000_i64)?)
        .await?;

    let chain = ChainClient::connect(devnet.rpc_url()).await?;
    for (addr, expected) in [
        (gsp, DetectedProfile::Gsp),
        (dppo, DetectedProfile::DppOracle),
        (v1, DetectedProfile::V1),
        (feed, DetectedProfile::Unknown),
    ] {
        let r = chain.identify_pool_interface(addr).await?;
        assert_eq!(r.detected_profile, expected, "{r:?}");
    }
    let g = chain.read_pool(&spec(gsp, PoolType::Gsp)).await?;
    assert_eq!(g.version.as_deref(), Some("GSP 1.0.1"));
    assert!(g.total_shares.is_some_and(|s| s > U256::ZERO));
    assert!(g.stored_targets.is_some());
    let d = chain.read_pool(&spec(dppo, PoolType::DppOracle)).await?;
    assert_eq!(d.oracle, Some(oracle));
    assert_eq!(d.oracle_price, Some(oracle_price));
    assert_eq!(
        d.pmm.map(|s| s.i),
        Some(oracle_price),
        "i comes from the oracle"
    );
    assert_eq!(d.oracle_enabled, Some(true));
    let v = chain
        .read_pool(&ReadSpec {
            pool: v1,
            kind: PoolType::V1,
            feed: Some(feed),
            fee_trader: Address::ZERO,
        })
        .await?;
    assert_eq!(v.version.as_deref(), Some("101"));
    assert_eq!(v.v1.map(|s| s.oracle_price), Some(oracle_price));
    let f = v.feed.expect("feed read in the same batch");
    assert_eq!((f.decimals, f.feed), (8, feed));
    assert_eq!(
        f.answer,
        alloy::primitives::I256::try_from(5_000_000_000_000_i64)?
    );

    // An `updatedAt` beyond u64 must read as stale (the epoch), never as fresh.
    ChainlinkFeed::new(feed, devnet.provider())
        .setUpdatedAt(U256::from(u64::MAX) + U256::from(1))
        .send()
        .await?
        .get_receipt()
        .await?;
    let v = chain
        .read_pool(&ReadSpec {
            pool: v1,
            kind: PoolType::V1,
            feed: Some(feed),
            fee_trader: Address::ZERO,
        })
        .await?;
    let f = v.feed.expect("feed read in the same batch");
    assert_eq!(f.updated_at, 0, "{f:?}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_node_is_an_rpc_error_not_a_missing_balance_slot() -> anyhow::Result<()> {
    let devnet = Devnet::start()?;
    let token = devnet.deploy_token("WETH", 18).await?;
    let chain = ChainClient::connect(devnet.rpc_url()).await?;
    drop(devnet);
    let err = chain.balance_slot(token).await.unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    Ok(())
}
