//! The official OpenAI Python SDK (tools/python/requirements.txt) against the proxy over real
//! llama-servers: successes parse, and every error is the SDK's specific exception class with
//! the proxy's message. The cases are in tests/openai_sdk.py; this starts what they talk to.

mod common;

use std::time::Duration;

use common::{
    LlamaServer, TestProxy, config_models, model, stalled_upstream, upstream, venv_python,
};
use pmm_inference::{KindSetting, ModelConfig};
use tokio::time::Instant;

const TOKEN: &str = "sdk-test-token";
/// Long enough for a prompt with tools on a busy 2-core machine; the stall case waits it out.
const FIRST_BYTE_MS: u64 = 10_000;

#[tokio::test]
async fn openai_python_sdk_gets_openai_answers_and_errors() {
    let python = venv_python();
    let (tools, plain) = tokio::join!(
        LlamaServer::start_with(1, true),
        LlamaServer::start_with(1, false)
    );
    let stall = stalled_upstream(Default::default()).await;
    let mut cfg = config_models(
        vec![
            ModelConfig {
                aliases: vec!["gpt-4o-mini".into()],
                ..model("smollm2", &["tools"])
            },
            model("plain", &["plain"]),
            model("stalled", &["stall"]),
        ],
        vec![
            upstream("tools", &tools.base, KindSetting::Llamacpp),
            upstream("plain", &plain.base, KindSetting::Llamacpp),
            upstream("stall", &stall.base, KindSetting::Llamacpp),
        ],
    );
    cfg.auth.disabled = false;
    cfg.auth.tokens = vec![TOKEN.into()];
    cfg.limits.max_concurrent = 1;
    cfg.limits.max_queue = 0;
    cfg.limits.first_byte_timeout_ms = FIRST_BYTE_MS;
    cfg.limits.max_body_bytes = 64 * 1024;
    cfg.limits.retry_after_secs = 1;
    let proxy = TestProxy::start(cfg).await;
    // All three models routable before the script's first look at /v1/models.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: serde_json::Value = client
            .get(format!("{}/v1/models", proxy.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET /v1/models")
            .json()
            .await
            .expect("models JSON");
        if v["data"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "models never all routable: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .env("PMM_PROXY_BASE", format!("{}/v1", proxy.base))
        .env("PMM_PROXY_TOKEN", TOKEN)
        .env(
            "PMM_FIRST_BYTE_S",
            (FIRST_BYTE_MS as f64 / 1000.0).to_string(),
        )
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("SDK script finished within 120 s")
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK script failed ({}):\n{stdout}\n{stderr}\ntools llama-server:\n{}",
        out.status,
        tools.log_tail()
    );
    assert!(stdout.contains("ok stall 504"), "{stdout}");
}
