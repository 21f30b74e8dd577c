//! Added latency and throughput of the proxy versus calling `llama-server` directly, and of
//! LiteLLM's proxy when it is installed, all measured in the same run against the same server
//! (SmolLM2-135M, tiny `max_tokens`).
//!
//! Run: `cargo bench -p pmm-inference --bench proxy_overhead` (needs scripts/llama/install.sh).
//! `PMM_BENCH_N` sets the number of sequential requests per side (default 60). LiteLLM is the
//! `litellm` at `PMM_LITELLM` (default /var/tmp/pmm-litellm/bin/litellm, the pinned venv outside
//! the clone that scripts/python/install-litellm.sh installs); without it that column is skipped
//! with a line saying so.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{LlamaServer, TestProxy, free_port, single_upstream};
use pmm_inference::KindSetting;
use serde_json::{Value, json};

fn body(stream: bool) -> Value {
    json!({"model": common::MODEL, "prompt": "The quick brown fox", "max_tokens": 4, "temperature": 0, "stream": stream})
}

async fn one(client: &reqwest::Client, base: &str, stream: bool) -> Duration {
    let start = Instant::now();
    let resp = client
        .post(format!("{base}/v1/completions"))
        .json(&body(stream))
        .send()
        .await
        .expect("request");
    assert!(
        resp.status().is_success(),
        "{base}: status {}",
        resp.status()
    );
    let text = resp.bytes().await.expect("body");
    assert!(!text.is_empty());
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One thing measured: a name and its OpenAI base URL (without `/v1`).
struct Side {
    name: &'static str,
    base: String,
}

async fn latency(client: &reqwest::Client, sides: &[Side], n: usize, stream: bool) {
    let mut samples: Vec<Vec<Duration>> = sides.iter().map(|_| Vec::with_capacity(n)).collect();
    // Interleaved so that drift in the server's speed hits every side equally.
    for _ in 0..n {
        for (side, s) in sides.iter().zip(samples.iter_mut()) {
            s.push(one(client, &side.base, stream).await);
        }
    }
    let kind = if stream { "stream" } else { "json" };
    let mut line = format!("latency {kind:6} n={n:3} ");
    let mut direct = (0.0, 0.0);
    for (i, (side, mut s)) in sides.iter().zip(samples).enumerate() {
        s.sort_unstable();
        let (p50, p99) = (ms(percentile(&s, 0.5)), ms(percentile(&s, 0.99)));
        if i == 0 {
            direct = (p50, p99);
            line.push_str(&format!(
                " | {} p50 {p50:7.2} ms p99 {p99:7.2} ms",
                side.name
            ));
        } else {
            line.push_str(&format!(
                " | {} p50 {p50:7.2} ms p99 {p99:7.2} ms (ratio p50 {:.3} p99 {:.3})",
                side.name,
                p50 / direct.0,
                p99 / direct.1
            ));
        }
    }
    println!("{line}");
}

async fn throughput(client: &reqwest::Client, base: &str, total: usize, concurrency: usize) -> f64 {
    let start = Instant::now();
    let per_worker = total / concurrency;
    let workers = (0..concurrency).map(|_| {
        let client = client.clone();
        let base = base.to_owned();
        tokio::spawn(async move {
            for _ in 0..per_worker {
                one(&client, &base, false).await;
            }
        })
    });
    for w in futures::future::join_all(workers).await {
        w.expect("worker");
    }
    (per_worker * concurrency) as f64 / start.elapsed().as_secs_f64()
}

/// LiteLLM's proxy in front of the same llama-server, killed on drop.
struct LiteLlm {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts LiteLLM if it is installed; `Err` says why that column is skipped.
async fn start_litellm(llama_base: &str) -> Result<LiteLlm, String> {
    let exe = std::env::var_os("PMM_LITELLM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pmm-litellm/bin/litellm"));
    if !exe.is_file() {
        return Err(format!(
            "no litellm at {} (set PMM_LITELLM, or run scripts/python/install-litellm.sh)",
            exe.display()
        ));
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("pmm-litellm-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: {}\n    litellm_params:\n      model: openai/{}\n      api_base: {llama_base}/v1\n      api_key: none\n",
            common::MODEL,
            common::MODEL
        ),
    )
    .map_err(|e| format!("write config: {e}"))?;
    let log = std::fs::File::create(dir.join("litellm.log")).map_err(|e| format!("log: {e}"))?;
    let child = Command::new(&exe)
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // Offline: its bundled model cost map instead of fetching one, no telemetry.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_TELEMETRY", "False")
        // It refuses to start without a master key; the proxy runs without auth here too, so
        // both sides skip the per-request key check.
        .env(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "True",
        )
        .env("LITELLM_LOG", "ERROR")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let mut me = LiteLlm {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(Some(status)) = me.child.try_wait() {
            let log = std::fs::read_to_string(me.dir.join("litellm.log")).unwrap_or_default();
            return Err(format!("litellm exited with {status}:\n{log}"));
        }
        let ready = client
            .get(format!("{}/health/liveliness", me.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            return Ok(me);
        }
        if Instant::now() >= deadline {
            return Err("litellm not ready within 180 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn main() {
    let n: usize = std::env::var("PMM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let llama = LlamaServer::start(2).await;
        let proxy =
            TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Llamacpp)).await;
        let client = reqwest::Client::new();
        let mut sides = vec![
            Side {
                name: "direct",
                base: llama.base.clone(),
            },
            Side {
                name: "proxy",
                base: proxy.base.clone(),
            },
        ];
        let litellm = match start_litellm(&llama.base).await {
            Ok(l) => {
                sides.push(Side {
                    name: "litellm",
                    base: l.base.clone(),
                });
                Some(l)
            }
            Err(why) => {
                println!("litellm: skipped: {why}");
                None
            }
        };
        for _ in 0..5 {
            for side in &sides {
                one(&client, &side.base, false).await;
            }
        }
        println!(
            "{} vs direct llama-server (SmolLM2-135M, max_tokens 4, same run)",
            sides[1..]
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(" and ")
        );
        latency(&client, &sides, n, false).await;
        latency(&client, &sides, n, true).await;
        let total = n.max(8);
        // direct, others, others reversed, direct: the averages cancel a linear drift in
        // server speed.
        let mut rps = vec![0.0; sides.len()];
        let order: Vec<usize> = (0..sides.len()).chain((0..sides.len()).rev()).collect();
        for i in order {
            rps[i] += throughput(&client, &sides[i].base, total, 4).await / 2.0;
        }
        let mut line = format!("throughput concurrency 4, 2x{total} requests per side:");
        for (i, side) in sides.iter().enumerate() {
            line.push_str(&format!(" | {} {:.2} req/s", side.name, rps[i]));
            if i > 0 {
                line.push_str(&format!(" (ratio {:.3})", rps[i] / rps[0]));
            }
        }
        println!("{line}");
        drop(litellm);
    });
}
