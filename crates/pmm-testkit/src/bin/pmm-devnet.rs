//! `pmm-devnet`: a local anvil chain with one fixture pool of each type, for manual testing of
//! the hub and agent against something that answers like DODO pools.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, I256, U256};
use anyhow::Context;
use clap::Parser;
use pmm_core::config::{Allowlist, PoolProfiles};
use pmm_core::math::Generation;
use pmm_testkit::contracts::{TestERC20, V1Pool};
use pmm_testkit::devnet::{ONE, PoolParams, confirm};
use pmm_testkit::{
    DeployedTemplate, DevAccount, Devnet, DevnetOptions, PoolType, Routers, Template,
};
use serde::Serialize;

/// Start a local anvil devnet with DODO-like fixture pools and keep it running.
///
/// Deploys tokens (BASE 18 decimals, STB 18 decimals, USDC 6 decimals), Chainlink-style USD
/// feeds, and one funded pool of each fixture type: DVM, DSP, GSP, DPP, DPP Oracle and a V1-like
/// pool. Writes the connection details, the ten funded dev accounts (anvil's public test keys)
/// and the pools to the JSON file given by --out, then runs until SIGINT or SIGTERM, stops
/// anvil and removes the file.
#[derive(Debug, Parser)]
#[command(name = "pmm-devnet", version)]
struct Args {
    /// Where to write the devnet description (rpc_url, chain_id, accounts, pools).
    #[arg(long, default_value = "var/devnet.json")]
    out: PathBuf,
    /// Where to write an allowlist holding every devnet pool with its feed and demo limits, in
    /// the hub's `config/allowlist.json` format (checked against config/pool_profiles.json).
    #[arg(long, default_value = "var/allowlist.json")]
    allowlist_out: PathBuf,
    /// Pool profiles the generated allowlist is validated against.
    #[arg(long, default_value = "config/pool_profiles.json")]
    profiles: PathBuf,
    /// Port for anvil on 127.0.0.1; 0 picks a free port (use 8545 for a fixed one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// anvil binary to run (default: $PMM_ANVIL, then PATH, then the repo's npm install).
    #[arg(long)]
    anvil: Option<PathBuf>,
    /// Where to write the hub signer's encrypted JSON keystore (a funded dev account holding
    /// both tokens of every pool); its random password goes to the same path with `.pass`.
    #[arg(long, default_value = "var/keystore.json")]
    keystore_out: PathBuf,
}

/// Dev account whose key `--keystore-out` encrypts: funded, holds every pool's tokens, and
/// trades nowhere else in the devnet.
const SIGNER_INDEX: usize = 5;

/// One pool in the JSON file.
#[derive(Debug, Serialize)]
struct PoolEntry {
    address: Address,
    pool_type: PoolType,
    /// Rules of the template the pool is a clone of (`None` for V1); the allowlist pins it.
    generation: Option<Generation>,
    base_token: Address,
    quote_token: Address,
    /// Chainlink-style feed pricing the base token in USD, for anchoring.
    oracle: Option<Address>,
    /// On-chain guide-price source the pool itself reads (DPP Oracle and V1 only).
    price_source: Option<Address>,
}

/// A token in the JSON file.
#[derive(Debug, Serialize)]
struct TokenEntry {
    address: Address,
    symbol: String,
    decimals: u8,
}

/// A feed in the JSON file.
#[derive(Debug, Serialize)]
struct FeedEntry {
    address: Address,
    description: String,
    decimals: u8,
    answer: String,
}

/// The file written to --out.
#[derive(Debug, Serialize)]
struct DevnetFile<'a> {
    rpc_url: &'a str,
    chain_id: u64,
    accounts: &'a [DevAccount],
    tokens: Vec<TokenEntry>,
    feeds: Vec<FeedEntry>,
    pools: Vec<PoolEntry>,
    /// Deposit routers (DODOApprove, DODOV2Proxy02, DODODspProxy look-alikes).
    routers: Routers,
    /// Address of the account in the keystore.
    signer: Address,
    /// The EIP-1167 templates every V2 pool here is a clone of: the hub's template table.
    templates: Vec<DeployedTemplate>,
}

fn units(amount: u64, decimals: u8) -> U256 {
    U256::from(amount) * U256::from(10u64).pow(U256::from(decimals))
}

/// Parts per million of 1e18.
fn ppm(rate: u64) -> U256 {
    U256::from(ONE / 1_000_000) * U256::from(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pmm_daemon::init_logging(false);
    let args = Args::parse();

    let devnet = Devnet::start_with(DevnetOptions {
        port: args.port,
        anvil: args.anvil.clone(),
        ..Default::default()
    })
    .context("starting anvil")?;
    tracing::info!(
        port = devnet.rpc_url().rsplit(':').next().unwrap_or(""),
        chain_id = devnet.chain_id(),
        "anvil up"
    );

    let file = deploy_all(&devnet).await.context("deploying fixtures")?;
    write_file(&args.out, &serde_json::to_string_pretty(&file)?)?;
    write_file(&args.allowlist_out, &allowlist_json(&file, &args.profiles)?)?;
    let pass_out = args.keystore_out.with_extension("pass");
    write_keystore(&devnet, &args.keystore_out, &pass_out)?;
    summarize(&file, &args.out);

    pmm_daemon::shutdown_signal().await;
    tracing::info!("stopping anvil");
    drop(devnet);
    for path in [
        &args.out,
        &args.allowlist_out,
        &args.keystore_out,
        &pass_out,
    ] {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove devnet file");
        }
    }
    Ok(())
}

async fn deploy_all(d: &Devnet) -> anyhow::Result<DevnetFile<'_>> {
    let me = d.deployer();
    let base = d.deploy_token("BASE", 18).await?;
    let stable = d.deploy_token("STB", 18).await?;
    let usdc = d.deploy_token("USDC", 6).await?;
    for account in d.accounts() {
        d.mint(base, account.address, units(1_000_000, 18)).await?;
        d.mint(stable, account.address, units(100_000_000, 18))
            .await?;
        d.mint(usdc, account.address, units(1_000_000_000, 6))
            .await?;
    }

    // 2000 USDC per BASE: i = 2000 * 1e6 (quote raw) / 1e18 (base raw) in 1e18 fixed point.
    let base_i = U256::from(2000u64) * U256::from(1_000_000u64);
    let stable_i = U256::from(1_000_000u64);
    let base_feed = d
        .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
        .await?;
    let stable_feed = d.deploy_feed(8, I256::try_from(100_000_000_i64)?).await?;
    let usdc_feed = d.deploy_feed(8, I256::try_from(100_000_000_i64)?).await?;
    let guide = d.deploy_price_oracle(base_i).await?;

    let volatile = PoolParams {
        base,
        quote: usdc,
        lp_fee_rate: ppm(3000),
        mt_fee_rate: ppm(1000),
        i: base_i,
        k: ppm(100_000),
    };
    let pegged = PoolParams {
        base: stable,
        quote: usdc,
        lp_fee_rate: ppm(100),
        mt_fee_rate: U256::ZERO,
        i: stable_i,
        k: ppm(500),
    };

    // A small K keeps the DVM's mid price (which is not i) within the demo's 2% oracle band.
    let dvm = d
        .deploy_dvm(PoolParams {
            k: ppm(1_000),
            ..volatile
        })
        .await?;
    d.buy_shares(me, dvm, units(100, 18), units(200_000, 6))
        .await?;
    let dsp = d.deploy_dsp(pegged).await?;
    d.buy_shares(me, dsp, units(1_000_000, 18), units(1_000_000, 6))
        .await?;
    let gsp = d.deploy_gsp(pegged).await?;
    d.buy_shares(me, gsp, units(500_000, 18), units(500_000, 6))
        .await?;
    // One pool of the 2021 generation per family; the DVM runs with TWAP on.
    let dvm2021 = d
        .deploy_shares_pool(
            Template::Dvm2021,
            &PoolParams {
                k: ppm(1_000),
                ..volatile
            },
            true,
        )
        .await?;
    d.buy_shares(me, dvm2021, units(100, 18), units(200_000, 6))
        .await?;
    let dsp2021 = d
        .deploy_shares_pool(Template::Dsp2021, &pegged, false)
        .await?;
    d.buy_shares(me, dsp2021, units(1_000_000, 18), units(1_000_000, 6))
        .await?;
    let dpp = d
        .deploy_dpp(PoolParams {
            k: ppm(500_000),
            ..volatile
        })
        .await?;
    d.dpp_deposit(dpp, units(50, 18), units(100_000, 6)).await?;
    let dppo = d.deploy_dpp_oracle(volatile, guide).await?;
    d.dpp_deposit(dppo, units(50, 18), units(100_000, 6))
        .await?;
    let v1 = d.deploy_v1(base, usdc, guide, ppm(100_000)).await?;
    let v1c = V1Pool::new(v1, d.provider());
    for (token, amount) in [(base, units(20, 18)), (usdc, units(40_000, 6))] {
        confirm(
            "approve V1",
            TestERC20::new(token, d.provider()).approve(v1, amount),
        )
        .await?;
    }
    confirm("V1.depositBase", v1c.depositBase(units(20, 18))).await?;
    confirm("V1.depositQuote", v1c.depositQuote(units(40_000, 6))).await?;

    let pool =
        |address, template: Option<Template>, p: &PoolParams, oracle, price_source| PoolEntry {
            address,
            pool_type: template.map_or(PoolType::V1, Template::pool_type),
            generation: template.map(Template::generation),
            base_token: p.base,
            quote_token: p.quote,
            oracle: Some(oracle),
            price_source,
        };
    let pools = vec![
        pool(dvm, Some(Template::Dvm), &volatile, base_feed, None),
        pool(dsp, Some(Template::Dsp), &pegged, stable_feed, None),
        pool(gsp, Some(Template::Gsp), &pegged, stable_feed, None),
        pool(dvm2021, Some(Template::Dvm2021), &volatile, base_feed, None),
        pool(dsp2021, Some(Template::Dsp2021), &pegged, stable_feed, None),
        pool(dpp, Some(Template::Dpp), &volatile, base_feed, None),
        pool(
            dppo,
            Some(Template::DppOracle),
            &volatile,
            base_feed,
            Some(guide),
        ),
        pool(v1, None, &volatile, base_feed, Some(guide)),
    ];
    let tokens = vec![
        TokenEntry {
            address: base,
            symbol: "BASE".into(),
            decimals: 18,
        },
        TokenEntry {
            address: stable,
            symbol: "STB".into(),
            decimals: 18,
        },
        TokenEntry {
            address: usdc,
            symbol: "USDC".into(),
            decimals: 6,
        },
    ];
    let feed = |address, description: &str, answer: &str| FeedEntry {
        address,
        description: description.into(),
        decimals: 8,
        answer: answer.into(),
    };
    let feeds = vec![
        feed(base_feed, "BASE / USD", "200000000000"),
        feed(stable_feed, "STB / USD", "100000000"),
        feed(usdc_feed, "USDC / USD", "100000000"),
    ];
    let routers = d.deploy_routers().await?;
    let templates = d.deployed_templates().await;
    Ok(DevnetFile {
        templates,
        routers,
        signer: d.account(SIGNER_INDEX)?,
        rpc_url: d.rpc_url(),
        chain_id: d.chain_id(),
        accounts: d.accounts(),
        tokens,
        feeds,
        pools,
    })
}

/// Encrypts the signer account's key into `out` with a fresh random password written to
/// `pass_out` (both readable by the owner only).
fn write_keystore(d: &Devnet, out: &Path, pass_out: &Path) -> anyhow::Result<()> {
    use alloy::signers::local::PrivateKeySigner;
    use rand08::Rng;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .context("--keystore-out needs a file name")?;
    let mut rng = rand08::thread_rng();
    let password: String = (0..32)
        .map(|_| char::from(rng.sample(rand08::distributions::Alphanumeric)))
        .collect();
    let account = &d.accounts()[SIGNER_INDEX];
    let key = alloy::hex::decode(account.private_key.trim_start_matches("0x"))
        .context("dev key is not hex")?;
    let _ = std::fs::remove_file(out);
    PrivateKeySigner::encrypt_keystore(dir, &mut rng, &key, password.as_bytes(), Some(name))
        .context("encrypting the keystore")?;
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let _ = std::fs::remove_file(pass_out);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(pass_out)
        .with_context(|| format!("writing {}", pass_out.display()))?;
    std::io::Write::write_all(&mut f, password.as_bytes())?;
    tracing::info!(address = %account.address, keystore = %out.display(), "signer keystore written");
    Ok(())
}

fn write_file(out: &Path, json: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, format!("{json}\n")).with_context(|| format!("writing {}", out.display()))
}

/// The allowlist a local hub needs for every devnet pool: each pool anchored to its
/// Chainlink-style feed, with limits sized for demo trades (notional in raw USDC units).
/// It is parsed back with pmm-core's validating loader, so a file the hub would refuse is
/// never written.
fn allowlist_json(file: &DevnetFile<'_>, profiles_path: &Path) -> anyhow::Result<String> {
    let pools: Vec<serde_json::Value> = file
        .pools
        .iter()
        .map(|p| {
            serde_json::json!({
                "address": p.address,
                "base_token": p.base_token,
                "quote_token": p.quote_token,
                "profile": p.pool_type.as_str(),
                "pool_type": p.pool_type,
                "generation": p.generation,
                "oracle": {"kind": "chainlink", "address": p.oracle, "max_age_s": 3600},
                "limits": {
                    "max_slippage_bps": 100,
                    "max_notional_per_tx": "100000000000",
                    "max_notional_per_day": "1000000000000",
                    "cooldown_s": 60,
                    "oracle_deviation_bps": 200,
                    "oracle_max_age_s": 3600,
                    "gas_cap_gwei": 100
                }
            })
        })
        .collect();
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "chain": "devnet",
        "chain_id": file.chain_id,
        "pools": pools,
    }))?;
    let profiles = std::fs::read_to_string(profiles_path)
        .with_context(|| format!("reading {}", profiles_path.display()))?;
    let profiles = PoolProfiles::from_json_str(&profiles)?;
    Allowlist::from_json_str(&json, &profiles).context("the generated allowlist is invalid")?;
    Ok(json)
}

fn summarize(file: &DevnetFile<'_>, out: &Path) {
    tracing::info!(chain_id = file.chain_id, accounts = file.accounts.len(), out = %out.display(), "devnet ready");
    for t in &file.tokens {
        tracing::info!(symbol = %t.symbol, decimals = t.decimals, address = %t.address, "token");
    }
    for p in &file.pools {
        tracing::info!(pool_type = ?p.pool_type, address = %p.address, base = %p.base_token, quote = %p.quote_token, "pool");
    }
    tracing::info!("running; press Ctrl-C (or send SIGTERM) to stop");
}
