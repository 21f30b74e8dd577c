//! The write-tool fixture shared by the write tests: the common devnet plus routers, a
//! keystore of the deployer's key, both gates as asked, and helpers that read the chain.

use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use pmm_hub::HubConfig;
use pmm_store::PgStore;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::common::{self, AGENT};

pub const PASSWORD: &str = "test-keystore-password-7f3a91";

pub struct Writes {
    pub fx: common::Fixture,
    pub signer: Address,
    pub key_hex: String,
    pub routers: pmm_testkit::devnet::Routers,
}

/// The common fixture plus routers, a keystore of the deployer's key, no cooldown, and both
/// gates as given.
pub async fn writes(allow: bool, armed: bool) -> anyhow::Result<Writes> {
    let mut fx = common::fixture().await?;
    let routers = fx.devnet.deploy_routers().await?;
    let mut limits = common::limits();
    limits["cooldown_s"] = json!(0);
    let mut cfg = common::write_config(
        &fx.dir,
        &fx.devnet,
        fx.dsp,
        fx.base,
        fx.quote,
        fx.feed,
        limits,
        fx.db.url(),
        &fx.redis,
    )?;
    let devnet_file = common::write_devnet_file(&fx.dir, &fx.devnet, Some(routers)).await?;
    let key_hex = fx.devnet.accounts()[0].private_key.clone();
    let keystore = fx.dir.join("keystore.json");
    let pass = fx.dir.join("keystore.pass");
    std::fs::write(&pass, PASSWORD)?;
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let signer = pmm_hub::signer::write_keystore(
        &keystore,
        Some(Zeroizing::new(key_hex.clone())),
        &Zeroizing::new(PASSWORD.to_owned()),
    )?;
    assert_eq!(signer, fx.devnet.deployer());
    cfg.executor = None;
    cfg.devnet_file = Some(devnet_file);
    cfg.keystore_path = Some(keystore);
    cfg.keystore_password_file = Some(pass);
    cfg.allow_write = allow;
    cfg.execution_armed = armed;
    cfg.receipt_timeout_s = 30;
    cfg.validate()?;
    fx.cfg = cfg;
    Ok(Writes {
        fx,
        signer,
        key_hex,
        routers,
    })
}

pub async fn nonce(w: &Writes) -> anyhow::Result<u64> {
    Ok(w.fx
        .devnet
        .provider()
        .get_transaction_count(w.signer)
        .pending()
        .await?)
}

pub async fn lp(w: &Writes, pool: Address) -> anyhow::Result<U256> {
    w.fx.devnet
        .balance_of(pool, w.signer)
        .await
        .map_err(Into::into)
}

pub async fn reserves(w: &Writes) -> anyhow::Result<(U256, U256)> {
    let c = pmm_testkit::contracts::DSP::new(w.fx.dsp, w.fx.devnet.provider());
    let r = c.getVaultReserve().call().await?;
    Ok((r.baseReserve, r.quoteReserve))
}

pub fn amount(v: &Value) -> U256 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

/// A deposit in the DSP's ratio (10 WETH : 20 000 USDC), scaled down.
pub fn add_params(pool: Address, key: &str) -> Value {
    json!({
        "pool": pool.to_string(),
        "base_amount": "100000000000000000",
        "quote_amount": "200000000",
        "min_shares": "99500000000000000",
        "idempotency_key": key,
    })
}

pub async fn anvil(w: &Writes, method: &'static str, params: Value) -> anyhow::Result<Value> {
    Ok(w.fx
        .devnet
        .provider()
        .raw_request::<_, Value>(method.into(), params)
        .await?)
}

pub async fn tool_calls(w: &Writes) -> anyhow::Result<Vec<pmm_store::ToolCall>> {
    let pg = PgStore::connect(w.fx.db.url(), 1)?;
    Ok(pg.recent_tool_calls(None, 1000).await?)
}

/// The hub binary with `cfg` as its config file; stdout and stderr to `log`.
pub fn spawn_hub(
    cfg: &HubConfig,
    dir: &std::path::Path,
    log: &std::path::Path,
) -> anyhow::Result<ChildGuard> {
    let path = dir.join("hub.json");
    std::fs::write(&path, serde_json::to_string(cfg)?)?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()?;
    Ok(ChildGuard(child))
}

/// Waits up to 30 s for the hub [`spawn_hub`] started on `port` to answer `/health`.
pub async fn wait_up(client: &reqwest::Client, port: u16) -> anyhow::Result<()> {
    common::poll(Duration::from_secs(30), || async {
        Ok(client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()
            .map(|_| ()))
    })
    .await
}

pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Calls `tool` on the hub at `port` over `/mcp/call`. One `client` per test: building one per
/// call (its TLS roots, in a debug build) kept the test's one thread so busy that a connection
/// opened early went unwritten past the hub's header-read timeout, which closed it.
pub async fn http(
    client: &reqwest::Client,
    port: u16,
    tool: &str,
    params: Value,
) -> anyhow::Result<(u16, Value)> {
    let resp = client
        .post(format!("http://127.0.0.1:{port}/mcp/call"))
        .bearer_auth(AGENT)
        .json(&json!({"tool": tool, "params": params}))
        .send()
        .await?;
    Ok((
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    ))
}
