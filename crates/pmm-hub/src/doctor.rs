//! `pmm-hub doctor`: the hardening checklist as pass/fail lines; any fail exits non-zero.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use alloy::primitives::U256;
use pmm_core::config::{Allowlist, PoolProfiles};
use pmm_core::schema::OracleKind;

use crate::config::{ChainPreset, HubConfig};

/// Least signer balance that passes, wei (enough for a few hundred writes at low fees).
const MIN_GAS_BALANCE_WEI: u128 = 10_000_000_000_000_000;

/// One checklist line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Pass or fail.
    pub pass: bool,
    /// Why.
    pub detail: String,
}

fn check(name: &'static str, pass: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        pass,
        detail: detail.into(),
    }
}

/// Owner-only (no group or other bits) regular file.
fn private_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {}", path.display(), e.kind()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("{} has mode {mode:o}; want 600", path.display()));
    }
    Ok(())
}

/// Runs every check against `cfg`.
pub async fn run(cfg: &HubConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let allowlist = std::fs::read_to_string(&cfg.profiles_path)
        .map_err(|e| e.to_string())
        .and_then(|p| PoolProfiles::from_json_str(&p).map_err(|e| e.to_string()))
        .and_then(|profiles| {
            std::fs::read_to_string(&cfg.allowlist_path)
                .map_err(|e| format!("{}: {e}", cfg.allowlist_path.display()))
                .and_then(|a| Allowlist::from_json_str(&a, &profiles).map_err(|e| e.to_string()))
        });
    match &allowlist {
        Ok(a) if !a.pools.is_empty() => {
            out.push(check(
                "allowlist",
                true,
                format!("{} pools on {}", a.pools.len(), a.chain),
            ));
            let mut unset = Vec::new();
            let mut no_cooldown = Vec::new();
            let mut no_feed = Vec::new();
            for e in &a.pools {
                let l = e.effective_limits();
                if l.max_notional_per_tx.is_zero()
                    || l.max_notional_per_day.is_zero()
                    || l.max_slippage_bps == 0
                    || l.gas_cap_gwei == 0
                    || l.oracle_max_age_s == 0
                {
                    unset.push(format!("{:#x}", e.address));
                }
                if l.cooldown_s == 0 || l.oracle_deviation_bps == 0 {
                    no_cooldown.push(format!("{:#x}", e.address));
                }
                if e.oracle.kind != OracleKind::Chainlink || e.oracle.address.is_none() {
                    no_feed.push(format!("{:#x}", e.address));
                }
            }
            out.push(check(
                "limits",
                unset.is_empty(),
                if unset.is_empty() {
                    "every limit set".into()
                } else {
                    format!("zero limits: {}", unset.join(", "))
                },
            ));
            out.push(check(
                "cooldown_and_deviation",
                no_cooldown.is_empty(),
                if no_cooldown.is_empty() {
                    "set on every pool".into()
                } else {
                    format!("unset on {}", no_cooldown.join(", "))
                },
            ));
            out.push(check(
                "independent_feed",
                no_feed.is_empty(),
                if no_feed.is_empty() {
                    "a Chainlink-style feed per pool".into()
                } else {
                    format!("no independent feed: {}", no_feed.join(", "))
                },
            ));
        }
        Ok(_) => out.push(check("allowlist", false, "empty")),
        Err(e) => out.push(check("allowlist", false, e.clone())),
    }
    // Keys only on this host: an owner-only keystore and password, or a dev key on a devnet.
    let keys = match (&cfg.keystore_path, cfg.dev_signer_from_env) {
        (Some(k), _) => private_file(k)
            .and_then(|()| match &cfg.keystore_password_file {
                Some(p) => private_file(p),
                None => Ok(()),
            })
            .map(|()| format!("keystore {}", k.display())),
        (None, true) if cfg.chain == ChainPreset::Devnet => Ok("raw dev key (devnet only)".into()),
        (None, true) => Err("raw key outside devnet".into()),
        (None, false) => Err("no signer configured".into()),
    };
    out.push(match keys {
        Ok(d) => check("keys", true, d),
        Err(e) => check("keys", false, e),
    });
    out.push(check(
        "gates",
        true,
        format!(
            "allow_write={} execution_armed={}",
            cfg.allow_write, cfg.execution_armed
        ),
    ));
    let info = match &cfg.redis_url {
        None => Err("redis_url not set".to_owned()),
        Some(url) => match pmm_store::RedisStore::connect(url, "") {
            Err(e) => Err(e.to_string()),
            Ok(r) => r.server_info().await.map_err(|e| e.to_string()),
        },
    };
    match &info {
        Ok(i) if i.aof_enabled => out.push(check(
            "redis_persistence",
            true,
            format!("AOF on (redis {})", i.version),
        )),
        Ok(_) => out.push(check(
            "redis_persistence",
            false,
            "appendonly is off: a restart loses breakers and caps",
        )),
        Err(e) => out.push(check("redis_persistence", false, e.clone())),
    }
    let required = pmm_store::REQUIRED_EVICTION_POLICY;
    out.push(match &info {
        Ok(i) if i.maxmemory_policy.as_deref() == Some(required) => check(
            "redis_eviction",
            true,
            format!("maxmemory-policy {required}"),
        ),
        Ok(i) => check(
            "redis_eviction",
            false,
            format!(
                "maxmemory-policy is {}: an evicted breaker or cap key reads as clear, so the \
                 hub refuses writes (set {required}; pmm-state bootstrap does)",
                i.maxmemory_policy.as_deref().unwrap_or("unreported")
            ),
        ),
        Err(e) => check("redis_eviction", false, e.clone()),
    });
    match &cfg.database_url {
        None => out.push(check("postgres", false, "database_url not set")),
        Some(url) => match pmm_store::PgStore::connect(url, 1) {
            Err(e) => out.push(check("postgres", false, e.to_string())),
            Ok(pg) => match pg.ping().await {
                Ok(()) => out.push(check("postgres", true, pg.endpoint().to_owned())),
                Err(e) => out.push(check("postgres", false, e.to_string())),
            },
        },
    }
    out.push(gas_balance(cfg).await);
    out
}

async fn gas_balance(cfg: &HubConfig) -> Check {
    let signer = match (&cfg.keystore_path, cfg.dev_signer_from_env) {
        (Some(path), _) => {
            match crate::signer::read_password(cfg.keystore_password_file.as_deref()) {
                Ok(pw) => crate::signer::HubSigner::from_keystore(path, pw).await,
                Err(e) => Err(e),
            }
        }
        (None, true) => crate::signer::HubSigner::from_dev_env(cfg.chain),
        (None, false) => return check("signer_gas", false, "no signer configured"),
    };
    let signer = match signer {
        Ok(s) => s,
        Err(e) => return check("signer_gas", false, e.to_string()),
    };
    let url = match cfg.resolve_rpc_url() {
        Ok(u) => u,
        Err(e) => return check("signer_gas", false, e.to_string()),
    };
    let chain = match pmm_chain::ChainClient::connect(&url).await {
        Ok(c) => c,
        Err(e) => return check("signer_gas", false, e.to_string()),
    };
    match chain.native_balance(signer.address()).await {
        Ok(b) if b >= U256::from(MIN_GAS_BALANCE_WEI) => check(
            "signer_gas",
            true,
            format!("{:#x} holds {b} wei", signer.address()),
        ),
        Ok(b) => check(
            "signer_gas",
            false,
            format!(
                "{:#x} holds {b} wei, below {MIN_GAS_BALANCE_WEI}",
                signer.address()
            ),
        ),
        Err(e) => check("signer_gas", false, e.to_string()),
    }
}
