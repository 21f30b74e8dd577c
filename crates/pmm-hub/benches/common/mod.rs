//! What the hub benchmarks share: latency statistics and a devnet with one funded DSP behind
//! a hub config.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use pmm_testkit::devnet::{Devnet, ONE, PoolParams};
use serde_json::{Value, json};

/// The agent token every benchmark's hub accepts.
pub const TOKEN: &str = "bench-agent-token-000000001";

/// p50, p99 and throughput of one measured series.
pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
    pub per_s: f64,
}

/// `samples` (one per call) taken over `total`.
pub fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        per_s: samples.len() as f64 / total.as_secs_f64(),
    }
}

/// One line: `s` and its ratios against `base` (named `base_name`).
pub fn show(name: &str, s: &Stats, base: &Stats, base_name: &str) {
    println!(
        "{name:<34} p50 {:>8.3} ms  p99 {:>8.3} ms  {:>8.1} req/s  | p50 x{:.2}  p99 x{:.2}  throughput x{:.2} vs {base_name}",
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.per_s,
        s.p50.as_secs_f64() / base.p50.as_secs_f64(),
        s.p99.as_secs_f64() / base.p99.as_secs_f64(),
        s.per_s / base.per_s,
    );
}

/// WETH (18 decimals) and USDC (6) on `devnet`, 10^30 of each minted to its deployer.
pub async fn tokens(devnet: &Devnet) -> anyhow::Result<(Address, Address)> {
    let base = devnet.deploy_token("WETH", 18).await?;
    let quote = devnet.deploy_token("USDC", 6).await?;
    let me = devnet.deployer();
    devnet.mint(base, me, U256::from(10u128.pow(30))).await?;
    devnet.mint(quote, me, U256::from(10u128.pow(30))).await?;
    Ok((base, quote))
}

/// A base/quote DSP at 2,000 quote per base (k 0.1, 0.1% LP fee) holding 10 base and 20,000
/// quote of the deployer's.
pub async fn funded_dsp(devnet: &Devnet, base: Address, quote: Address) -> anyhow::Result<Address> {
    let dsp = devnet
        .deploy_dsp(PoolParams {
            base,
            quote,
            lp_fee_rate: U256::from(ONE / 1000),
            mt_fee_rate: U256::ZERO,
            i: U256::from(2_000_000_000u64),
            k: U256::from(ONE / 10),
        })
        .await?;
    devnet
        .buy_shares(
            devnet.deployer(),
            dsp,
            U256::from(10 * ONE),
            U256::from(20_000_000_000u64),
        )
        .await?;
    Ok(dsp)
}

/// An anvil devnet with a WETH/USDC DSP holding liquidity, and a scratch directory.
pub struct BenchPool {
    pub devnet: Devnet,
    pub base: Address,
    pub quote: Address,
    pub dsp: Address,
    pub dir: PathBuf,
}

impl Drop for BenchPool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl BenchPool {
    /// Starts the devnet and deploys and funds the pool; `name` names the scratch directory.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let devnet = Devnet::start()?;
        let (base, quote) = tokens(&devnet).await?;
        let dsp = funded_dsp(&devnet, base, quote).await?;
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            devnet,
            base,
            quote,
            dsp,
            dir,
        })
    }

    /// A hub config over this devnet with an empty allowlist, [`TOKEN`] as the agent token,
    /// the per-caller rate limit out of the way (the benchmarks measure the hub, not it), and
    /// `extra`'s keys on top.
    pub async fn hub_config(&self, extra: Value) -> anyhow::Result<pmm_hub::HubConfig> {
        let allowlist = self.dir.join("allowlist.json");
        std::fs::write(
            &allowlist,
            r#"{"chain": "devnet", "chain_id": 31337, "pools": []}"#,
        )?;
        let devnet_file = self.dir.join("devnet.json");
        std::fs::write(
            &devnet_file,
            json!({"rpc_url": self.devnet.rpc_url(), "templates": self.devnet.all_templates().await?})
                .to_string(),
        )?;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut cfg = json!({
            "listen": "127.0.0.1:0",
            "chain": "devnet",
            "rpc_url": self.devnet.rpc_url(),
            "devnet_file": devnet_file,
            "allowlist_path": allowlist,
            "profiles_path": root.join("config/pool_profiles.json"),
            "agent_token": TOKEN,
            "rate_limit_per_s": 1_000_000,
            "rate_limit_burst": 1_000_000,
        });
        if let (Some(cfg), Value::Object(extra)) = (cfg.as_object_mut(), extra) {
            cfg.extend(extra);
        }
        Ok(serde_json::from_value(cfg)?)
    }
}
