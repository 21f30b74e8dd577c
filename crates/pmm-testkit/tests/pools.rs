//! The fixture pools on anvil: liquidity, swaps, DPP reset, feeds and the PMM probe. Expected
//! numbers were computed independently from shared/dodo-pmm.md (beside the repository) with exact integer math.

use alloy::primitives::aliases::U80;
use alloy::primitives::{Address, I256, U256};
use pmm_testkit::contracts::pmm_probe::PMMMath::State;
use pmm_testkit::contracts::{
    ChainlinkFeed, DPP, DPPOracle, DSP, DVM, FeeRateModel, GSP, PMMProbe, PriceOracle, V1Pool,
};
use pmm_testkit::devnet::confirm;
use pmm_testkit::{Devnet, PoolParams, TestkitError};

const E18: u128 = 1_000_000_000_000_000_000;

fn u(v: u128) -> U256 {
    U256::from(v)
}

fn base(v: u128) -> U256 {
    u(v * E18)
}

fn quote(v: u128) -> U256 {
    u(v * 1_000_000)
}

struct Setup {
    devnet: Devnet,
    base: Address,
    quote: Address,
}

/// Devnet with an 18-decimal base and a 6-decimal quote, minted to accounts 1..=4.
async fn setup() -> Setup {
    let devnet = Devnet::start().expect("devnet");
    let base_token = devnet.deploy_token("BASE", 18).await.expect("base");
    let quote_token = devnet.deploy_token("USDC", 6).await.expect("quote");
    for idx in 1..=4 {
        let who = devnet.account(idx).expect("account");
        devnet
            .mint(base_token, who, base(10_000))
            .await
            .expect("mint base");
        devnet
            .mint(quote_token, who, quote(10_000_000))
            .await
            .expect("mint quote");
    }
    Setup {
        devnet,
        base: base_token,
        quote: quote_token,
    }
}

fn volatile(s: &Setup) -> PoolParams {
    PoolParams {
        base: s.base,
        quote: s.quote,
        lp_fee_rate: u(3 * E18 / 1000),
        mt_fee_rate: u(E18 / 1000),
        i: u(2000 * 1_000_000),
        k: u(E18 / 10),
    }
}

fn pegged(s: &Setup) -> PoolParams {
    PoolParams {
        base: s.base,
        quote: s.quote,
        lp_fee_rate: u(E18 / 10_000),
        mt_fee_rate: U256::ZERO,
        i: u(1_000_000),
        k: u(5 * E18 / 10_000),
    }
}

#[tokio::test]
async fn dvm_deposits_mint_shares_and_set_reserves() {
    let s = setup().await;
    let d = &s.devnet;
    let (a1, a2) = (d.account(1).unwrap(), d.account(2).unwrap());
    let pool = d.deploy_dvm(volatile(&s)).await.expect("dvm");
    let dvm = DVM::new(pool, d.provider());

    assert_eq!(dvm.version().call().await.unwrap(), "DVM 1.0.2");
    assert_eq!(dvm.decimals().call().await.unwrap(), 18);

    d.buy_shares(a1, pool, base(100), quote(200_000))
        .await
        .expect("first deposit");
    assert_eq!(dvm.balanceOf(a1).call().await.unwrap(), base(100) - u(1001));
    assert_eq!(dvm.balanceOf(Address::ZERO).call().await.unwrap(), u(1001));
    assert_eq!(dvm.totalSupply().call().await.unwrap(), base(100));

    // Ratio min(10/100, 30000/200000) = 0.1; the extra quote is donated to all LPs.
    d.buy_shares(a2, pool, base(10), quote(30_000))
        .await
        .expect("second deposit");
    assert_eq!(dvm.balanceOf(a2).call().await.unwrap(), base(10));
    let reserves = dvm.getVaultReserve().call().await.unwrap();
    assert_eq!(
        (reserves.baseReserve, reserves.quoteReserve),
        (base(110), quote(230_000))
    );

    let st = dvm.getPMMStateForCall().call().await.unwrap();
    assert_eq!(
        (st.i, st.K, st.B, st.Q),
        (u(2_000_000_000), u(E18 / 10), base(110), quote(230_000))
    );
    assert_eq!(
        (st.B0, st.Q0, st.R),
        (u(214_980_915_752_512_593_750), U256::ZERO, u(1))
    );
    assert_eq!(dvm.getMidPrice().call().await.unwrap(), u(2_563_913_952));

    // Depositing only quote has no base input.
    d.transfer(a2, s.quote, pool, quote(10)).await.unwrap();
    let err = confirm("buyShares", dvm.buyShares(a2).from(a2))
        .await
        .expect_err("no base");
    assert!(err.to_string().contains("NO_BASE_INPUT"), "{err}");
}

#[tokio::test]
async fn dvm_sell_base_pays_trader_and_maintainer() {
    let s = setup().await;
    let d = &s.devnet;
    let (a1, a2, trader) = (
        d.account(1).unwrap(),
        d.account(2).unwrap(),
        d.account(3).unwrap(),
    );
    let pool = d.deploy_dvm(volatile(&s)).await.expect("dvm");
    let dvm = DVM::new(pool, d.provider());
    d.buy_shares(a1, pool, base(100), quote(200_000))
        .await
        .unwrap();
    d.buy_shares(a2, pool, base(10), quote(30_000))
        .await
        .unwrap();

    let q = dvm.querySellBase(trader, base(1)).call().await.unwrap();
    assert_eq!(
        (q.receiveQuoteAmount, q.mtFee),
        (u(2_546_803_719), u(2_557_031))
    );

    let quote_before = d.balance_of(s.quote, trader).await.unwrap();
    let base_before = d.balance_of(s.base, trader).await.unwrap();
    let maint_before = d.balance_of(s.quote, d.maintainer()).await.unwrap();
    let receipt = d.sell_base(trader, pool, base(1)).await.expect("sellBase");
    assert_eq!(
        d.balance_of(s.quote, trader).await.unwrap() - quote_before,
        u(2_546_803_719)
    );
    assert_eq!(
        base_before - d.balance_of(s.base, trader).await.unwrap(),
        base(1)
    );
    assert_eq!(
        d.balance_of(s.quote, d.maintainer()).await.unwrap() - maint_before,
        u(2_557_031)
    );
    let swap = receipt
        .decoded_log::<DVM::DODOSwap>()
        .expect("DODOSwap event");
    assert_eq!(
        (swap.fromAmount, swap.toAmount, swap.receiver),
        (base(1), u(2_546_803_719), trader)
    );

    let reserves = dvm.getVaultReserve().call().await.unwrap();
    assert_eq!(
        (reserves.baseReserve, reserves.quoteReserve),
        (base(111), u(227_450_639_250))
    );
    assert_eq!(dvm.getMidPrice().call().await.unwrap(), u(2_550_234_283));

    // The mt fee is per trader: an override on the model shows up in getUserFeeRate and quotes.
    let model = dvm._MT_FEE_RATE_MODEL_().call().await.unwrap();
    let fm = FeeRateModel::new(model, d.provider());
    confirm("setTraderFeeRate", fm.setTraderFeeRate(trader, U256::ZERO))
        .await
        .unwrap();
    let rates = dvm.getUserFeeRate(trader).call().await.unwrap();
    assert_eq!(
        (rates.lpFeeRate, rates.mtFeeRate),
        (u(3 * E18 / 1000), U256::ZERO)
    );
    assert_eq!(
        dvm.getUserFeeRate(a1).call().await.unwrap().mtFeeRate,
        u(E18 / 1000)
    );
    assert_eq!(
        dvm.querySellBase(trader, base(1))
            .call()
            .await
            .unwrap()
            .mtFee,
        U256::ZERO
    );
}

#[tokio::test]
async fn dsp_deposit_swap_and_withdraw_track_targets() {
    let s = setup().await;
    let d = &s.devnet;
    let (a1, trader) = (d.account(1).unwrap(), d.account(3).unwrap());
    let pool = d.deploy_dsp(pegged(&s)).await.expect("dsp");
    let dsp = DSP::new(pool, d.provider());
    assert_eq!(dsp.version().call().await.unwrap(), "DSP 1.0.1");

    // Quote-limited first deposit: shares = 900 / i, B0 = shares, Q0 = shares * i.
    d.buy_shares(a1, pool, base(1000), quote(900))
        .await
        .expect("deposit");
    let shares = dsp.balanceOf(a1).call().await.unwrap();
    assert_eq!(shares, base(900) - u(1001));
    assert_eq!(
        dsp._BASE_TARGET_().call().await.unwrap(),
        alloy::primitives::Uint::<112, 2>::from(900 * E18)
    );
    let st = dsp.getPMMStateForCall().call().await.unwrap();
    assert_eq!(
        (st.B, st.Q, st.B0, st.Q0, st.R),
        (base(1000), quote(900), base(900), quote(900), U256::ZERO)
    );
    assert_eq!(dsp.getMidPrice().call().await.unwrap(), u(999_905));

    let q = dsp.querySellBase(trader, base(10)).call().await.unwrap();
    assert_eq!(
        (q.receiveQuoteAmount, q.mtFee, q.newRState, q.newBaseTarget),
        (u(9_998_944), U256::ZERO, 2, base(900))
    );
    let receipt = d.sell_base(trader, pool, base(10)).await.expect("sellBase");
    let rchange = receipt.decoded_log::<DSP::RChange>().expect("RChange");
    assert_eq!(rchange.newRState, 2);
    let st = dsp.getPMMStateForCall().call().await.unwrap();
    assert_eq!(
        (st.B, st.Q, st.B0, st.Q0, st.R),
        (base(1010), u(890_001_056), base(900), u(999_994_259), u(2))
    );
    assert_eq!(dsp.getMidPrice().call().await.unwrap(), u(999_868));

    // Withdraw half: amounts floor on balances, targets drop by the ceiling share.
    let half = shares / u(2);
    let deadline = U256::from(d.block_timestamp().await.unwrap() + 600);
    let base_before = d.balance_of(s.base, a1).await.unwrap();
    let quote_before = d.balance_of(s.quote, a1).await.unwrap();
    let call = dsp
        .sellShares(
            half,
            a1,
            U256::ZERO,
            U256::ZERO,
            Default::default(),
            deadline,
        )
        .from(a1);
    confirm("sellShares", call).await.expect("sellShares");
    assert_eq!(
        d.balance_of(s.base, a1).await.unwrap() - base_before,
        u(504_999_999_999_999_999_437)
    );
    assert_eq!(
        d.balance_of(s.quote, a1).await.unwrap() - quote_before,
        u(445_000_527)
    );
    assert_eq!(
        U256::from(dsp._BASE_TARGET_().call().await.unwrap()),
        u(450_000_000_000_000_000_501)
    );
    assert_eq!(
        U256::from(dsp._QUOTE_TARGET_().call().await.unwrap()),
        u(450_000_000)
    );

    // The documented reverts.
    let past = deadline - u(10_000);
    let cases = [
        ("TIME_EXPIRED", u(1), a1, U256::ZERO, past),
        ("DLP_NOT_ENOUGH", shares, a1, U256::ZERO, deadline),
        ("SELL_BACK_NOT_ALLOWED", u(1), pool, U256::ZERO, deadline),
        ("WITHDRAW_NOT_ENOUGH", u(1), a1, base(1), deadline),
    ];
    for (reason, amount, to, base_min, dl) in cases {
        let call = dsp
            .sellShares(amount, to, base_min, U256::ZERO, Default::default(), dl)
            .from(a1);
        let err = confirm("sellShares", call).await.expect_err(reason);
        assert!(err.to_string().contains(reason), "{reason}: {err}");
    }
}

#[tokio::test]
async fn dsp_first_deposit_needs_quote() {
    let s = setup().await;
    let d = &s.devnet;
    let a1 = d.account(1).unwrap();
    let pool = d.deploy_dsp(pegged(&s)).await.expect("dsp");
    let err = d
        .buy_shares(a1, pool, base(1), U256::ZERO)
        .await
        .expect_err("no quote");
    assert!(err.to_string().contains("ZERO_QUOTE_AMOUNT"), "{err}");
}

#[tokio::test]
async fn dpp_reset_moves_funds_and_parameters() {
    let s = setup().await;
    let d = &s.devnet;
    let owner = d.deployer();
    d.mint(s.base, owner, base(100)).await.unwrap();
    d.mint(s.quote, owner, quote(200_000)).await.unwrap();
    let pool = d.deploy_dpp(volatile(&s)).await.expect("dpp");
    let dpp = DPP::new(pool, d.provider());
    assert_eq!(dpp.version().call().await.unwrap(), "DPP 1.0.0");

    d.dpp_deposit(pool, base(50), quote(100_000))
        .await
        .expect("deposit");
    let st = dpp.getPMMStateForCall().call().await.unwrap();
    assert_eq!(
        (st.B, st.Q, st.B0, st.Q0, st.R),
        (
            base(50),
            quote(100_000),
            base(50),
            quote(100_000),
            U256::ZERO
        )
    );
    assert_eq!(dpp.getMidPrice().call().await.unwrap(), u(2_000_000_000));

    // Owner withdraws 10 base to account 4 and moves i to 2100 USDC.
    let to = d.account(4).unwrap();
    let before = d.balance_of(s.base, to).await.unwrap();
    let call = dpp.reset(
        to,
        u(E18 / 1000),
        u(2_100_000_000),
        u(E18 / 2),
        base(10),
        U256::ZERO,
        U256::ZERO,
        U256::ZERO,
    );
    confirm("reset", call).await.expect("reset");
    assert_eq!(d.balance_of(s.base, to).await.unwrap() - before, base(10));
    let st = dpp.getPMMStateForCall().call().await.unwrap();
    assert_eq!(
        (st.i, st.K, st.B, st.B0, st.R),
        (u(2_100_000_000), u(E18 / 2), base(40), base(40), U256::ZERO)
    );
    assert_eq!(
        dpp._LP_FEE_RATE_().call().await.unwrap(),
        (E18 / 1000) as u64
    );

    // Only the owner may reset; a reserve floor above the reserves fails.
    let stranger = d.account(2).unwrap();
    let call = dpp
        .reset(
            stranger,
            u(0),
            u(1),
            u(0),
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
        )
        .from(stranger);
    let err = confirm("reset", call).await.expect_err("not owner");
    assert!(err.to_string().contains("NOT_OWNER"), "{err}");
    let call = dpp.reset(
        owner,
        u(0),
        u(1),
        u(0),
        U256::ZERO,
        U256::ZERO,
        base(41),
        U256::ZERO,
    );
    let err = confirm("reset", call).await.expect_err("floor");
    assert!(
        err.to_string().contains("RESERVE_AMOUNT_IS_NOT_ENOUGH"),
        "{err}"
    );
}

#[tokio::test]
async fn dpp_oracle_reads_i_from_its_oracle() {
    let s = setup().await;
    let d = &s.devnet;
    d.mint(s.base, d.deployer(), base(100)).await.unwrap();
    d.mint(s.quote, d.deployer(), quote(200_000)).await.unwrap();
    let oracle = d.deploy_price_oracle(u(1_900_000_000)).await.unwrap();
    let pool = d
        .deploy_dpp_oracle(volatile(&s), oracle)
        .await
        .expect("dpp oracle");
    d.dpp_deposit(pool, base(50), quote(100_000)).await.unwrap();
    let c = DPPOracle::new(pool, d.provider());
    assert_eq!(c.version().call().await.unwrap(), "DPP Oracle 1.1.0");
    assert!(c._IS_ORACLE_ENABLED().call().await.unwrap());
    assert_eq!(c._O_().call().await.unwrap(), oracle);
    // _I_ keeps the fallback; the state and mid price follow the oracle.
    assert_eq!(c._I_().call().await.unwrap(), 2_000_000_000u128);
    assert_eq!(
        c.getPMMStateForCall().call().await.unwrap().i,
        u(1_900_000_000)
    );
    assert_eq!(c.getMidPrice().call().await.unwrap(), u(1_900_000_000));
    confirm(
        "setPrice",
        PriceOracle::new(oracle, d.provider()).setPrice(u(2_200_000_000)),
    )
    .await
    .unwrap();
    assert_eq!(c.getMidPrice().call().await.unwrap(), u(2_200_000_000));
}

#[tokio::test]
async fn feed_setters_change_latest_round_data() {
    let d = Devnet::start().expect("devnet");
    let feed = d
        .deploy_feed(8, I256::try_from(200_000_000_000_i64).unwrap())
        .await
        .expect("feed");
    let f = ChainlinkFeed::new(feed, d.provider());
    assert_eq!(f.decimals().call().await.unwrap(), 8);
    let r = f.latestRoundData().call().await.unwrap();
    assert_eq!(
        (r.roundId, r.answer),
        (U80::from(1), I256::try_from(200_000_000_000_i64).unwrap())
    );
    assert_eq!(r.updatedAt, U256::from(d.block_timestamp().await.unwrap()));

    confirm(
        "setAnswer",
        f.setAnswer(I256::try_from(195_000_000_000_i64).unwrap()),
    )
    .await
    .unwrap();
    let r = f.latestRoundData().call().await.unwrap();
    assert_eq!(r.answer, I256::try_from(195_000_000_000_i64).unwrap());
    assert_eq!(r.roundId, U80::from(2));
    assert_eq!(r.answeredInRound, r.roundId);

    confirm("setUpdatedAt", f.setUpdatedAt(u(1_000)))
        .await
        .unwrap();
    assert_eq!(
        f.latestRoundData().call().await.unwrap().updatedAt,
        u(1_000)
    );
}

#[tokio::test]
async fn probe_answers_like_the_pools() {
    let s = setup().await;
    let d = &s.devnet;
    let probe = PMMProbe::new(d.deploy_probe().await.expect("probe"), d.provider());

    // A DVM with B = 110, Q = 230000 (state B0 = Q0 = 0, R = ABOVE_ONE before adjustment).
    let dvm_state = State {
        i: u(2_000_000_000),
        K: u(E18 / 10),
        B: base(110),
        Q: quote(230_000),
        B0: U256::ZERO,
        Q0: U256::ZERO,
        R: 1,
    };
    assert_eq!(
        probe
            .getMidPrice(dvm_state.clone(), false)
            .call()
            .await
            .unwrap(),
        u(2_563_913_952)
    );
    let adj = probe
        .adjustedState(dvm_state.clone(), false)
        .call()
        .await
        .unwrap();
    assert_eq!(adj.B0, u(214_980_915_752_512_593_750));
    let q = probe
        .querySellBase(
            dvm_state.clone(),
            base(1),
            u(3 * E18 / 1000),
            u(E18 / 1000),
            false,
        )
        .call()
        .await
        .unwrap();
    assert_eq!(
        (q.receiveQuoteAmount, q.mtFee, q.newRState),
        (u(2_546_803_719), u(2_557_031), 1)
    );

    // The same state on a real pool gives the same answers.
    let pool = d.deploy_dvm(volatile(&s)).await.unwrap();
    let a1 = d.account(1).unwrap();
    d.buy_shares(a1, pool, base(110), quote(230_000))
        .await
        .unwrap();
    let dvm = DVM::new(pool, d.provider());
    let trader = d.account(3).unwrap();
    for amount in [base(1), base(7) / u(3), u(12_345)] {
        let pq = dvm.querySellBase(trader, amount).call().await.unwrap();
        let rq = probe
            .querySellBase(
                dvm_state.clone(),
                amount,
                u(3 * E18 / 1000),
                u(E18 / 1000),
                false,
            )
            .call()
            .await
            .unwrap();
        assert_eq!(
            (pq.receiveQuoteAmount, pq.mtFee),
            (rq.receiveQuoteAmount, rq.mtFee)
        );
        let pq = dvm
            .querySellQuote(trader, amount / u(1_000_000_000))
            .call()
            .await
            .unwrap();
        let rq = probe
            .querySellQuote(
                dvm_state.clone(),
                amount / u(1_000_000_000),
                u(3 * E18 / 1000),
                u(E18 / 1000),
                false,
            )
            .call()
            .await
            .unwrap();
        assert_eq!(
            (pq.receiveBaseAmount, pq.mtFee),
            (rq.receiveBaseAmount, rq.mtFee)
        );
    }

    // Building blocks, and the k = 1 and k = 0 trade paths.
    // DODO's Babylonian root answers 2 for 2 (its loop never runs); every other input floors.
    assert_eq!(probe.isqrt(u(2)).call().await.unwrap(), u(2));
    assert_eq!(probe.isqrt(u(3)).call().await.unwrap(), u(1));
    assert_eq!(probe.isqrt(u(10).pow(u(36))).call().await.unwrap(), u(E18));
    assert_eq!(
        probe.divCeil(u(1), u(3)).call().await.unwrap(),
        u(333_333_333_333_333_334)
    );
    assert_eq!(
        probe
            .solveTrade(base(100), base(100), base(10), u(E18), u(E18), false)
            .call()
            .await
            .unwrap(),
        u(9_090_909_090_909_090_909)
    );
    assert_eq!(
        probe
            .solveTrade(base(100), base(5), base(10), u(E18), U256::ZERO, false)
            .call()
            .await
            .unwrap(),
        base(5)
    );

    // A DVM holding no quote has B0 = B and cannot sell base.
    let empty_quote = State {
        Q: U256::ZERO,
        ..dvm_state
    };
    let err = probe
        .querySellBase(empty_quote, base(1), U256::ZERO, U256::ZERO, false)
        .call()
        .await
        .expect_err("target zero");
    assert!(err.to_string().contains("TARGET_IS_ZERO"), "{err}");
}

#[tokio::test]
async fn versions_identify_every_pool_type() {
    let s = setup().await;
    let d = &s.devnet;
    let gsp = d.deploy_gsp(pegged(&s)).await.expect("gsp");
    assert_eq!(
        GSP::new(gsp, d.provider()).version().call().await.unwrap(),
        "GSP 1.0.1"
    );

    let oracle = d.deploy_price_oracle(u(2_000_000_000)).await.unwrap();
    let v1 = d
        .deploy_v1(s.base, s.quote, oracle, u(E18 / 10))
        .await
        .expect("v1");
    let pool = V1Pool::new(v1, d.provider());
    assert_eq!(pool.version().call().await.unwrap(), u(101));
    assert_eq!(
        pool.getOraclePrice().call().await.unwrap(),
        u(2_000_000_000)
    );
    assert_eq!(pool._R_STATUS_().call().await.unwrap(), 0);
    let a1 = d.account(1).unwrap();
    d.approve(a1, s.base, v1, base(2)).await.unwrap();
    d.approve(a1, s.quote, v1, quote(4_000)).await.unwrap();
    confirm("depositBase", pool.depositBase(base(2)).from(a1))
        .await
        .unwrap();
    confirm("depositQuote", pool.depositQuote(quote(4_000)).from(a1))
        .await
        .unwrap();
    assert_eq!(pool._BASE_BALANCE_().call().await.unwrap(), base(2));
    assert_eq!(d.balance_of(s.quote, v1).await.unwrap(), quote(4_000));
    assert_eq!(pool.getMidPrice().call().await.unwrap(), u(2_000_000_000));
}

#[tokio::test]
async fn lp_shares_transfer_and_invalid_params_fail_closed() {
    let s = setup().await;
    let d = &s.devnet;
    let (a1, a2) = (d.account(1).unwrap(), d.account(2).unwrap());
    let pool = d.deploy_dvm(volatile(&s)).await.unwrap();
    d.buy_shares(a1, pool, base(10), quote(20_000))
        .await
        .unwrap();
    let dvm = DVM::new(pool, d.provider());
    confirm("transfer LP", dvm.transfer(a2, base(3)).from(a1))
        .await
        .unwrap();
    assert_eq!(dvm.balanceOf(a2).call().await.unwrap(), base(3));
    assert_eq!(dvm.balanceOf(a1).call().await.unwrap(), base(7) - u(1001));

    let bad_i = PoolParams {
        i: U256::ZERO,
        ..volatile(&s)
    };
    let err = d.deploy_dvm(bad_i).await.expect_err("i = 0");
    assert!(
        matches!(err, TestkitError::InvalidParam { field: "i", .. }),
        "{err}"
    );
    let bad_k = PoolParams {
        k: u(E18 + 1),
        ..pegged(&s)
    };
    let err = d.deploy_dsp(bad_k).await.expect_err("k > 1");
    assert!(
        matches!(err, TestkitError::InvalidParam { field: "k", .. }),
        "{err}"
    );
}
