//! Command line and environment: one typed configuration for every command.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status of a successful command (for `check`: every checked store is ready).
pub const EXIT_OK: u8 = 0;
/// Exit status of a failed command (for `check`: a store is not ready).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage or configuration error (same as clap's).
pub const EXIT_USAGE: u8 = 2;

/// Prepares the project's state stores: applies the Postgres schema, bootstraps Redis, and
/// answers readiness checks for compose and systemd.
///
/// Exit status: 0 success / ready, 1 failure / not ready, 2 usage or configuration error.
/// Connection strings are never printed.
#[derive(Debug, Parser)]
#[command(name = "pmm-state", version, about, long_about)]
pub struct Cli {
    /// Postgres connection string, e.g. postgres://user@127.0.0.1:5432/pmm.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis connection string, e.g. redis://127.0.0.1:6379.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key (empty in production; tests use a unique one).
    #[arg(long, global = true, env = "PMM_REDIS_NAMESPACE", default_value = "")]
    pub redis_namespace: String,

    /// Read migrations from this directory instead of the copy embedded in the binary.
    #[arg(long, global = true, env = "PMM_MIGRATIONS_DIR", value_name = "DIR")]
    pub migrations_dir: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, env = "PMM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending Postgres migrations.
    ///
    /// Takes a Postgres advisory lock first, so concurrent runs wait for each other and end with
    /// one schema. Each migration runs in its own transaction. Refuses to run, naming the file,
    /// when an applied migration was changed (checksum over line-ending-normalized SQL) or is
    /// missing. Needs --database-url.
    Migrate {
        /// Give up when another migrator holds the lock for longer than this many seconds.
        #[arg(long, env = "PMM_MIGRATE_LOCK_TIMEOUT_SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        lock_timeout_secs: u64,
    },
    /// List applied and pending migrations and any drift. Needs --database-url.
    Status,
    /// Prepare Redis: PING, report the server version, warn when AOF persistence is off, set
    /// maxmemory-policy noeviction (the hub refuses writes under any policy that may evict a
    /// breaker or cap key; persist it in redis.conf too), rebuild breakers, pauses, cooldowns
    /// and today's usage from Postgres (policy_events, notional_windows), then record the
    /// key-layout version (the bootstrap marker the hub requires before it allows any write).
    /// Safe to run any number of times; run it after Redis lost data (restart without
    /// persistence, flush). Needs --redis-url and --database-url.
    Bootstrap,
    /// Readiness check for health checks: Postgres reachable with every migration applied, Redis
    /// reachable, bootstrapped and on maxmemory-policy noeviction. Exit 0 when ready, 1 when not.
    Check {
        /// Which stores to check.
        #[arg(long, value_enum, default_value_t = Stores::All)]
        stores: Stores,
    },
}

/// Which stores `check` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stores {
    /// Postgres and Redis.
    All,
    /// Postgres only.
    Postgres,
    /// Redis only.
    Redis,
}

impl Stores {
    /// Whether Postgres is checked.
    pub fn postgres(self) -> bool {
        matches!(self, Self::All | Self::Postgres)
    }

    /// Whether Redis is checked.
    pub fn redis(self) -> bool {
        matches!(self, Self::All | Self::Redis)
    }
}

/// A missing setting, named by its flag and variable.
#[derive(Debug, thiserror::Error)]
#[error("missing {what}: pass {flag} or set {env}")]
pub struct MissingSetting {
    what: &'static str,
    flag: &'static str,
    env: &'static str,
}

impl Cli {
    /// The Postgres URL, required by the command being run.
    pub fn require_database_url(&self) -> Result<&str, MissingSetting> {
        non_empty(self.database_url.as_deref()).ok_or(MissingSetting {
            what: "Postgres URL",
            flag: "--database-url",
            env: "DATABASE_URL",
        })
    }

    /// The Redis URL, required by the command being run.
    pub fn require_redis_url(&self) -> Result<&str, MissingSetting> {
        non_empty(self.redis_url.as_deref()).ok_or(MissingSetting {
            what: "Redis URL",
            flag: "--redis-url",
            env: "REDIS_URL",
        })
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_help_is_consistent() {
        Cli::command_debug_assert();
        let cli = Cli::try_parse_from([
            "pmm-state",
            "migrate",
            "--database-url",
            "postgres://x@h/db",
            "--lock-timeout-secs",
            "5",
        ]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Migrate {
                lock_timeout_secs: 5
            })
        ));
        assert!(Cli::try_parse_from(["pmm-state", "migrate", "--lock-timeout-secs", "0"]).is_err());
    }

    impl Cli {
        fn command_debug_assert() {
            <Cli as clap::CommandFactory>::command().debug_assert();
        }
    }
}
