//! A fresh Postgres database and a fresh Redis key namespace per test.
//!
//! [`TestDb`] creates a uniquely named database on the server of `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and force-drops it on drop. [`TestRedis`] hands
//! out a unique key prefix on `REDIS_URL` (default `redis://127.0.0.1:6379`) and deletes every key
//! under it on drop. Both clean up when a test panics, inside or outside a tokio runtime.

use std::time::Duration;

use deadpool_redis::redis;
use tokio_postgres::NoTls;

/// Server used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Server used when `REDIS_URL` is unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Why a test database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    /// The admin connection string did not parse or the server was unreachable.
    #[error("cannot connect to Postgres for test databases: {0}")]
    Connect(#[source] tokio_postgres::Error),
    /// `CREATE DATABASE` failed.
    #[error("cannot create test database {name}: {source}")]
    Create {
        /// The database name.
        name: String,
        /// Driver error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// A database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `url` with its database replaced by `db`, for both URL and key=value connection strings.
fn with_database(url: &str, db: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={db}");
    };
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_start = scheme_end + 3;
    let host_part = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

async fn admin_client(admin_url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl TestDb {
    /// Creates a new empty database named `pmm_test_<uuid>`.
    pub async fn create() -> Result<Self, TestDbError> {
        let admin_url = env_or("DATABASE_URL", DEFAULT_DATABASE_URL);
        let name = format!("pmm_test_{}", unique_suffix());
        let client = admin_client(&admin_url)
            .await
            .map_err(TestDbError::Connect)?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|source| TestDbError::Create {
                name: name.clone(),
                source,
            })?;
        let url = with_database(&admin_url, &name);
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }

    /// Connection string of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of the test database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A fresh thread with its own runtime works whether or not the dropping thread is
        // inside a runtime (block_on there would panic) and whatever state that runtime is in.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = admin_client(&admin_url).await.map_err(|e| e.to_string())?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "pmm-testkit: could not drop test database {}: {e}",
                self.name
            ),
            Err(_) => eprintln!("pmm-testkit: dropping test database {} panicked", self.name),
        }
    }
}

/// A Redis key namespace that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    namespace: String,
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRedis {
    /// A new namespace `pmmtest:<uuid>:` on `REDIS_URL`. Nothing is written until the test
    /// writes.
    pub fn new() -> Self {
        Self {
            url: env_or("REDIS_URL", DEFAULT_REDIS_URL),
            namespace: format!("pmmtest:{}:", unique_suffix()),
        }
    }

    /// Connection string of the Redis server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Key prefix to hand to the code under test.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Keys currently under the namespace (sorted), for assertions.
    pub fn keys(&self) -> Result<Vec<String>, redis::RedisError> {
        let mut conn = self.connect()?;
        let mut keys: Vec<String> =
            redis::Commands::scan_match::<_, String>(&mut conn, format!("{}*", self.namespace))?
                .collect::<Result<_, _>>()?;
        keys.sort();
        Ok(keys)
    }

    fn connect(&self) -> Result<redis::Connection, redis::RedisError> {
        redis::Client::open(self.url.as_str())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    fn delete_all(&self) -> Result<(), redis::RedisError> {
        let keys = self.keys()?;
        if !keys.is_empty() {
            let mut conn = self.connect()?;
            let _: u64 = redis::cmd("DEL").arg(&keys).query(&mut conn)?;
        }
        Ok(())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // The sync client needs no runtime, so this works in and out of async code.
        if let Err(e) = self.delete_all() {
            eprintln!(
                "pmm-testkit: could not clear Redis namespace {}: {e}",
                self.namespace
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_every_url_shape() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h:1/db?sslmode=disable", "t2"),
            "postgresql://u:p@h:1/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
        assert_eq!(
            with_database("host=h user=u dbname=x", "t4"),
            "host=h user=u dbname=x dbname=t4"
        );
    }
}
