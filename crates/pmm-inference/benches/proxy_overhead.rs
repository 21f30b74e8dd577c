//! Added latency and throughput of the proxy versus calling `llama-server` directly, measured in
//! the same run against the same server (SmolLM2-135M, tiny `max_tokens`).
//!
//! Run: `cargo bench -p pmm-inference --bench proxy_overhead` (needs scripts/llama/install.sh).
//! `PMM_BENCH_N` sets the number of sequential requests per side (default 60).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{LlamaServer, TestProxy, single_upstream};
use pmm_inference::KindSetting;
use serde_json::{Value, json};

fn body(stream: bool) -> Value {
    json!({"prompt": "The quick brown fox", "max_tokens": 4, "temperature": 0, "stream": stream})
}

async fn one(client: &reqwest::Client, base: &str, stream: bool) -> Duration {
    let start = Instant::now();
    let resp = client
        .post(format!("{base}/v1/completions"))
        .json(&body(stream))
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "status {}", resp.status());
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

struct Side {
    p50: Duration,
    p99: Duration,
}

fn summarize(mut v: Vec<Duration>) -> Side {
    v.sort_unstable();
    Side {
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
    }
}

async fn latency(client: &reqwest::Client, direct: &str, proxy: &str, n: usize, stream: bool) {
    let mut d = Vec::with_capacity(n);
    let mut p = Vec::with_capacity(n);
    // Interleaved so that drift in the server's speed hits both sides equally.
    for _ in 0..n {
        d.push(one(client, direct, stream).await);
        p.push(one(client, proxy, stream).await);
    }
    let (d, p) = (summarize(d), summarize(p));
    let kind = if stream { "stream" } else { "json" };
    println!(
        "latency {kind:6} n={n:3}  direct p50 {:7.2} ms p99 {:7.2} ms | proxy p50 {:7.2} ms p99 {:7.2} ms | added p50 {:+6.2} ms p99 {:+6.2} ms | ratio p50 {:.3} p99 {:.3}",
        ms(d.p50),
        ms(d.p99),
        ms(p.p50),
        ms(p.p99),
        ms(p.p50) - ms(d.p50),
        ms(p.p99) - ms(d.p99),
        ms(p.p50) / ms(d.p50),
        ms(p.p99) / ms(d.p99),
    );
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
        let proxy = TestProxy::start(single_upstream("llama", &llama.base, KindSetting::Llamacpp))
        .await;
        let client = reqwest::Client::new();
        for _ in 0..5 {
            one(&client, &llama.base, false).await;
            one(&client, &proxy.base, false).await;
        }
        println!("proxy vs direct llama-server (SmolLM2-135M, max_tokens 4, same run)");
        latency(&client, &llama.base, &proxy.base, n, false).await;
        latency(&client, &llama.base, &proxy.base, n, true).await;
        let total = n.max(8);
        // direct, proxy, proxy, direct: the averages cancel a linear drift in server speed.
        let d1 = throughput(&client, &llama.base, total, 4).await;
        let p1 = throughput(&client, &proxy.base, total, 4).await;
        let p2 = throughput(&client, &proxy.base, total, 4).await;
        let d2 = throughput(&client, &llama.base, total, 4).await;
        let (direct_rps, proxy_rps) = ((d1 + d2) / 2.0, (p1 + p2) / 2.0);
        println!(
            "throughput concurrency 4, 2x{total} requests per side: direct {direct_rps:.2} req/s | proxy {proxy_rps:.2} req/s | ratio {:.3}",
            proxy_rps / direct_rps
        );
    });
}
