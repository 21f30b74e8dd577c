//! Shared fixture: a devnet with DVM, DSP and DPP pools, an allowlisted DSP with a Chainlink
//! feed, a fresh Postgres database and Redis namespace, and a hub serving on a free port.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, I256};
use pmm_hub::config::{AuthMode, ChainPreset};
use pmm_hub::{HubConfig, RunningHub};
use pmm_store::{MigrationSet, Migrator};
use pmm_testkit::db::{TestDb, TestRedis};
use pmm_testkit::devnet::{Devnet, Routers, WethUsdcPools};
use serde_json::{Value, json};

pub const AGENT: &str = "agent-token-for-tests-0001";
pub const OPERATOR: &str = "operator-token-for-tests-0001";

pub struct Fixture {
    pub devnet: Devnet,
    pub db: TestDb,
    pub redis: TestRedis,
    pub dir: PathBuf,
    pub base: Address,
    pub quote: Address,
    pub dvm: Address,
    pub dsp: Address,
    pub dpp: Address,
    pub feed: Address,
    pub cfg: HubConfig,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The allowlisted DSP's limits; tests tighten one at a time.
pub fn limits() -> Value {
    json!({
        "max_slippage_bps": 100,
        "max_notional_per_tx": "100000000000",
        "max_notional_per_day": "500000000000",
        "cooldown_s": 60,
        "oracle_deviation_bps": 200,
        "oracle_max_age_s": 3600,
        "gas_cap_gwei": 100
    })
}

pub async fn fixture() -> anyhow::Result<Fixture> {
    let devnet = Devnet::start()?;
    let WethUsdcPools {
        base,
        quote,
        dvm,
        dsp,
        dpp,
    } = devnet.deploy_weth_usdc_pools().await?;
    // 2000 USDC per WETH with 8 decimals: equals the DSP's mid price (R = ONE, i = 2000e6).
    let feed = devnet
        .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
        .await?;

    let db = TestDb::create().await?;
    let mut m = Migrator::connect(db.url()).await?;
    m.migrate(&MigrationSet::embedded()?, Duration::from_secs(10))
        .await?;
    let redis = TestRedis::new();
    bootstrap(db.url(), redis.url(), redis.namespace()).await?;

    let dir = std::env::temp_dir().join(format!("pmm-hub-test-{}", uuid_like()));
    std::fs::create_dir_all(&dir)?;
    write_devnet_file(&dir, &devnet, None).await?;
    let cfg = write_config(
        &dir,
        &devnet,
        dsp,
        base,
        quote,
        feed,
        limits(),
        db.url(),
        &redis,
    )?;
    Ok(Fixture {
        devnet,
        db,
        redis,
        dir,
        base,
        quote,
        dvm,
        dsp,
        dpp,
        feed,
        cfg,
    })
}

/// Writes `dir/devnet.json` as `just devnet` does for the hub: the RPC, every template (so a
/// pool a test deploys later is a clone of a known one) and, when given, the routers.
pub async fn write_devnet_file(
    dir: &std::path::Path,
    devnet: &Devnet,
    routers: Option<Routers>,
) -> anyhow::Result<PathBuf> {
    let mut file = json!({"rpc_url": devnet.rpc_url(), "templates": devnet.all_templates().await?});
    if let Some(r) = routers {
        file["routers"] = serde_json::to_value(r)?;
    }
    let path = dir.join("devnet.json");
    std::fs::write(&path, file.to_string())?;
    Ok(path)
}

/// What `pmm-state bootstrap` does: rebuild Redis' policy state from Postgres, then write
/// the marker without which the hub denies every write.
pub async fn bootstrap(db_url: &str, redis_url: &str, namespace: &str) -> anyhow::Result<()> {
    let pg = pmm_store::PgStore::connect(db_url, 1)?;
    let redis = pmm_store::RedisStore::connect(redis_url, namespace)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    pmm_store::policy_state::rebuild(&pg, &redis, now).await?;
    Ok(())
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), Instant::now())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub fn write_config(
    dir: &std::path::Path,
    devnet: &Devnet,
    dsp: Address,
    base: Address,
    quote: Address,
    feed: Address,
    limits: Value,
    db_url: &str,
    redis: &TestRedis,
) -> anyhow::Result<HubConfig> {
    let allowlist = json!({
        "chain": "devnet",
        "chain_id": 31337,
        "pools": [{
            "address": dsp.to_string(),
            "base_token": base.to_string(),
            "quote_token": quote.to_string(),
            "profile": "dsp",
            "pool_type": "dsp",
            "oracle": {"kind": "chainlink", "address": feed.to_string(), "max_age_s": 3600},
            "limits": limits
        }]
    });
    let allowlist_path = dir.join("allowlist.json");
    std::fs::write(&allowlist_path, serde_json::to_string_pretty(&allowlist)?)?;
    let cfg: HubConfig = serde_json::from_value(json!({
        "listen": "127.0.0.1:0",
        "chain": "devnet",
        "rpc_url": devnet.rpc_url(),
        "devnet_file": dir.join("devnet.json"),
        "allowlist_path": allowlist_path,
        "profiles_path": repo_root().join("config/pool_profiles.json"),
        "redis_url": redis.url(),
        "redis_namespace": redis.namespace(),
        "database_url": db_url,
        "agent_token": AGENT,
        "operator_token": OPERATOR,
        "executor": devnet.deployer().to_string(),
        "monitor_poll_ms": 100,
        // The tests change the chain from outside the hub and read right after: every call
        // asks the node for its head (policy.rs tests the monitor's head on its own).
        "tools_use_monitor_head": false,
    }))?;
    assert_eq!(cfg.auth, AuthMode::Tokens);
    assert_eq!(cfg.chain, ChainPreset::Devnet);
    Ok(cfg)
}

/// One Prometheus recorder per test process (the recorder is global).
fn metrics() -> std::sync::Arc<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<
        std::sync::Arc<metrics_exporter_prometheus::PrometheusHandle>,
    > = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            std::sync::Arc::new(handle)
        })
        .clone()
}

pub async fn start(cfg: &HubConfig) -> anyhow::Result<RunningHub> {
    pmm_hub::serve(cfg, Some(metrics())).await
}

/// `POST /mcp/call` with a token; returns (status, body).
pub async fn call(
    hub: &RunningHub,
    token: Option<&str>,
    tool: &str,
    params: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/mcp/call", hub.addr))
        .json(&json!({"tool": tool, "params": params}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// `call` with a token that must succeed: asserts a 200 and returns the body.
pub async fn call_ok(
    hub: &RunningHub,
    token: &str,
    tool: &str,
    params: Value,
) -> anyhow::Result<Value> {
    let (status, body) = call(hub, Some(token), tool, params).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

/// Polls `f` until it returns `Some`, failing after `deadline`.
pub async fn poll<T, F, Fut>(deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(
            Instant::now() < end,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
