//! The hub as other MCP clients see it: the official Python SDK and MCP Inspector's CLI
//! (TypeScript SDK) run a malformed-input corpus and must report the error code `/mcp/call`
//! answers for every case, with the hub's own message; nothing is stored beyond its bounds.

#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::*;
use pmm_hub::validate::STORED_STRING_MAX;
use serde_json::{Value, json};

fn s(a: alloy::primitives::Address) -> String {
    a.to_checksum(None)
}

/// `(tool, arguments)`: each a way a client gets the input wrong (and a few right ones).
fn corpus(f: &Fixture) -> Vec<(&'static str, Value)> {
    let pool = s(f.dsp);
    let lower = pool.to_lowercase();
    // One letter's case flipped: a wrong EIP-55 checksum.
    let bad_sum = {
        let i = pool[2..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|i| i + 2)
            .unwrap_or(2);
        let mut b = pool.clone().into_bytes();
        b[i] ^= 0x20;
        String::from_utf8(b).unwrap_or_default()
    };
    let big = "x".repeat(100_000);
    let add = |extra: Value| {
        let mut v =
            json!({"pool": pool, "base_amount": "1000", "quote_amount": "2000", "min_shares": "0"});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    let hold =
        |reason: Value| json!({"pool": pool, "action": {"action": "hold", "reason": reason}});
    let sim = |action: Value| json!({"action": action});
    vec![
        ("dodo.get_pool_state", json!({"pool": pool})),
        ("dodo.get_pool_state", json!({"pool": lower})),
        ("dodo.get_pool_state", json!({"pool": bad_sum})),
        ("dodo.get_pool_state", json!({"pool": "0x1234"})),
        ("dodo.get_pool_state", json!({"pool": "nope"})),
        ("dodo.get_pool_state", json!({"pool": ""})),
        ("dodo.get_pool_state", json!({"pool": 5})),
        ("dodo.get_pool_state", json!({"pool": null})),
        ("dodo.get_pool_state", json!({"pool": [pool]})),
        ("dodo.get_pool_state", json!({"pool": {"address": pool}})),
        ("dodo.get_pool_state", json!({})),
        ("dodo.get_pool_state", json!({"pool": pool, "extra": 1})),
        (
            "dodo.get_pool_state",
            json!({"pool": format!("0X{}", &pool[2..])}),
        ),
        ("dodo.get_pool_state", json!({"pool": format!("{pool}00")})),
        ("dodo.get_pool_state", json!({"pool": big})),
        ("dodo.get_pool_state", json!({"pool": s(f.base)})),
        ("dodo.identify_pool_interface", json!({"pool": bad_sum})),
        ("dodo.identify_pool_interface", json!({"pool": s(f.base)})),
        (
            "dodo.identify_pool_interface",
            json!({"pool": pool, "block": 1}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": s(f.dpp), "base_amount": "1000", "quote_amount": "1000"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "-5", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1.5", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1e18", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "0x10", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": 5, "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1".repeat(80), "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "0", "quote_amount": "1"}),
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": pool, "base_amount": "1000"}),
        ),
        ("dodo.risk_check", json!({"pool": pool})),
        ("dodo.risk_check", hold(json!("fine"))),
        ("dodo.risk_check", hold(json!(big))),
        ("dodo.risk_check", hold(json!(7))),
        (
            "dodo.risk_check",
            json!({"pool": pool, "action": {"action": "swap", "reason": "r"}}),
        ),
        (
            "dodo.risk_check",
            json!({"pool": pool, "action": {"reason": "r"}}),
        ),
        (
            "dodo.risk_check",
            json!({"pool": pool, "action": {"action": "hold", "reason": "r", "x": 1}}),
        ),
        ("dodo.risk_check", json!({"pool": pool, "action": "hold"})),
        ("dodo.risk_check", json!({"pool": pool, "action": [1, 2]})),
        ("dodo.simulate_action", json!({})),
        (
            "dodo.simulate_action",
            sim(
                json!({"action": "add_liquidity", "pool": bad_sum, "base_amount": "1", "quote_amount": "1", "min_shares": "0", "reason": "r"}),
            ),
        ),
        (
            "dodo.simulate_action",
            sim(
                json!({"action": "add_liquidity", "pool": pool, "base_amount": "1", "quote_amount": "1", "reason": "r"}),
            ),
        ),
        (
            "dodo.simulate_action",
            sim(
                json!({"action": "remove_liquidity", "pool": pool, "shares": "-1", "min_base": "0", "min_quote": "0", "reason": "r"}),
            ),
        ),
        (
            "dodo.simulate_action",
            sim(
                json!({"action": "remove_liquidity", "pool": pool, "shares": "1", "min_base": "0", "min_quote": "0", "reason": big}),
            ),
        ),
        (
            "dodo.pause_pool",
            json!({"pool": pool, "reason": "agent tries"}),
        ),
        (
            "dodo.pause_pool",
            json!({"pool": "*", "reason": "agent tries"}),
        ),
        ("dodo.resume_pool", json!({"pool": pool})),
        ("dodo.reset_pool", json!({"pool": pool})),
        ("dodo.add_liquidity", add(json!({}))),
        ("dodo.add_liquidity", add(json!({"idempotency_key": ""}))),
        (
            "dodo.add_liquidity",
            add(json!({"idempotency_key": "k".repeat(129)})),
        ),
        ("dodo.add_liquidity", add(json!({"deadline": -1}))),
        ("dodo.add_liquidity", add(json!({"deadline": 1.5}))),
        ("dodo.add_liquidity", add(json!({"deadline": "soon"}))),
        ("dodo.add_liquidity", add(json!({"deadline": 1e30}))),
        ("dodo.add_liquidity", add(json!({"slippage": 1}))),
        (
            "dodo.remove_liquidity",
            json!({"pool": pool, "shares": "1"}),
        ),
        (
            "dodo.remove_liquidity",
            json!({"pool": bad_sum, "shares": "1", "min_base": "0", "min_quote": "0"}),
        ),
        ("dodo.nope", json!({})),
        ("dodo.get_pool_state ", json!({"pool": pool})),
    ]
}

/// The error code (or `ok`) a client's report names.
fn code_of(report: &Value) -> String {
    match report["kind"].as_str() {
        Some("ok") => "ok".into(),
        _ => report["code"].as_str().unwrap_or("(none)").into(),
    }
}

struct Inspector {
    bin: PathBuf,
    catalog: PathBuf,
}

impl Inspector {
    fn new(dir: &std::path::Path) -> Self {
        Self {
            bin: repo_root().join("tools/npm/node_modules/.bin/mcp-inspector"),
            catalog: dir.join("inspector-catalog.json"),
        }
    }

    /// Runs one `tools/call` through the Inspector's CLI; returns a report like the Python
    /// driver's, and the CLI's whole output.
    async fn call(
        &self,
        url: &str,
        token: &str,
        tool: &str,
        args: &Value,
    ) -> anyhow::Result<(Value, String)> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args([
            "--cli",
            url,
            "--transport",
            "http",
            "--method",
            "tools/call",
        ])
        .args(["--tool-name", tool])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("MCP_CATALOG_PATH", &self.catalog)
        .stdin(Stdio::null())
        .kill_on_drop(true);
        // Each value as JSON: the CLI parses a value that is valid JSON, so a bare `0` would
        // arrive as a number, while `"0"` arrives as the string.
        if let Some(o) = args.as_object()
            && !o.is_empty()
        {
            cmd.arg("--tool-arg");
            for (k, v) in o {
                cmd.arg(format!("{k}={v}"));
            }
        }
        let out = cmd.output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let all = format!("{stdout}\n{stderr}");
        let report = match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(r) if r["isError"] == true => {
                let text = r["content"][0]["text"].as_str().unwrap_or_default();
                let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                json!({"kind": "tool_error", "code": body["code"], "message": body["message"],
                       "structured": !r["structuredContent"].is_null()})
            }
            Ok(r) if r.get("content").is_some() => json!({"kind": "ok"}),
            _ => {
                // The CLI's own report: `{"error": {"code": ...}}` on its last line. It looks
                // a tool up in `tools/list` before calling, so an unknown name is its
                // `tool_not_found`, the hub's `unknown_tool`.
                let code = all
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str::<Value>(l).ok())
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                    .map(|c| {
                        if c == "tool_not_found" {
                            "unknown_tool".to_owned()
                        } else {
                            c
                        }
                    });
                json!({"kind": "protocol_error", "code": code})
            }
        };
        Ok((report, all))
    }
}

#[tokio::test]
async fn python_sdk_and_inspector_agree_with_mcp_call_on_every_malformed_input()
-> anyhow::Result<()> {
    let f = fixture().await?;
    let hub = start(&f.cfg).await?;
    let url = format!("http://{}/mcp", hub.addr);
    let cases = corpus(&f);
    assert!(cases.len() >= 50, "{}", cases.len());

    let mut expected = Vec::new();
    for (tool, args) in &cases {
        let (status, body) = call(&hub, Some(AGENT), tool, args.clone()).await?;
        let code = if status == 200 {
            "ok".to_owned()
        } else {
            body["error"]["code"]
                .as_str()
                .unwrap_or("(none)")
                .to_owned()
        };
        expected.push((
            code,
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    for want in [
        "ok",
        "invalid_params",
        "forbidden",
        "unsupported",
        "unknown_tool",
        "gate_closed",
    ] {
        assert!(
            expected.iter().any(|(c, _)| c == want),
            "corpus lacks {want}"
        );
    }

    // Python SDK: the whole corpus over one session.
    let corpus_file = f.dir.join("corpus.json");
    let as_json: Vec<Value> = cases
        .iter()
        .map(|(t, a)| json!({"tool": t, "args": a}))
        .collect();
    std::fs::write(&corpus_file, serde_json::to_string(&as_json)?)?;
    let python = std::env::var("PMM_VENV").unwrap_or_else(|_| "/var/tmp/pmm-venv".into());
    let out = tokio::process::Command::new(format!("{python}/bin/python"))
        .arg(repo_root().join("crates/pmm-hub/tests/clients/python_corpus.py"))
        .args([url.as_str(), AGENT])
        .arg(&corpus_file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(py.len(), cases.len(), "{stdout}");

    // Inspector CLI: one process per case, four at a time.
    let inspector = std::sync::Arc::new(Inspector::new(&f.dir));
    let mut ins = Vec::new();
    for chunk in cases.chunks(4) {
        let runs = chunk.iter().map(|(tool, args)| {
            let i = inspector.clone();
            let url = url.clone();
            async move { i.call(&url, AGENT, tool, args).await }
        });
        ins.extend(futures::future::try_join_all(runs).await?);
    }

    let mut mismatches = Vec::new();
    for (i, (tool, args)) in cases.iter().enumerate() {
        let (want, message) = &expected[i];
        let (p, (n, n_out)) = (&py[i], &ins[i]);
        // The Inspector converts a value by its schema type before sending: a string for an
        // integer field arrives as a number or null, so only the other clients can send it.
        let n_code = if args.get("deadline") == Some(&json!("soon")) {
            want.clone()
        } else {
            code_of(n)
        };
        let shown: String = args.to_string().chars().take(120).collect();
        if code_of(p) != *want || n_code != *want {
            mismatches.push(format!(
                "#{i} {tool} {shown}: /mcp/call {want}, python {p}, inspector {n} ({})",
                n_out.chars().take(400).collect::<String>()
            ));
            continue;
        }
        if p["kind"] == "tool_error" {
            // The hub's own message, not an SDK's schema complaint; no structuredContent.
            assert_eq!(p["message"].as_str(), Some(message.as_str()), "#{i} {p}");
            assert_eq!(p["structured"], false, "#{i} {p}");
            assert_eq!(n["structured"], false, "#{i} {n}");
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // What a user sees in the Inspector for the three errors an agent meets first.
    let pool = s(f.dsp);
    for (tool, args, needle) in [
        (
            "dodo.pause_pool",
            json!({"pool": pool, "reason": "x"}),
            "tool dodo.pause_pool needs the operator role",
        ),
        (
            "dodo.get_pool_state",
            json!({"pool": "0x1234"}),
            "is not a 20-byte 0x-prefixed hex address",
        ),
        (
            "dodo.quote_add_liquidity",
            json!({"pool": s(f.dpp), "base_amount": "1", "quote_amount": "1"}),
            "unsupported",
        ),
    ] {
        let (_, out) = inspector.call(&url, AGENT, tool, &args).await?;
        assert!(out.contains(needle), "{tool}: {out}");
    }

    // Nothing stored beyond its bounds: every string any row keeps fits the longest schema bound.
    // Shutdown flushes the tool_calls queue.
    hub.shutdown().await;
    let pg = pmm_store::PgStore::connect(f.db.url(), 1)?;
    let rows = pg.recent_tool_calls(None, 10_000).await?;
    assert!(rows.len() >= 2 * cases.len(), "{}", rows.len());
    fn longest(v: &Value) -> usize {
        match v {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.iter().map(longest).max().unwrap_or(0),
            Value::Object(o) => o.values().map(longest).max().unwrap_or(0),
            _ => 0,
        }
    }
    for r in &rows {
        assert!(
            longest(&r.params) <= STORED_STRING_MAX,
            "{} {}",
            r.tool,
            longest(&r.params)
        );
        assert!(r.tool.chars().count() <= 128, "{}", r.tool);
    }
    Ok(())
}
