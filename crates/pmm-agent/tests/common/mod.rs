//! The stack the agent tests run against: an anvil devnet with WETH/USDC fixture pools and
//! their feeds, a fresh Postgres database and Redis namespace, the real hub (in process), the
//! real inference proxy (in process) over a real `llama-server` (a child process that a test
//! may kill and restart on the same port), and agent workers as child processes of the real
//! binary, killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, I256};
use pmm_hub::{HubConfig, RunningHub};
use pmm_store::{Decision, MigrationSet, Migrator, PgStore};
use pmm_testkit::db::{TestDb, TestRedis};
use pmm_testkit::devnet::{Devnet, WethUsdcPools};
use serde_json::{Value, json};

pub const AGENT_TOKEN: &str = "agent-token-for-agent-tests-01";
pub const PROXY_TOKEN: &str = "proxy-token-for-agent-tests-01";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "pmm-agent-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Devnet, database, Redis and hub, with `sets` x 3 allowlisted pools (DVM, DSP, DPP each).
pub struct Stack {
    pub devnet: Devnet,
    pub db: TestDb,
    pub redis: TestRedis,
    pub dir: TempDir,
    pub pools: Vec<Address>,
    pub allowlist: PathBuf,
    pub hub: RunningHub,
    pub store: PgStore,
}

/// The pools' limits. `max_donation_bps` stays at its default (10 bps): the baseline deposits
/// the balanced amounts the hub quotes, which donate nothing.
fn limits() -> Value {
    json!({
        "max_slippage_bps": 100,
        "max_notional_per_tx": "100000000000",
        "max_notional_per_day": "500000000000",
        "cooldown_s": 60,
        "oracle_deviation_bps": 500,
        "oracle_max_age_s": 3600,
        "gas_cap_gwei": 100
    })
}

const KEYSTORE_PASSWORD: &str = "agent-test-keystore-password-5c2e";

impl Stack {
    /// A read-only hub: no signer, writes refused.
    pub async fn start(sets: usize) -> anyhow::Result<Self> {
        Self::start_with(sets, false).await
    }

    /// With `writes`, the hub signs with a keystore of the deployer's key, both write gates are
    /// open, the routers are deployed and the policy state is bootstrapped (what `pmm-state
    /// bootstrap` does), so an allowed write is sent.
    pub async fn start_with(sets: usize, writes: bool) -> anyhow::Result<Self> {
        let devnet = Devnet::start()?;
        let mut entries = Vec::new();
        let mut pools = Vec::new();
        for _ in 0..sets {
            let WethUsdcPools {
                base,
                quote,
                dvm,
                dsp,
                dpp,
            } = devnet.deploy_weth_usdc_pools().await?;
            let feed = devnet
                .deploy_feed(8, I256::try_from(200_000_000_000_i64)?)
                .await?;
            for (pool, kind) in [(dvm, "dvm"), (dsp, "dsp"), (dpp, "dpp")] {
                pools.push(pool);
                entries.push(json!({
                    "address": pool.to_string(),
                    "base_token": base.to_string(),
                    "quote_token": quote.to_string(),
                    "profile": kind,
                    "pool_type": kind,
                    "oracle": {"kind": "chainlink", "address": feed.to_string(), "max_age_s": 3600},
                    "limits": limits(),
                }));
            }
        }
        let dir = TempDir::new("stack");
        let allowlist = dir.0.join("allowlist.json");
        std::fs::write(
            &allowlist,
            serde_json::to_string_pretty(
                &json!({"chain": "devnet", "chain_id": 31337, "pools": entries}),
            )?,
        )?;
        let db = TestDb::create().await?;
        Migrator::connect(db.url())
            .await?
            .migrate(&MigrationSet::embedded()?, Duration::from_secs(10))
            .await?;
        let redis = TestRedis::new();
        // The hub prices a V2 pool only as a clone of a template its devnet file lists.
        let devnet_file = dir.0.join("devnet.json");
        let mut file =
            json!({"rpc_url": devnet.rpc_url(), "templates": devnet.all_templates().await?});
        let mut cfg: HubConfig = serde_json::from_value(json!({
            "listen": "127.0.0.1:0",
            "chain": "devnet",
            "rpc_url": devnet.rpc_url(),
            "devnet_file": devnet_file,
            "allowlist_path": allowlist,
            "profiles_path": repo_root().join("config/pool_profiles.json"),
            "redis_url": redis.url(),
            "redis_namespace": redis.namespace(),
            "database_url": db.url(),
            "agent_token": AGENT_TOKEN,
            "operator_token": "operator-token-for-agent-tests-01",
            "executor": devnet.deployer().to_string(),
            // The tests change the chain from outside the hub and read right after.
            "tools_use_monitor_head": false,
        }))?;
        if writes {
            file["routers"] = serde_json::to_value(devnet.deploy_routers().await?)?;
            let keystore = dir.0.join("keystore.json");
            let pass = dir.0.join("keystore.pass");
            std::fs::write(&pass, KEYSTORE_PASSWORD)?;
            std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            let signer = pmm_hub::signer::write_keystore(
                &keystore,
                Some(zeroize::Zeroizing::new(
                    devnet.accounts()[0].private_key.clone(),
                )),
                &zeroize::Zeroizing::new(KEYSTORE_PASSWORD.to_owned()),
            )?;
            anyhow::ensure!(signer == devnet.deployer(), "keystore signer");
            let pg = PgStore::connect(db.url(), 1)?;
            let rs = pmm_store::RedisStore::connect(redis.url(), redis.namespace())?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            pmm_store::policy_state::rebuild(&pg, &rs, now).await?;
            cfg.executor = None;
            cfg.keystore_path = Some(keystore);
            cfg.keystore_password_file = Some(pass);
            cfg.allow_write = true;
            cfg.execution_armed = true;
            cfg.receipt_timeout_s = 30;
            cfg.validate()?;
        }
        std::fs::write(&devnet_file, file.to_string())?;
        let hub = pmm_hub::serve(&cfg, None).await?;
        let store = PgStore::connect(db.url(), 2)?;
        Ok(Self {
            devnet,
            db,
            redis,
            dir,
            pools,
            allowlist,
            hub,
            store,
        })
    }

    pub fn hub_url(&self) -> String {
        format!("http://{}", self.hub.addr)
    }

    /// Every decision row of the test's database.
    pub async fn decisions(&self) -> anyhow::Result<Vec<Decision>> {
        Ok(self
            .store
            .decisions_in_ticks(31337, 0, i64::MAX as u64)
            .await?)
    }
}

/// `llama-server` binary and model, as `scripts/llama/install.sh` lays them out.
pub fn llama_paths() -> (PathBuf, PathBuf) {
    let root = std::env::var_os("PMM_LLAMA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pmm-llama"));
    let server = std::env::var_os("PMM_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bin/llama-server"));
    let model = std::env::var_os("PMM_LLAMA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        server.is_file() && model.is_file(),
        "llama-server or the model is missing under {}: run scripts/llama/install.sh",
        root.display()
    );
    (server, model)
}

/// A real `llama-server` on a fixed port, killed on drop.
pub struct Llama {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Llama {
    pub async fn start(port: u16, log_dir: &Path) -> Self {
        let mut me = Self {
            port,
            child: None,
            log: log_dir.join(format!("llama-{port}.log")),
        };
        me.restart().await;
        me
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port and waits for `/health` 200.
    pub async fn restart(&mut self) {
        self.kill();
        let (server, model) = llama_paths();
        let log = std::fs::File::create(&self.log).expect("llama log");
        let child = Command::new(server)
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            // A slot per pool of the test's three, so a tick's requests decode together in
            // one batch instead of queueing behind each other; 1024 tokens of context each.
            .args([
                "-c",
                "3072",
                "-t",
                "1",
                "-np",
                "3",
                "-a",
                "smollm2",
                "--no-webui",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn llama-server");
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client
                .get(format!("{}/health", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server not healthy in 60 s: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The inference proxy in process, with a bearer token, over one llama.cpp upstream.
pub struct Proxy {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let cfg: pmm_inference::Config = serde_json::from_value(json!({
            "upstreams": [{"name": "llama", "url": upstream, "kind": "llamacpp"}],
            "models": [{"name": "smollm2", "upstreams": ["llama"]}],
            "auth": {"tokens": [PROXY_TOKEN]},
            "breaker": {"failure_threshold": 3, "open_ms": 500},
            "health_interval_ms": 200,
            // A loaded machine decodes slowly: the proxy waits longer than its defaults before
            // answering 504/429, and less than the agent's own deadline (50 s), so the agent
            // records the proxy's reason rather than its own timeout.
            "limits": {"first_byte_timeout_ms": 45_000, "queue_timeout_ms": 45_000},
        }))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = pmm_inference::serve(listener, &cfg, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self {
            url,
            stop: Some(tx),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An agent worker process.
pub struct Agent {
    child: Option<Child>,
    pub health: String,
    pub log: PathBuf,
}

/// What an agent process is started with.
pub struct AgentSpec<'a> {
    pub worker: &'a str,
    pub inference_url: String,
    pub interval_s: u64,
    pub once: bool,
    /// Further `PMM_*` settings (mode, proposer, baseline band, ...), applied last.
    pub env: Vec<(&'a str, String)>,
}

impl Agent {
    pub fn spawn(stack: &Stack, spec: AgentSpec<'_>) -> Self {
        let port = free_port();
        let log = stack.dir.0.join(format!("agent-{}.log", spec.worker));
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pmm-agent"));
        cmd.env("PMM_HEALTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("PMM_HUB_URL", stack.hub_url())
            .env("PMM_HUB_TOKEN", AGENT_TOKEN)
            .env("PMM_INFERENCE_URL", &spec.inference_url)
            .env("PMM_INFERENCE_TOKEN", PROXY_TOKEN)
            .env("PMM_INFERENCE_TIMEOUT_MS", "50000")
            .env("PMM_MAX_TOKENS", "96")
            .env("PMM_TICK_INTERVAL_S", spec.interval_s.to_string())
            .env("PMM_ALLOWLIST_PATH", &stack.allowlist)
            .env(
                "PMM_PROFILES_PATH",
                repo_root().join("config/pool_profiles.json"),
            )
            .env("PMM_DATABASE_URL", stack.db.url())
            .env("PMM_WORKER_ID", spec.worker)
            .env("PMM_MODE", "observe")
            .env("RUST_LOG", "info")
            .arg("--print-decisions")
            .stdout(out)
            .stderr(err);
        if spec.once {
            cmd.arg("--once");
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn pmm-agent");
        Self {
            child: Some(child),
            health: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no cleanup of any kind.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (at most `within`) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `within`) for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.health))
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns `Some`, failing after `deadline` with `what`.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < end, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sum of a Prometheus sample over label sets whose series starts with `name`.
pub fn metric(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let ok = (series == name || series.starts_with(&format!("{name}{{")))
                && label.is_none_or(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
