//! Differential test: pmm-core's PMM math against the project's Solidity fixture contracts on a
//! real anvil devnet, to the wei.
//!
//! Two sources of cases, all drawn from one seeded generator so a failure replays exactly:
//! - stateless probe cases: random PMM states (i, K, reserves, targets, R, fee rates, decimals
//!   6/8/18, near-empty pools, trades crossing R) priced by `PMMProbe`, which runs the same
//!   library the pools execute, with `eth_call`;
//! - pool cases: real DVM and DSP fixture pools taken through first deposits, quotes, swaps,
//!   unbalanced deposits (the donated excess) and share burns, each step compared with the
//!   prediction made from the state read just before it.
//!
//! A revert matches when the contract's reason string (or Solidity panic code) is the one the
//! core error names. The test prints `pmm differential: N cases, M mismatches` and fails when
//! N < 2000 or M > 0. Set `PMM_DIFF_SEED` to replay another seed.

use std::fmt::Debug;

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::sol_types::{Panic, Revert, SolError};
use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};
use pmm_core::math::{
    self, FeeRates, Generation, LiquidityState, MathError, PmmState, PoolKind as MathKind, RState,
    SwapQuote,
};
use pmm_testkit::contracts::dsp::DSP;
use pmm_testkit::contracts::dvm::DVM;
use pmm_testkit::contracts::pmm_probe::{PMMMath, PMMProbe};
use pmm_testkit::{Devnet, DvmParams, Template};

const GENERATIONS: [Generation; 2] = [Generation::V2024, Generation::V2021];
const PROBE_CASES: usize = 1_000;
const POOL_SCENARIOS: usize = 18;
const MIN_CASES: usize = 3_000;
const DECIMALS: [u8; 3] = [6, 8, 18];

/// xorshift64*: tiny, seedable, and enough to spread cases over the parameter space.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value of about `10^exp`, with three random significant digits.
    fn magnitude(&mut self, exp: u32) -> U256 {
        let mantissa = U256::from(100 + self.below(900));
        mantissa * U256::from(10).pow(U256::from(exp)) / U256::from(100)
    }

    /// A random part of `x`: tiny, a fraction, all of it, or more than all of it.
    fn part_of(&mut self, x: U256) -> U256 {
        match self.below(10) {
            0 => U256::from(self.below(1_000)),
            1 => x,
            2 => x * U256::from(2 + self.below(3)),
            _ => x * U256::from(1 + self.below(999)) / U256::from(1_000),
        }
    }
}

/// Guide price i for a human price of about `10^price_exp` quote per base, on raw units.
fn guide_price(rng: &mut Rng, base_dec: u8, quote_dec: u8, price_exp: i32) -> U256 {
    let exp = 18 + i32::from(quote_dec) - i32::from(base_dec) + price_exp;
    let exp = u32::try_from(exp.max(0)).unwrap_or(0);
    rng.magnitude(exp).max(U256::from(1))
}

fn curvature(rng: &mut Rng) -> U256 {
    let one = math::ONE;
    match rng.below(8) {
        0 => U256::ZERO,
        1 => one,
        2 => U256::from(1),
        3 => one / U256::from(1_000),
        4 => one / U256::from(2),
        _ => U256::from(rng.next()) % (one + U256::from(1)),
    }
}

fn fee_rates(rng: &mut Rng) -> FeeRates {
    let lp = match rng.below(3) {
        0 => U256::ZERO,
        1 => U256::from(3_000_000_000_000_000u64),
        _ => U256::from(rng.below(10_000_000_000_000_000)),
    };
    let mt = match rng.below(3) {
        0 => U256::ZERO,
        1 => U256::from(1_000_000_000_000_000u64),
        _ => U256::from(rng.below(5_000_000_000_000_000)),
    };
    FeeRates { lp, mt }
}

/// A reserve of `decimals` token: near-empty now and then, near the 2^112 ceiling now and
/// then, otherwise 1e-2 .. 1e7 tokens.
fn reserve(rng: &mut Rng, decimals: u8) -> U256 {
    if rng.chance(8) {
        return U256::from(rng.below(2_000));
    }
    if rng.chance(4) {
        return (U256::from(1) << 112)
            - U256::from(1)
            - U256::from(rng.next()) * U256::from(rng.below(1 << 20));
    }
    let exp = u32::from(decimals) + rng.below(10) as u32;
    rng.magnitude(exp.saturating_sub(2))
}

/// One random probe case: a state, a trade size per side and fee rates.
#[derive(Debug, Clone, Copy)]
struct ProbeCase {
    state: PmmState,
    pay_base: U256,
    pay_quote: U256,
    fees: FeeRates,
}

fn probe_case(rng: &mut Rng) -> ProbeCase {
    let base_dec = rng.pick(&DECIMALS);
    let quote_dec = rng.pick(&DECIMALS);
    let price_exp = rng.below(8) as i32 - 3;
    let i = guide_price(rng, base_dec, quote_dec, price_exp);
    let k = curvature(rng);
    let b = reserve(rng, base_dec);
    let q = reserve(rng, quote_dec);
    let state = match rng.below(4) {
        0 => PmmState {
            i,
            k,
            b,
            q,
            b0: b,
            q0: q,
            r: RState::One,
        },
        1 => {
            // Traders bought base: quote above its target. Now and then an inconsistent
            // target, to compare the revert.
            let q0 = if rng.chance(5) {
                q + U256::from(1)
            } else {
                q - rng.part_of(q).min(q)
            };
            PmmState {
                i,
                k,
                b,
                q,
                b0: b,
                q0,
                r: RState::AboveOne,
            }
        }
        2 => {
            let b0 = if rng.chance(5) {
                b + U256::from(1)
            } else {
                b - rng.part_of(b).min(b)
            };
            PmmState {
                i,
                k,
                b,
                q,
                b0,
                q0: q,
                r: RState::BelowOne,
            }
        }
        _ => PmmState::dvm(i, k, b, q),
    };
    ProbeCase {
        state,
        pay_base: rng.part_of(b.max(U256::from(1))),
        pay_quote: rng.part_of(q.max(U256::from(1))),
        fees: fee_rates(rng),
    }
}

fn to_sol_state(s: &PmmState) -> PMMMath::State {
    PMMMath::State {
        i: s.i,
        K: s.k,
        B: s.b,
        Q: s.q,
        B0: s.b0,
        Q0: s.q0,
        R: s.r.as_u8(),
    }
}

/// What a contract call produced: its values, or the revert it raised.
#[derive(Debug, PartialEq, Eq)]
enum Outcome<T> {
    Ok(T),
    Revert(String),
}

/// The contract-side name of a core error: its reason string or its Solidity panic code.
fn core_revert(err: &MathError) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(reason) = err.reason() {
        names.push(reason.to_string());
    }
    if let Some(code) = err.solidity_panic_code() {
        names.push(format!("panic 0x{code:02x}"));
    }
    names
}

/// Decodes a revert from an `eth_call` error: `Error(string)`, `Panic(uint256)`, or raw data.
fn chain_revert(err: &alloy::contract::Error) -> Result<String> {
    let data: Bytes = err
        .as_revert_data()
        .with_context(|| format!("call failed without revert data: {err}"))?;
    if let Ok(revert) = Revert::abi_decode(&data) {
        return Ok(revert.reason);
    }
    if let Ok(panic) = Panic::abi_decode(&data) {
        return Ok(format!("panic 0x{:02x}", panic.code));
    }
    Ok(format!("raw revert 0x{}", alloy::hex::encode(&data)))
}

/// Counts cases and collects the first mismatches for the report.
#[derive(Default)]
struct Tally {
    cases: usize,
    both_succeeded: usize,
    pool_cases: usize,
    crossed_r: usize,
    mismatches: Vec<String>,
}

impl Tally {
    fn compare<T: PartialEq + Debug>(
        &mut self,
        what: &str,
        core: Result<T, MathError>,
        chain: Outcome<T>,
    ) {
        self.cases += 1;
        if !what.starts_with("probe") {
            self.pool_cases += 1;
        }
        let same = match (&core, &chain) {
            (Ok(a), Outcome::Ok(b)) => {
                self.both_succeeded += 1;
                a == b
            }
            (Err(e), Outcome::Revert(reason)) => core_revert(e).iter().any(|n| n == reason),
            _ => false,
        };
        if !same {
            self.mismatches
                .push(format!("{what}: core {core:?} vs chain {chain:?}"));
        }
    }
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.cases += other.cases;
        self.both_succeeded += other.both_succeeded;
        self.pool_cases += other.pool_cases;
        self.crossed_r += other.crossed_r;
        self.mismatches.extend(other.mismatches);
    }
}

async fn outcome<T, F>(call: F) -> Result<Outcome<T>>
where
    F: std::future::IntoFuture<Output = Result<T, alloy::contract::Error>>,
{
    match call.await {
        Ok(v) => Ok(Outcome::Ok(v)),
        Err(e) => Ok(Outcome::Revert(chain_revert(&e)?)),
    }
}

/// Quote tuple compared between core and chain: receive, mt fee, new R, new target.
type QuoteTuple = (U256, U256, u8, U256);

fn quote_tuple(q: SwapQuote) -> QuoteTuple {
    (q.receive, q.mt_fee, q.new_r.as_u8(), q.new_target)
}

async fn run_probe_cases(
    devnet: &Devnet,
    rng: &mut Rng,
    tally: &mut Tally,
    generation: Generation,
) -> Result<()> {
    let gen2021 = generation == Generation::V2021;
    let probe = PMMProbe::new(devnet.deploy_probe().await?, devnet.provider().clone());
    // The square root the solvers share, around its one irregular input (2) and at random.
    let roots: Vec<U256> = (0..64u64)
        .map(U256::from)
        .chain((0..200).map(|_| U256::from(rng.next()) << (rng.below(190) as usize)))
        .collect();
    for x in roots {
        let chain = outcome(probe.isqrt(x).call()).await?;
        tally.compare(&format!("probe isqrt {x}"), Ok(math::fixed::sqrt(x)), chain);
    }
    let cases: Vec<ProbeCase> = (0..PROBE_CASES).map(|_| probe_case(rng)).collect();
    let results = stream::iter(cases.into_iter().enumerate())
        .map(|(n, case)| {
            let probe = probe.clone();
            async move {
                let s = to_sol_state(&case.state);
                let mid = outcome(probe.getMidPrice(s.clone(), gen2021).call()).await?;
                let base = outcome(async {
                    probe
                        .querySellBase(
                            s.clone(),
                            case.pay_base,
                            case.fees.lp,
                            case.fees.mt,
                            gen2021,
                        )
                        .call()
                        .await
                        .map(|r| (r.receiveQuoteAmount, r.mtFee, r.newRState, r.newTarget))
                })
                .await?;
                let quote = outcome(async {
                    probe
                        .querySellQuote(s, case.pay_quote, case.fees.lp, case.fees.mt, gen2021)
                        .call()
                        .await
                        .map(|r| (r.receiveBaseAmount, r.mtFee, r.newRState, r.newTarget))
                })
                .await?;
                anyhow::Ok((n, case, mid, base, quote))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for result in results {
        let (n, case, mid, base, quote) = result?;
        let s = &case.state;
        tally.compare(
            &format!("probe #{n} mid {s:?}"),
            math::mid_price(generation, s),
            mid,
        );
        let core_base = math::query_sell_base(generation, s, case.pay_base, case.fees);
        let core_quote = math::query_sell_quote(generation, s, case.pay_quote, case.fees);
        for q in [&core_base, &core_quote].into_iter().flatten() {
            let crossed = matches!(
                (s.r, q.new_r),
                (RState::AboveOne, RState::BelowOne) | (RState::BelowOne, RState::AboveOne)
            );
            if crossed {
                tally.crossed_r += 1;
            }
        }
        tally.compare(
            &format!(
                "probe #{n} sellBase {} {s:?} {:?}",
                case.pay_base, case.fees
            ),
            core_base.map(quote_tuple),
            base,
        );
        tally.compare(
            &format!(
                "probe #{n} sellQuote {} {s:?} {:?}",
                case.pay_quote, case.fees
            ),
            core_quote.map(quote_tuple),
            quote,
        );
    }
    Ok(())
}

/// One real pool under test and the account that trades on it.
struct PoolUnderTest<'a> {
    devnet: &'a Devnet,
    kind: MathKind,
    generation: Generation,
    twap: bool,
    pool: Address,
    base: Address,
    quote: Address,
    trader: Address,
}

impl PoolUnderTest<'_> {
    fn dvm(&self) -> DVM::DVMInstance<alloy::providers::DynProvider> {
        DVM::new(self.pool, self.devnet.provider().clone())
    }

    fn dsp(&self) -> DSP::DSPInstance<alloy::providers::DynProvider> {
        DSP::new(self.pool, self.devnet.provider().clone())
    }

    async fn pmm_state(&self) -> Result<PmmState> {
        let s = self.dvm().getPMMStateForCall().call().await?;
        Ok(PmmState {
            i: s.i,
            k: s.K,
            b: s.B,
            q: s.Q,
            b0: s.B0,
            q0: s.Q0,
            r: RState::try_from(u8::try_from(s.R).context("R above 255")?)?,
        })
    }

    async fn liquidity_state(&self) -> Result<LiquidityState> {
        let dvm = self.dvm();
        let reserves = dvm.getVaultReserve().call().await?;
        let total_supply = dvm.totalSupply().call().await?;
        let i = dvm._I_().call().await?;
        let (b0, q0) = match self.kind {
            MathKind::Dvm => (U256::ZERO, U256::ZERO),
            MathKind::Dsp => {
                let dsp = self.dsp();
                (
                    U256::from(dsp._BASE_TARGET_().call().await?),
                    U256::from(dsp._QUOTE_TARGET_().call().await?),
                )
            }
        };
        Ok(LiquidityState {
            total_supply,
            base_reserve: reserves.baseReserve,
            quote_reserve: reserves.quoteReserve,
            i,
            b0,
            q0,
        })
    }

    /// On a TWAP pool, moves time on by a second (so the next write and an `eth_call` before
    /// it both see time elapsed) and returns the elapsed time the call sees; `None` otherwise.
    async fn twap_elapsed(&self) -> Result<Option<u32>> {
        if !self.twap {
            return Ok(None);
        }
        let provider = self.devnet.provider();
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), [1u64])
            .await?;
        let _: serde_json::Value = provider
            .raw_request("evm_mine".into(), Vec::<u64>::new())
            .await?;
        let last = self.dvm()._BLOCK_TIMESTAMP_LAST_().call().await?;
        let now = u32::try_from(self.devnet.block_timestamp().await? % (1 << 32))?;
        Ok(Some(now.wrapping_sub(last)))
    }

    /// The write's outcome once a TWAP pool prices the state it leaves.
    fn with_twap<T>(
        &self,
        elapsed: Option<u32>,
        outcome: Result<T, MathError>,
        post: impl FnOnce(&T) -> PmmState,
    ) -> Result<T, MathError> {
        let value = outcome?;
        if let Some(elapsed) = elapsed {
            math::twap_update(self.generation, &post(&value), elapsed)?;
        }
        Ok(value)
    }

    /// The PMM state a pool stores after a funding call: reserves, targets (a DSP's stored
    /// ones), R unchanged.
    fn stored_state(
        &self,
        r: RState,
        i: U256,
        k: U256,
        b: U256,
        q: U256,
        targets: Option<(U256, U256)>,
    ) -> PmmState {
        match (self.kind, targets) {
            (MathKind::Dsp, Some((b0, q0))) => PmmState {
                i,
                k,
                b,
                q,
                b0,
                q0,
                r,
            },
            _ => PmmState::dvm(i, k, b, q),
        }
    }

    async fn fees(&self) -> Result<FeeRates> {
        let f = self.dvm().getUserFeeRate(self.trader).call().await?;
        Ok(FeeRates {
            lp: f.lpFeeRate,
            mt: f.mtFeeRate,
        })
    }

    async fn balances(&self, owner: Address) -> Result<(U256, U256)> {
        Ok((
            self.devnet.balance_of(self.base, owner).await?,
            self.devnet.balance_of(self.quote, owner).await?,
        ))
    }

    /// Transfers in, compares `buyShares` with the prediction, and mints when both agree it
    /// succeeds. Returns whether shares were minted.
    async fn deposit(&self, tally: &mut Tally, base_in: U256, quote_in: U256) -> Result<bool> {
        let before = self.liquidity_state().await?;
        let pmm = self.pmm_state().await?;
        let (pool_base, pool_quote) = self.balances(self.pool).await?;
        if !base_in.is_zero() {
            self.devnet
                .transfer(self.trader, self.base, self.pool, base_in)
                .await?;
        }
        if !quote_in.is_zero() {
            self.devnet
                .transfer(self.trader, self.quote, self.pool, quote_in)
                .await?;
        }
        let (bb, qb) = (pool_base + base_in, pool_quote + quote_in);
        let elapsed = self.twap_elapsed().await?;
        let predicted = self.with_twap(
            elapsed,
            math::buy_shares(self.kind, self.generation, &before, bb, qb),
            |p| {
                let targets = p.targets.map(|t| (t.base, t.quote));
                self.stored_state(pmm.r, pmm.i, pmm.k, bb, qb, targets)
            },
        );
        let chain = outcome(async {
            self.dvm()
                .buyShares(self.trader)
                .from(self.trader)
                .call()
                .await
                .map(|r| (r.shares, r.baseInput, r.quoteInput))
        })
        .await?;
        let minted = matches!((&predicted, &chain), (Ok(_), Outcome::Ok(_)));
        tally.compare(
            &format!(
                "{:?} buyShares +{base_in}/+{quote_in} from {before:?}",
                self.kind
            ),
            predicted
                .clone()
                .map(|p| (p.received, p.base_input, p.quote_input)),
            chain,
        );
        let (true, Ok(predicted)) = (minted, predicted) else {
            return Ok(false);
        };
        pmm_testkit::devnet::confirm(
            "buyShares",
            self.dvm().buyShares(self.trader).from(self.trader),
        )
        .await?;
        let after = self.liquidity_state().await?;
        let targets = predicted.targets.map(|t| (t.base, t.quote));
        let chain_targets = (self.kind == MathKind::Dsp).then_some((after.b0, after.q0));
        tally.compare(
            &format!("{:?} state after buyShares", self.kind),
            Ok((predicted.new_total_supply, targets)),
            Outcome::Ok((after.total_supply, chain_targets)),
        );
        Ok(true)
    }

    /// Compares the pool's quote, executes the swap, and compares what the trader received
    /// and the mid price the pool reports afterwards.
    async fn swap(&self, tally: &mut Tally, sell_base: bool, amount: U256) -> Result<bool> {
        let state = self.pmm_state().await?;
        let fees = self.fees().await?;
        let (predicted, chain) = if sell_base {
            let predicted = math::query_sell_base(self.generation, &state, amount, fees);
            let chain = match self.kind {
                MathKind::Dvm => {
                    outcome(async {
                        self.dvm()
                            .querySellBase(self.trader, amount)
                            .call()
                            .await
                            .map(|r| (r.receiveQuoteAmount, r.mtFee, None))
                    })
                    .await?
                }
                MathKind::Dsp => {
                    outcome(async {
                        self.dsp()
                            .querySellBase(self.trader, amount)
                            .call()
                            .await
                            .map(|r| {
                                (
                                    r.receiveQuoteAmount,
                                    r.mtFee,
                                    Some((r.newRState, r.newBaseTarget)),
                                )
                            })
                    })
                    .await?
                }
            };
            (predicted, chain)
        } else {
            let predicted = math::query_sell_quote(self.generation, &state, amount, fees);
            let chain = match self.kind {
                MathKind::Dvm => {
                    outcome(async {
                        self.dvm()
                            .querySellQuote(self.trader, amount)
                            .call()
                            .await
                            .map(|r| (r.receiveBaseAmount, r.mtFee, None))
                    })
                    .await?
                }
                MathKind::Dsp => {
                    outcome(async {
                        self.dsp()
                            .querySellQuote(self.trader, amount)
                            .call()
                            .await
                            .map(|r| {
                                (
                                    r.receiveBaseAmount,
                                    r.mtFee,
                                    Some((r.newRState, r.newQuoteTarget)),
                                )
                            })
                    })
                    .await?
                }
            };
            (predicted, chain)
        };
        let dsp_extra = self.kind == MathKind::Dsp;
        let ok = matches!((&predicted, &chain), (Ok(_), Outcome::Ok(_)));
        tally.compare(
            &format!(
                "{:?} query sell {} {amount} at {state:?} fees {fees:?}",
                self.kind,
                if sell_base { "base" } else { "quote" }
            ),
            predicted.clone().map(|q| {
                (
                    q.receive,
                    q.mt_fee,
                    dsp_extra.then_some((q.new_r.as_u8(), q.new_target)),
                )
            }),
            chain,
        );
        let (true, Ok(quote)) = (ok, predicted) else {
            return Ok(true);
        };
        let expected_state = if sell_base {
            math::apply_sell_base(self.kind, &state, amount, &quote)
        } else {
            math::apply_sell_quote(self.kind, &state, amount, &quote)
        };
        let (gets, pays) = if sell_base {
            (self.quote, self.base)
        } else {
            (self.base, self.quote)
        };
        let before = self.devnet.balance_of(gets, self.trader).await?;
        self.devnet
            .transfer(self.trader, pays, self.pool, amount)
            .await?;
        let elapsed = self.twap_elapsed().await?;
        let write = self.with_twap(elapsed, expected_state, |s| *s);
        let pool = self.dvm();
        let chain_write = if sell_base {
            outcome(pool.sellBase(self.trader).from(self.trader).call()).await?
        } else {
            outcome(pool.sellQuote(self.trader).from(self.trader).call()).await?
        };
        tally.compare(
            &format!(
                "{:?} {} swap write twap={:?}",
                self.kind, self.generation, elapsed
            ),
            write.clone().map(|_| quote.receive),
            chain_write,
        );
        // A refused write leaves the transferred tokens in the pool: the scenario ends here.
        let Ok(expected_state) = write else {
            return Ok(false);
        };
        if sell_base {
            pmm_testkit::devnet::confirm("sellBase", pool.sellBase(self.trader).from(self.trader))
                .await?;
        } else {
            pmm_testkit::devnet::confirm(
                "sellQuote",
                pool.sellQuote(self.trader).from(self.trader),
            )
            .await?;
        }
        let received = self.devnet.balance_of(gets, self.trader).await? - before;
        let chain_mid = outcome(self.dvm().getMidPrice().call()).await?;
        let chain_reserves = self.dvm().getVaultReserve().call().await?;
        tally.compare(
            &format!("{:?} swap payout and post-trade mid price", self.kind),
            math::mid_price(self.generation, &expected_state)
                .map(|mid| (quote.receive, (expected_state.b, expected_state.q), mid)),
            match chain_mid {
                Outcome::Ok(mid) => Outcome::Ok((
                    received,
                    (chain_reserves.baseReserve, chain_reserves.quoteReserve),
                    mid,
                )),
                Outcome::Revert(r) => Outcome::Revert(r),
            },
        );
        Ok(true)
    }

    /// Compares `sellShares` of a part of the trader's shares with the prediction, then burns.
    async fn withdraw(&self, tally: &mut Tally, rng: &mut Rng) -> Result<()> {
        let held = self.dvm().balanceOf(self.trader).call().await?;
        let amount = if rng.chance(10) {
            held + U256::from(1)
        } else {
            held * U256::from(1 + rng.below(1_000)) / U256::from(1_000)
        };
        let before = self.liquidity_state().await?;
        let (pool_base, pool_quote) = self.balances(self.pool).await?;
        let pmm = self.pmm_state().await?;
        let elapsed = self.twap_elapsed().await?;
        let predicted = math::sell_shares(self.kind, &before, pool_base, pool_quote, amount, held);
        // The sync writes (and a TWAP pool prices) only when a reserve changes.
        let moved = predicted
            .as_ref()
            .is_ok_and(|p| !(p.base_amount.is_zero() && p.quote_amount.is_zero()));
        let predicted = self.with_twap(elapsed.filter(|_| moved), predicted, |p| {
            let targets = p.targets.map(|t| (t.base, t.quote));
            self.stored_state(
                pmm.r,
                pmm.i,
                pmm.k,
                p.new_base_reserve,
                p.new_quote_reserve,
                targets,
            )
        });
        let deadline = U256::from(self.devnet.block_timestamp().await? + 3_600);
        let pool = self.dvm();
        let call = pool.sellShares(
            amount,
            self.trader,
            U256::ZERO,
            U256::ZERO,
            Bytes::new(),
            deadline,
        );
        let chain = outcome(async {
            call.clone()
                .from(self.trader)
                .call()
                .await
                .map(|r| (r.baseAmount, r.quoteAmount))
        })
        .await?;
        let ok = matches!((&predicted, &chain), (Ok(_), Outcome::Ok(_)));
        tally.compare(
            &format!(
                "{:?} sellShares {amount} of {held} from {before:?}",
                self.kind
            ),
            predicted.clone().map(|p| (p.base_amount, p.quote_amount)),
            chain,
        );
        let (true, Ok(predicted)) = (ok, predicted) else {
            return Ok(());
        };
        pmm_testkit::devnet::confirm("sellShares", call.from(self.trader)).await?;
        let after = self.liquidity_state().await?;
        tally.compare(
            &format!("{:?} state after sellShares", self.kind),
            Ok((
                predicted.new_total_supply,
                predicted.targets.map(|t| (t.base, t.quote)),
            )),
            Outcome::Ok((
                after.total_supply,
                (self.kind == MathKind::Dsp).then_some((after.b0, after.q0)),
            )),
        );
        Ok(())
    }
}

async fn run_pool_scenarios(
    devnet: &Devnet,
    rng: &mut Rng,
    tally: &mut Tally,
    generation: Generation,
) -> Result<()> {
    let trader = devnet.account(1)?;
    let mut tokens = Vec::new();
    for dec in DECIMALS {
        let token = devnet.deploy_token(&format!("T{dec}"), dec).await?;
        devnet.mint(token, trader, U256::MAX >> 130).await?;
        tokens.push((dec, token));
    }
    for n in 0..POOL_SCENARIOS {
        let (base_dec, base) = rng.pick(&tokens);
        let (quote_dec, quote) = tokens[(tokens.iter().position(|t| t.1 == base).unwrap_or(0)
            + 1
            + rng.below(2) as usize)
            % tokens.len()];
        let kind = if n % 2 == 0 {
            MathKind::Dvm
        } else {
            MathKind::Dsp
        };
        // Every third pair of scenarios runs on TWAP pools.
        let twap = n % 6 >= 4;
        let template = match (kind, generation) {
            (MathKind::Dvm, Generation::V2024) => Template::Dvm,
            (MathKind::Dsp, Generation::V2024) => Template::Dsp,
            (MathKind::Dvm, Generation::V2021) => Template::Dvm2021,
            (MathKind::Dsp, Generation::V2021) => Template::Dsp2021,
        };
        let price_exp = rng.below(5) as i32 - 2;
        let fees = fee_rates(rng);
        let params = DvmParams {
            base,
            quote,
            lp_fee_rate: fees.lp,
            mt_fee_rate: fees.mt,
            i: guide_price(rng, base_dec, quote_dec, price_exp),
            k: match rng.below(3) {
                0 => U256::ZERO,
                1 => math::ONE,
                _ => U256::from(rng.next()) % math::ONE,
            },
        };
        let pool = devnet.deploy_shares_pool(template, &params, twap).await?;
        let put = PoolUnderTest {
            devnet,
            kind,
            generation,
            twap,
            pool,
            base,
            quote,
            trader,
        };
        // First deposits on the empty pool: now and then a tiny one each generation treats
        // differently, then a real one.
        if rng.chance(40) {
            put.deposit(
                tally,
                U256::from(900 + rng.below(1_300)),
                U256::from(rng.below(3)),
            )
            .await?;
        }
        let near_empty = rng.chance(15);
        let base_in = if near_empty {
            U256::from(1_000 + rng.below(3_000))
        } else {
            reserve(rng, base_dec).max(U256::from(10_000))
        };
        let quote_in = if near_empty {
            U256::from(rng.below(3_000))
        } else {
            reserve(rng, quote_dec)
        };
        if !put.deposit(tally, base_in, quote_in).await? {
            continue;
        }
        let mut live = true;
        for _ in 0..4 {
            let state = put.pmm_state().await?;
            let sell_base = rng.chance(50);
            let side = if sell_base { state.b } else { state.q };
            let amount = rng.part_of(side.max(U256::from(1)));
            if !put.swap(tally, sell_base, amount).await? {
                live = false;
                break;
            }
        }
        if !live {
            continue;
        }
        let state = put.pmm_state().await?;
        put.deposit(
            tally,
            rng.part_of(state.b).max(U256::from(1)),
            rng.part_of(state.q),
        )
        .await?;
        put.withdraw(tally, rng).await?;
        put.swap(tally, rng.chance(50), rng.part_of(state.b))
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmm_math_matches_fixture_contracts_to_the_wei() -> Result<()> {
    let seed = std::env::var("PMM_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00D0_D0D0_5EED_u64);
    let mut rng = Rng(seed.max(1));
    let devnet = Devnet::start()?;
    let mut tally = Tally::default();
    for generation in GENERATIONS {
        let mut part = Tally::default();
        run_probe_cases(&devnet, &mut rng, &mut part, generation).await?;
        run_pool_scenarios(&devnet, &mut rng, &mut part, generation).await?;
        println!(
            "pmm differential: generation={generation} {} cases, {} mismatches",
            part.cases,
            part.mismatches.len()
        );
        assert!(
            part.cases >= MIN_CASES,
            "generation {generation}: only {} cases ran",
            part.cases
        );
        tally.absorb(part);
    }
    println!("pmm differential seed: {seed}");
    println!(
        "pmm differential: {} cases, {} mismatches",
        tally.cases,
        tally.mismatches.len()
    );
    println!(
        "pmm differential: {} on real pools, {} where both sides succeeded",
        tally.pool_cases, tally.both_succeeded
    );
    for m in tally.mismatches.iter().take(20) {
        println!("mismatch: {m}");
    }
    println!(
        "pmm differential: {} quotes crossing R between ABOVE_ONE and BELOW_ONE",
        tally.crossed_r
    );
    // Guards against a generator that drifts into comparing only reverts.
    assert!(
        tally.both_succeeded * 2 >= tally.cases,
        "too few successful cases"
    );
    assert!(tally.pool_cases >= 300, "too few real-pool cases");
    assert!(tally.crossed_r >= 50, "too few trades crossing R");
    assert!(
        tally.mismatches.is_empty(),
        "{} mismatches, first: {}",
        tally.mismatches.len(),
        tally.mismatches[0]
    );
    Ok(())
}
