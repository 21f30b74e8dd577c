//! The commands, as plain async functions over pmm-store. Each prints its result on stdout and
//! returns the process exit status.

use std::time::Duration;

use anyhow::Context;
use pmm_store::migrate::{MigrationInfo, MigrationSet, Migrator};
use pmm_store::redis::REDIS_SCHEMA_VERSION;
use pmm_store::{
    BootstrapOutcome, EvictionOutcome, PgStore, REQUIRED_EVICTION_POLICY, RedisStore, policy_state,
};

use crate::cli::{Cli, Command, EXIT_FAILURE, EXIT_OK, MissingSetting};

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A required setting is missing (exit 2).
    #[error(transparent)]
    Usage(#[from] MissingSetting),
    /// The command ran and failed (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs the selected command.
pub async fn run(cli: &Cli) -> Result<u8, CommandError> {
    match &cli.command {
        Command::Migrate { lock_timeout_secs } => migrate(cli, *lock_timeout_secs).await,
        Command::Status => status(cli).await,
        Command::Bootstrap => bootstrap(cli).await,
        Command::Check { stores } => {
            let mut ready = true;
            if stores.postgres() {
                ready &= check_postgres(cli).await?;
            }
            if stores.redis() {
                ready &= check_redis(cli).await?;
            }
            Ok(if ready { EXIT_OK } else { EXIT_FAILURE })
        }
    }
}

fn migration_set(cli: &Cli) -> anyhow::Result<MigrationSet> {
    Ok(match &cli.migrations_dir {
        Some(dir) => MigrationSet::from_dir(dir)?,
        None => MigrationSet::embedded()?,
    })
}

async fn migrate(cli: &Cli, lock_timeout_secs: u64) -> Result<u8, CommandError> {
    let url = cli.require_database_url()?;
    let set = migration_set(cli)?;
    let mut migrator = Migrator::connect(url).await.map_err(anyhow::Error::from)?;
    let report = migrator
        .migrate(&set, Duration::from_secs(lock_timeout_secs))
        .await
        .map_err(anyhow::Error::from)?;
    for m in &report.applied {
        println!("applied {}", m.file());
    }
    let version = report
        .schema_version
        .map_or_else(|| "none".to_owned(), |v| v.to_string());
    if report.applied.is_empty() {
        println!(
            "schema up to date at version {version} ({} migrations)",
            set.source()
        );
    } else {
        println!(
            "schema now at version {version} ({} applied from {})",
            report.applied.len(),
            set.source()
        );
    }
    tracing::info!(applied = report.applied.len(), version, "migrate finished");
    Ok(EXIT_OK)
}

fn describe(m: &MigrationInfo) -> String {
    match m.applied_on {
        Some(at) => format!(
            "{:<40} applied {}  checksum {}",
            m.file(),
            at.to_rfc3339(),
            m.checksum
        ),
        None => format!("{:<40} pending", m.file()),
    }
}

async fn status(cli: &Cli) -> Result<u8, CommandError> {
    let url = cli.require_database_url()?;
    let set = migration_set(cli)?;
    let mut migrator = Migrator::connect(url).await.map_err(anyhow::Error::from)?;
    let status = migrator.status(&set).await.map_err(anyhow::Error::from)?;
    for m in status.applied.iter().chain(&status.pending) {
        println!("{}", describe(m));
    }
    for file in &status.changed {
        println!("{file:<40} CHANGED after it was applied");
    }
    for file in &status.missing {
        println!("{file:<40} MISSING (applied, no such file)");
    }
    println!(
        "{} applied, {} pending, {} changed, {} missing",
        status.applied.len(),
        status.pending.len(),
        status.changed.len(),
        status.missing.len()
    );
    Ok(EXIT_OK)
}

fn redis_store(cli: &Cli) -> Result<RedisStore, CommandError> {
    let url = cli.require_redis_url()?;
    Ok(RedisStore::connect(url, cli.redis_namespace.clone()).map_err(anyhow::Error::from)?)
}

async fn bootstrap(cli: &Cli) -> Result<u8, CommandError> {
    let redis = redis_store(cli)?;
    redis.ping().await.context("Redis PING failed")?;
    let info = redis.server_info().await.context("Redis INFO failed")?;
    if !info.aof_enabled {
        tracing::warn!(
            endpoint = redis.endpoint(),
            "Redis AOF persistence is off: a restart can lose breaker trips, cooldowns and cap \
             counters (set appendonly yes)"
        );
    }
    // Postgres is the durable record: without it a rebuild would claim a state nobody knows.
    let pg = PgStore::connect(cli.require_database_url()?, 2).map_err(anyhow::Error::from)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let report = policy_state::rebuild(&pg, &redis, now)
        .await
        .context("rebuilding the policy state from Postgres failed")?;
    println!(
        "policy state rebuilt from Postgres: {} breakers, {} cooldowns, {} daily counters",
        report.breakers, report.cooldowns, report.counters
    );
    if let EvictionOutcome::Set { from } = &report.eviction {
        println!(
            "redis maxmemory-policy was {from}, set to {REQUIRED_EVICTION_POLICY} (an evicted \
             breaker or cap key would read as clear; persist it in redis.conf too)"
        );
    }
    let what = match report.marker {
        BootstrapOutcome::Created => "recorded".to_owned(),
        BootstrapOutcome::Unchanged => "already current".to_owned(),
        BootstrapOutcome::Upgraded { from } => format!("upgraded from {from}"),
    };
    println!(
        "redis {} at {}: aof {}, maxmemory-policy {REQUIRED_EVICTION_POLICY}, schema version \
         {REDIS_SCHEMA_VERSION} {what}",
        info.version,
        redis.endpoint(),
        if info.aof_enabled { "on" } else { "off" },
    );
    Ok(EXIT_OK)
}

async fn check_postgres(cli: &Cli) -> Result<bool, CommandError> {
    let url = cli.require_database_url()?;
    let set = migration_set(cli)?;
    let mut migrator = match Migrator::connect(url).await {
        Ok(m) => m,
        Err(e) => {
            println!("postgres: not ready: {e}");
            return Ok(false);
        }
    };
    match migrator.status(&set).await {
        Ok(s) if s.is_current() => {
            let version = s.applied.last().map_or(0, |m| m.version);
            println!("postgres: ready (schema version {version})");
            Ok(true)
        }
        Ok(s) => {
            println!(
                "postgres: not ready: {} pending, {} changed, {} missing migrations",
                s.pending.len(),
                s.changed.len(),
                s.missing.len()
            );
            Ok(false)
        }
        Err(e) => {
            println!("postgres: not ready: {e}");
            Ok(false)
        }
    }
}

async fn check_redis(cli: &Cli) -> Result<bool, CommandError> {
    let redis = redis_store(cli)?;
    let guard = match redis.ping().await {
        Ok(()) => redis.state_guard().await,
        Err(e) => Err(e),
    };
    let why_not = match guard {
        Ok((Some(v), Some(policy))) if v == REDIS_SCHEMA_VERSION => {
            if policy == REQUIRED_EVICTION_POLICY {
                println!("redis: ready (schema version {v}, maxmemory-policy {policy})");
                return Ok(true);
            }
            format!(
                "maxmemory-policy is {policy}, the hub needs {REQUIRED_EVICTION_POLICY} (run \
                 pmm-state bootstrap)"
            )
        }
        Ok((Some(v), None)) if v == REDIS_SCHEMA_VERSION => {
            "the server reports no maxmemory-policy".to_owned()
        }
        Ok((Some(v), _)) => format!("schema version {v}, expected {REDIS_SCHEMA_VERSION}"),
        Ok((None, _)) => "not bootstrapped (run pmm-state bootstrap)".to_owned(),
        Err(e) => e.to_string(),
    };
    println!("redis: not ready: {why_not}");
    Ok(false)
}
