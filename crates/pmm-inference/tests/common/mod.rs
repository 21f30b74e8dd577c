//! Test harness shared by the integration tests and the benchmark: a real `llama-server`
//! (killed on Drop), the proxy on an ephemeral port, fake upstreams and SSE reading helpers.
// Each test target uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use pmm_inference::sse::SseDecoder;
use pmm_inference::{Config, KindSetting, ModelConfig, UpstreamConfig};
use serde_json::Value;
use tokio::time::Instant;

/// `llama-server` binary and GGUF model: `PMM_LLAMA_SERVER` / `PMM_LLAMA_MODEL`, or the
/// locations `scripts/llama/install.sh` installs to (`PMM_LLAMA_DIR`, default
/// /var/tmp/pmm-llama). Panics (fails the test) when missing.
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
        server.is_file(),
        "llama-server not found at {} (set PMM_LLAMA_SERVER): run scripts/llama/install.sh",
        server.display()
    );
    assert!(
        model.is_file(),
        "GGUF model not found at {} (set PMM_LLAMA_MODEL): run scripts/llama/install.sh",
        model.display()
    );
    (server, model)
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A running `llama-server`, killed when dropped.
pub struct LlamaServer {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    port: u16,
    slots: u32,
    tools: bool,
    log: PathBuf,
}

impl LlamaServer {
    /// Starts `llama-server` with `slots` parallel slots and waits for `/health` 200.
    pub async fn start(slots: u32) -> Self {
        Self::start_with(slots, false).await
    }

    /// Like [`LlamaServer::start`]; `tools` serves tool calls: Jinja templates on, with
    /// tests/fixtures/chatml-tools.jinja (SmolLM2's own template renders no tools). Without it
    /// Jinja is off, as llama-server runs with `--no-jinja`.
    pub async fn start_with(slots: u32, tools: bool) -> Self {
        let port = free_port();
        let mut me = Self {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            port,
            slots,
            tools,
            log: std::env::temp_dir().join(format!("pmm-llama-{port}.log")),
        };
        me.spawn();
        me.wait_healthy(Duration::from_secs(60)).await;
        me
    }

    /// Starts the process (again, on the same port) without waiting for it.
    pub fn spawn(&mut self) {
        let (server, model) = llama_paths();
        let log_file = std::fs::File::create(&self.log).expect("create llama log");
        let ctx = 2048 * self.slots;
        let mut cmd = Command::new(&server);
        cmd.arg("-m")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "-c",
                &ctx.to_string(),
                "-t",
                "1",
                "-np",
                &self.slots.to_string(),
            ])
            .args(["-a", "smollm2", "--metrics", "--no-webui"]);
        // Explicit either way: newer builds turn Jinja templates on by default.
        if self.tools {
            cmd.arg("--jinja").arg("--chat-template-file").arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/chatml-tools.jinja"
            ));
        } else {
            cmd.arg("--no-jinja");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; run scripts/llama/install.sh",
                    server.display()
                )
            });
        self.child = Some(child);
    }

    /// Polls `/health` until 200.
    pub async fn wait_healthy(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "llama-server exited with {status} while loading:\n{}",
                    self.log_tail()
                );
            }
            let health = client
                .get(format!("{}/health", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&health, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server not healthy within {within:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills the server now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether any slot is processing (from `/slots`).
    pub async fn any_slot_busy(&self, client: &reqwest::Client) -> bool {
        let slots: Value = client
            .get(format!("{}/slots", self.base))
            .send()
            .await
            .expect("GET /slots")
            .json()
            .await
            .expect("/slots JSON");
        slots
            .as_array()
            .expect("/slots is an array")
            .iter()
            .any(|s| s["is_processing"].as_bool().unwrap_or(false))
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

static SHARED: tokio::sync::Mutex<Weak<LlamaServer>> = tokio::sync::Mutex::const_new(Weak::new());

/// One `llama-server` shared by the tests of a binary that overlap in time; it is killed when
/// the last test holding it ends.
pub async fn shared_llama() -> Arc<LlamaServer> {
    let mut slot = SHARED.lock().await;
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(LlamaServer::start(2).await);
    *slot = Arc::downgrade(&s);
    s
}

/// The model id the test configs serve (llama-server runs with alias `smollm2`).
pub const MODEL: &str = "smollm2";

/// Upstream config entry.
pub fn upstream(name: &str, url: &str, kind: KindSetting) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        url: url.into(),
        kind,
    }
}

/// Model config entry.
pub fn model(name: &str, upstreams: &[&str]) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        aliases: Vec::new(),
        upstreams: upstreams.iter().map(|u| (*u).to_owned()).collect(),
    }
}

/// Local config (no auth) with a fast health poll and the given models.
pub fn config_models(models: Vec<ModelConfig>, upstreams: Vec<UpstreamConfig>) -> Config {
    let mut c = Config::local(models, upstreams);
    c.health_interval_ms = 100;
    c
}

/// Local config serving [`MODEL`] from `upstreams`, tried in the order given.
pub fn config(upstreams: Vec<UpstreamConfig>) -> Config {
    let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
    let models = vec![model(MODEL, &names)];
    config_models(models, upstreams)
}

/// Local config with the single upstream `name` at `url` serving [`MODEL`].
pub fn single_upstream(name: &str, url: &str, kind: KindSetting) -> Config {
    config(vec![upstream(name, url, kind)])
}

/// The proxy served on an ephemeral port; shut down when dropped.
pub struct TestProxy {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    /// Starts the proxy and waits until its `/health` is 200.
    pub async fn start(cfg: Config) -> Self {
        let p = Self::start_unready(cfg).await;
        p.wait_ready().await;
        p
    }

    /// Starts the proxy without waiting for readiness.
    pub async fn start_unready(cfg: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pmm_inference::serve(listener, &cfg, async {
                let _ = rx.await;
            })
            .await
            .expect("proxy serve");
        });
        Self {
            base: format!("http://{addr}"),
            shutdown: Some(tx),
            task,
        }
    }

    /// Polls `/health` until 200.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "proxy never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>/v1/chat/completions`.
    pub fn chat_url(&self) -> String {
        format!("{}/v1/chat/completions", self.base)
    }

    /// POSTs `body` to `/v1/chat/completions` (`model` defaults to [`MODEL`]).
    pub async fn chat(&self, client: &reqwest::Client, body: &Value) -> reqwest::Response {
        post(client, self.chat_url(), &with_model(body)).await
    }

    /// POSTs `body` to `/v1/completions` (`model` defaults to [`MODEL`]).
    pub async fn complete(&self, client: &reqwest::Client, body: &Value) -> reqwest::Response {
        post(
            client,
            format!("{}/v1/completions", self.base),
            &with_model(body),
        )
        .await
    }

    /// `/metrics` text.
    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// `body` with `model` set to [`MODEL`] unless it names one.
pub fn with_model(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(obj) = b.as_object_mut() {
        obj.entry("model").or_insert_with(|| Value::from(MODEL));
    }
    b
}

/// Value of a Prometheus sample whose line starts with `prefix` (name plus labels), summed.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let matches_name = series == name || series.starts_with(&format!("{name}{{"));
            let has_labels = labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
            (matches_name && has_labels).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// An axum app served on an ephemeral port (a fake upstream); aborted when dropped.
pub struct FakeServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// A llama.cpp-style upstream whose `/health` is 200 and whose
    /// `POST /v1/chat/completions` is `chat`.
    pub async fn chat(chat: axum::routing::MethodRouter) -> Self {
        Self::start(
            axum::Router::new()
                .route("/health", axum::routing::get(|| async { "ok" }))
                .route("/v1/chat/completions", chat),
        )
        .await
    }

    /// Serves `app` on 127.0.0.1:0.
    pub async fn start(app: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let addr = listener.local_addr().expect("fake addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            task,
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL on which nothing listens.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Reads SSE `data:` payloads from a response until it ends (or `deadline`).
pub async fn read_sse(resp: reqwest::Response, deadline: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut dec = SseDecoder::default();
    let mut body = resp.bytes_stream();
    let until = Instant::now() + deadline;
    loop {
        while let Some(ev) = dec.next_event() {
            out.push(ev.data);
        }
        match tokio::time::timeout_at(until, body.next()).await {
            Ok(Some(Ok(chunk))) => dec.push(&chunk),
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => panic!("SSE stream did not end within {deadline:?}; got {out:?}"),
        }
    }
    while let Some(ev) = dec.next_event() {
        out.push(ev.data);
    }
    out
}

/// POSTs JSON to the proxy.
pub async fn post(client: &reqwest::Client, url: String, body: &Value) -> reqwest::Response {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST to proxy")
}

/// GETs a URL of the proxy.
pub async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("GET from proxy")
}

/// GETs a URL of the proxy and parses its JSON body.
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    get(client, url).await.json().await.expect("JSON body")
}

/// The JSON chunks of a finished stream: asserts that the last event is `[DONE]`.
pub fn done_chunks(events: &[String]) -> Vec<Value> {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk JSON"))
        .collect()
}

/// The text of completion chunks (`choices[0].text`), concatenated.
pub fn completion_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect()
}

/// A llama.cpp-style upstream that stalls: `/health` is 200, and chat answers send their
/// headers, then nothing. Counts the chat requests that name a model (the proxy's forwarded
/// requests; its health probes name none).
pub async fn stalled_upstream(hits: Arc<std::sync::atomic::AtomicUsize>) -> FakeServer {
    FakeServer::chat(axum::routing::post(
        move |axum::Json(req): axum::Json<Value>| {
            if req.get("model").is_some() {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            async {
                let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(never),
                )
            }
        },
    ))
    .await
}

/// `$PMM_VENV/bin/python` (default /var/tmp/pmm-venv), where scripts/python/install.sh puts
/// the Python clients. Panics (fails the test) when missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PMM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pmm-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} not found: run scripts/python/install.sh",
        python.display()
    );
    python
}
