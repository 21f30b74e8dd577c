//! A real `llama-server` killed and restarted under steady traffic: the breaker opens while it
//! is gone, and once its `/health` turns 200 again the proxy's first 200 comes within one
//! second (the breaker's own open period is a minute here, so only the health poll's ready
//! signal can bring traffic back that fast).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{LlamaServer, TestProxy, metric, single_upstream};
use pmm_inference::KindSetting;
use serde_json::json;
use tokio::time::Instant;

/// `(finished_at, status)` of every request the traffic sent.
type Log = Arc<Mutex<Vec<(Instant, u16)>>>;

fn entries(log: &Log) -> Vec<(Instant, u16)> {
    log.lock().expect("log lock").clone()
}

/// Polls `check` every 10 ms until it holds, failing after `within`.
async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn first_200_within_a_second_of_upstream_health_after_a_restart() {
    let mut llama = LlamaServer::start(1).await;
    let mut cfg = single_upstream("llama", &llama.base, KindSetting::Llamacpp);
    cfg.breaker.failure_threshold = 2;
    cfg.breaker.open_ms = 60_000;
    let proxy = TestProxy::start(cfg).await;
    let client = reqwest::Client::new();

    // Steady traffic: two clients, each sending the next request as soon as one is answered.
    let log: Log = Arc::default();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (client, url, log) = (
                client.clone(),
                format!("{}/v1/completions", proxy.base),
                log.clone(),
            );
            tokio::spawn(async move {
                let body = json!({"model": common::MODEL, "prompt": "Hi", "max_tokens": 1});
                loop {
                    let status = match client.post(&url).json(&body).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    log.lock().expect("log lock").push((Instant::now(), status));
                    // Pace the failures (the breaker answers them in microseconds).
                    if status != 200 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    until("traffic flowing", Duration::from_secs(30), async || {
        entries(&log).iter().filter(|(_, s)| *s == 200).count() >= 4
    })
    .await;

    llama.kill();
    let killed = Instant::now();
    until("breaker open", Duration::from_secs(10), async || {
        let m = proxy.metrics(&client).await;
        metric(
            &m,
            "pmm_inference_upstream_breaker_open",
            &[("upstream", "llama")],
        ) == 1.0
    })
    .await;
    llama.spawn();
    let restarted = Instant::now();
    // llama-server's own /health, polled directly: the moment it turns 200.
    let health = format!("{}/health", llama.base);
    until(
        "llama-server healthy again",
        Duration::from_secs(60),
        async || {
            matches!(
                client.get(&health).timeout(Duration::from_secs(1)).send().await,
                Ok(r) if r.status().is_success()
            )
        },
    )
    .await;
    let healthy = Instant::now();
    until(
        "a 200 after the restart",
        Duration::from_secs(10),
        async || {
            entries(&log)
                .iter()
                .any(|(t, s)| *t > restarted && *s == 200)
        },
    )
    .await;
    for w in workers {
        w.abort();
    }
    let log = entries(&log);
    let first_200 = log
        .iter()
        .filter(|(t, s)| *t > restarted && *s == 200)
        .map(|(t, _)| *t)
        .min()
        .expect("a 200 after the restart");
    let failures = log
        .iter()
        .filter(|(t, s)| *t > killed && *t < first_200 && *s != 200)
        .count();
    let lag = first_200.saturating_duration_since(healthy);
    println!(
        "llama-server down {:?}, loading {:?}; first 200 {:?} after its /health turned 200 ({failures} failed requests meanwhile)",
        restarted - killed,
        healthy - restarted,
        lag
    );
    assert!(failures > 0, "the traffic never saw the upstream gone");
    assert!(
        lag <= Duration::from_secs(1),
        "first 200 came {lag:?} after llama-server's /health turned 200"
    );
}
