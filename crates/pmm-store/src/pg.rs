//! The Postgres side of the store: a connection pool and the helpers every table module shares.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::{Result, StoreError};

/// How long a connection attempt may take before the store reports Postgres unavailable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Typed access to the project's Postgres tables. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    endpoint: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Parses a Postgres connection string and fills in a connect timeout when it has none.
pub fn parse_pg_config(url: &str) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::InvalidPostgresUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// `host:port` list of a Postgres config, for messages that must not carry credentials.
pub fn pg_endpoint(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl PgStore {
    /// Builds a pool of at most `max_size` connections. Connections are opened lazily; call
    /// [`PgStore::ping`] to find out whether Postgres is actually reachable.
    pub fn connect(url: &str, max_size: usize) -> Result<Self> {
        let config = parse_pg_config(url)?;
        let endpoint = pg_endpoint(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(DEFAULT_CONNECT_TIMEOUT))
            .create_timeout(Some(DEFAULT_CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::InvalidPostgresUrl(e.to_string()))?;
        Ok(Self { pool, endpoint })
    }

    /// `host:port` of the database, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Checks out a pooled connection.
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::PostgresUnavailable {
                endpoint: self.endpoint.clone(),
                reason: pool_error_reason(e),
            })
    }

    /// Round-trips `SELECT 1`.
    pub async fn ping(&self) -> Result<()> {
        self.conn().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// The underlying driver message of a pool error, which names the real cause (refused,
/// authentication, unknown database) instead of deadpool's wrapper text.
fn pool_error_reason(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error_text(&e),
        other => other.to_string(),
    }
}

/// A driver error with its server-side message, when there is one.
pub(crate) fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}
