//! `pmm-market`: keeps a running `pmm-devnet` alive like a market would, so the agent's
//! decisions change from tick to tick: now and then it swaps against a V2 fixture pool (from a
//! dev account, leaning against the pool's inventory imbalance so the walk stays bounded) and
//! moves a Chainlink-style feed within a small band around its starting answer.

use std::path::PathBuf;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, I256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::Parser;
use pmm_testkit::PoolType;
use pmm_testkit::contracts::{ChainlinkFeed, DVM, TestERC20};
use pmm_testkit::devnet::confirm;
use serde::Deserialize;

/// Swap against the devnet's pools and move its feeds every few seconds, until stopped.
#[derive(Debug, Parser)]
#[command(name = "pmm-market", version)]
struct Args {
    /// The devnet description `pmm-devnet` wrote.
    #[arg(long, default_value = "var/devnet.json")]
    devnet: PathBuf,
    /// Seconds between two market moves.
    #[arg(long, default_value_t = 4.0)]
    every_s: f64,
    /// Dev account (index into the file's accounts) that trades.
    #[arg(long, default_value_t = 1)]
    trader: usize,
    /// Largest swap, in basis points of the pool's reserve of the token sold.
    #[arg(long, default_value_t = 600)]
    max_swap_bps: u64,
    /// Largest feed move away from its starting answer, basis points.
    #[arg(long, default_value_t = 40)]
    max_feed_bps: u64,
    /// Seed of the move sequence (default: the clock), for a repeatable run.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Account {
    address: Address,
    private_key: String,
}

#[derive(Debug, Deserialize)]
struct Pool {
    address: Address,
    pool_type: PoolType,
    base_token: Address,
    quote_token: Address,
}

#[derive(Debug, Deserialize)]
struct Feed {
    address: Address,
    answer: String,
}

#[derive(Debug, Deserialize)]
struct DevnetFile {
    rpc_url: String,
    accounts: Vec<Account>,
    pools: Vec<Pool>,
    feeds: Vec<Feed>,
}

/// xorshift64*: enough randomness for market noise without another dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pmm_daemon::init_logging(false);
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.devnet)
        .with_context(|| format!("reading {}", args.devnet.display()))?;
    let file: DevnetFile = serde_json::from_str(&text).context("parsing the devnet file")?;
    let trader = file
        .accounts
        .get(args.trader)
        .with_context(|| format!("no dev account {}", args.trader))?;
    let signer: PrivateKeySigner = trader
        .private_key
        .parse()
        .context("the trader's dev key does not parse")?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::new(signer))
        .connect_http(file.rpc_url.parse().context("rpc_url")?)
        .erased();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut noise = Noise(seed | 1);
    let swappable: Vec<&Pool> = file.pools.iter().filter(|p| p.pool_type.is_v2()).collect();
    let feeds: Vec<(Address, I256)> = file
        .feeds
        .iter()
        .filter_map(|f| Some((f.address, f.answer.parse::<I256>().ok()?)))
        .collect();
    anyhow::ensure!(!swappable.is_empty(), "the devnet file lists no V2 pools");
    tracing::info!(
        pools = swappable.len(),
        feeds = feeds.len(),
        seed,
        "market running; Ctrl-C stops it"
    );
    let every = Duration::from_secs_f64(args.every_s.max(0.1));
    let stop = pmm_daemon::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(every) => {}
        }
        let pool = swappable[noise.below(swappable.len() as u64) as usize];
        if let Err(e) = swap(
            &provider,
            trader.address,
            pool,
            &mut noise,
            args.max_swap_bps,
        )
        .await
        {
            tracing::warn!(pool = %pool.address, error = %e, "swap failed");
        }
        if !feeds.is_empty() && noise.below(2) == 0 {
            let (feed, start) = feeds[noise.below(feeds.len() as u64) as usize];
            let bps = I256::try_from(noise.below(2 * args.max_feed_bps + 1))?
                - I256::try_from(args.max_feed_bps)?;
            let answer = start + start * bps / I256::try_from(10_000)?;
            match confirm(
                "setAnswer",
                ChainlinkFeed::new(feed, &provider).setAnswer(answer),
            )
            .await
            {
                Ok(_) => tracing::info!(%feed, %answer, "feed moved"),
                Err(e) => tracing::warn!(%feed, error = %e, "feed update failed"),
            }
        }
    }
    tracing::info!("market stopped");
    Ok(())
}

/// Sells base or quote into `pool`: the side the pool holds too little of in value, more often
/// than not, so the inventory ratio wanders around its balance instead of drifting away.
async fn swap(
    provider: &DynProvider,
    trader: Address,
    pool: &Pool,
    noise: &mut Noise,
    max_bps: u64,
) -> anyhow::Result<()> {
    let c = DVM::new(pool.address, provider);
    let reserve = c.getVaultReserve().call().await?;
    let mid = c.getMidPrice().call().await?;
    let one = U256::from(10u64).pow(U256::from(18));
    let base_value = reserve.baseReserve * mid / one;
    let heavy_base = base_value > reserve.quoteReserve;
    // 70%: sell the token the pool is short of in value, which pulls the ratio back to the
    // middle; 30%: the other way, as noise.
    let sell_base = if noise.below(10) < 7 {
        !heavy_base
    } else {
        heavy_base
    };
    let bps = U256::from(1 + noise.below(max_bps.max(1)));
    let (token, amount) = if sell_base {
        (
            pool.base_token,
            reserve.baseReserve * bps / U256::from(10_000u64),
        )
    } else {
        (
            pool.quote_token,
            reserve.quoteReserve * bps / U256::from(10_000u64),
        )
    };
    if amount.is_zero() {
        return Ok(());
    }
    confirm(
        "transfer",
        TestERC20::new(token, provider).transfer(pool.address, amount),
    )
    .await?;
    let receipt = if sell_base {
        confirm("sellBase", c.sellBase(trader)).await?
    } else {
        confirm("sellQuote", c.sellQuote(trader)).await?
    };
    tracing::info!(
        pool = %pool.address,
        pool_type = %pool.pool_type,
        side = if sell_base { "sell base" } else { "sell quote" },
        %amount,
        block = receipt.block_number.unwrap_or_default(),
        "swap"
    );
    Ok(())
}
