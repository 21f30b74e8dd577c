//! Schema migrations: the SQL files of the repository's `migrations/` directory, applied by
//! refinery under a Postgres advisory lock so that any number of concurrent starts end with one
//! schema.
//!
//! refinery keeps the bookkeeping (`refinery_schema_history`, one transaction per migration,
//! refusal of changed or missing migrations); this module adds the lock with a timeout, line-ending
//! normalization before checksumming, and errors that name the offending file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use refinery::error::Kind;
use refinery::{Migration, Runner};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::StoreError;
use crate::pg::{db_error_text, parse_pg_config, pg_endpoint};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Advisory lock key every migrator takes ("pmm_migr" in ASCII), so runs never interleave.
pub const MIGRATION_LOCK_KEY: i64 = 0x706d_6d5f_6d69_6772;

/// Table refinery records applied migrations in.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// Why a migration run or status query failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The Postgres connection string did not parse.
    #[error("invalid Postgres URL: {0}")]
    InvalidUrl(String),
    /// Postgres could not be reached.
    #[error("cannot connect to Postgres at {endpoint}: {reason}")]
    Connect {
        /// host:port, without credentials.
        endpoint: String,
        /// What the driver reported.
        reason: String,
    },
    /// Another migrator held the lock for longer than the timeout.
    #[error("timed out after {0:?} waiting for the migration lock (another migrator is running)")]
    LockTimeout(Duration),
    /// The lock timeout is zero, which Postgres would read as "wait forever".
    #[error("invalid lock timeout: must be at least 1 ms")]
    InvalidLockTimeout,
    /// Migration files could not be read.
    #[error("cannot load migrations from {dir}: {reason}")]
    Load {
        /// The directory.
        dir: PathBuf,
        /// Why loading failed.
        reason: String,
    },
    /// An applied migration's file has changed since it was applied.
    #[error(
        "migration {file} was changed after it was applied (checksum differs); refusing to migrate"
    )]
    Changed {
        /// File name, e.g. `V1__tool_calls.sql`.
        file: String,
    },
    /// An applied migration has no file any more.
    #[error("migration {file} was applied but is missing from the migrations; refusing to migrate")]
    Missing {
        /// File name of the applied migration.
        file: String,
    },
    /// A migration file has a version below the newest applied one but was never applied.
    #[error(
        "migration {file} is older than the applied schema but was never applied; refusing to migrate"
    )]
    OutOfOrder {
        /// File name of the unapplied migration.
        file: String,
    },
    /// Two files share a version number.
    #[error("migration {file} repeats a version number")]
    Repeated {
        /// One of the files.
        file: String,
    },
    /// A statement failed (inside a migration or in the bookkeeping).
    #[error("{context}: {reason}")]
    Database {
        /// What was being done, e.g. `error applying migration V2__agent_decisions`.
        context: String,
        /// The server's message.
        reason: String,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Database {
            context: "Postgres error".into(),
            reason: db_error_text(&e),
        }
    }
}

/// One migration, as shown by `status` and in run reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Version number from the file name.
    pub version: i32,
    /// Name part of the file name.
    pub name: String,
    /// refinery checksum over name, version and line-ending-normalized SQL.
    pub checksum: u64,
    /// When it was applied, for applied migrations.
    pub applied_on: Option<chrono::DateTime<chrono::Utc>>,
}

impl MigrationInfo {
    /// The file name this migration comes from, e.g. `V1__tool_calls.sql`.
    pub fn file(&self) -> String {
        file_name(self.version, &self.name)
    }

    fn from_migration(m: &Migration) -> Self {
        Self {
            version: m.version(),
            name: m.name().to_owned(),
            checksum: m.checksum(),
            applied_on: m
                .applied_on()
                .and_then(|t| chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())),
        }
    }
}

/// The migrations a run applies: embedded in the binary, or read from a directory (tests,
/// emergency fixes).
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
    source: String,
}

/// Line endings differ between checkouts (Windows, `core.autocrlf`); the checksum must not.
fn normalize_line_endings(sql: &str) -> String {
    sql.replace("\r\n", "\n").replace('\r', "\n")
}

/// A copy of `m` with normalized line endings. A migration without SQL is refused rather than
/// applied (and recorded) as an empty one, and so is one with its own transaction control.
fn normalized(m: &Migration) -> Result<Migration, String> {
    let name = format!("{}{}__{}", m.prefix(), m.version(), m.name());
    let sql = m
        .sql()
        .ok_or_else(|| format!("{} has no SQL", migration_file(m)))?;
    if let Some(keyword) = top_level_transaction_control(sql) {
        return Err(format!(
            "{}: top-level {keyword}: each migration already runs in one transaction, and its \
             own COMMIT would keep half a file when a later statement fails",
            migration_file(m)
        ));
    }
    Migration::unapplied(&name, &normalize_line_endings(sql)).map_err(|e| e.to_string())
}

/// The first statement of `sql` that controls the transaction (BEGIN, COMMIT, ...), looking
/// past comments, string literals and dollar-quoted bodies, where such words are harmless.
fn top_level_transaction_control(sql: &str) -> Option<String> {
    const CONTROL: [&str; 7] = [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "END",
        "ABORT",
        "START",
        "SAVEPOINT",
    ];
    let mut statement = String::new();
    let mut statements = Vec::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let skip = if rest.starts_with("--") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |i| i + 2)
        } else if c == '\'' {
            rest[1..].find('\'').map_or(rest.len(), |i| i + 2)
        } else if c == '$' {
            // A dollar quote is $tag$ ... $tag$ with an identifier-like (possibly empty) tag.
            match rest[1..].find('$') {
                Some(end)
                    if rest[1..=end]
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
                {
                    let tag = &rest[..end + 2];
                    rest[tag.len()..]
                        .find(tag)
                        .map_or(rest.len(), |i| tag.len() + i + tag.len())
                }
                _ => c.len_utf8(),
            }
        } else {
            if c == ';' {
                statements.push(std::mem::take(&mut statement));
            } else {
                statement.push(c);
            }
            c.len_utf8()
        };
        if skip > c.len_utf8() || c == '$' {
            // Quoted or commented text stands for a word boundary, never for a keyword.
            statement.push(' ');
        }
        rest = &rest[skip..];
    }
    statements.push(statement);
    statements.iter().find_map(|st| {
        let first = st.split_whitespace().next()?.to_ascii_uppercase();
        CONTROL.contains(&first.as_str()).then_some(first)
    })
}

/// The file name a migration comes from, e.g. `V1__tool_calls.sql`.
fn migration_file(m: &Migration) -> String {
    file_name(m.version(), m.name())
}

fn file_name(version: i32, name: &str) -> String {
    format!("V{version}__{name}.sql")
}

impl MigrationSet {
    /// The migrations compiled into this binary from the repository's `migrations/` directory.
    pub fn embedded() -> Result<Self, MigrateError> {
        let runner = embedded::migrations::runner();
        let migrations = runner
            .get_migrations()
            .iter()
            .map(normalized)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| MigrateError::Load {
                dir: PathBuf::from("<embedded>"),
                reason,
            })?;
        Ok(Self {
            migrations,
            source: "embedded".into(),
        })
    }

    /// Reads `V<n>__<name>.sql` files from `dir` instead of the embedded copy.
    pub fn from_dir(dir: &Path) -> Result<Self, MigrateError> {
        let load_err = |reason: String| MigrateError::Load {
            dir: dir.to_path_buf(),
            reason,
        };
        let migrations = refinery::load_sql_migrations(dir)
            .map_err(|e| load_err(e.to_string()))?
            .iter()
            .map(normalized)
            .collect::<Result<Vec<_>, _>>()
            .map_err(load_err)?;
        if migrations.is_empty() {
            return Err(load_err("no V<n>__<name>.sql files found".into()));
        }
        Ok(Self {
            migrations,
            source: dir.display().to_string(),
        })
    }

    /// Where the migrations come from: `embedded` or the directory path.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The migrations, by version.
    pub fn migrations(&self) -> Vec<MigrationInfo> {
        let mut all: Vec<_> = self
            .migrations
            .iter()
            .map(MigrationInfo::from_migration)
            .collect();
        all.sort_by_key(|m| m.version);
        all
    }

    fn runner(&self) -> Runner {
        Runner::new(&self.migrations)
            .set_abort_divergent(true)
            .set_abort_missing(true)
            .set_grouped(false)
    }

    fn contains_version(&self, version: i32) -> bool {
        self.migrations.iter().any(|m| m.version() == version)
    }
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Migrations applied by this run, in order; empty when the schema was already current.
    pub applied: Vec<MigrationInfo>,
    /// Highest applied version after the run.
    pub schema_version: Option<i32>,
}

/// Applied versus known migrations, without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Migrations recorded in the history table.
    pub applied: Vec<MigrationInfo>,
    /// Known migrations not applied yet.
    pub pending: Vec<MigrationInfo>,
    /// Applied migrations whose file changed (by file name).
    pub changed: Vec<String>,
    /// Applied migrations with no file (by file name).
    pub missing: Vec<String>,
}

impl SchemaStatus {
    /// True when every known migration is applied and none drifted.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.changed.is_empty() && self.missing.is_empty()
    }
}

/// One dedicated Postgres session: the advisory lock is per session, so the lock and refinery
/// must share this connection rather than a pool.
pub struct Migrator {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Migrator {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Migrator {
    /// Opens the session. A bad URL or an unreachable server is a single-line error.
    pub async fn connect(url: &str) -> Result<Self, MigrateError> {
        let config = parse_pg_config(url).map_err(|e| match e {
            StoreError::InvalidPostgresUrl(reason) => MigrateError::InvalidUrl(reason),
            other => MigrateError::InvalidUrl(other.to_string()),
        })?;
        let endpoint = pg_endpoint(&config);
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| MigrateError::Connect {
                    endpoint,
                    reason: db_error_text(&e),
                })?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "migration connection ended");
            }
        });
        Ok(Self { client, connection })
    }

    /// Applies pending migrations while holding the migration advisory lock, waiting at most
    /// `lock_timeout` for it. Each migration runs in its own transaction; a changed, missing or
    /// out-of-order migration stops the run before anything is applied.
    pub async fn migrate(
        &mut self,
        set: &MigrationSet,
        lock_timeout: Duration,
    ) -> Result<MigrateReport, MigrateError> {
        self.lock(lock_timeout).await?;
        let result = self.migrate_locked(set).await;
        // The lock also ends with the session; unlocking explicitly lets the next waiter in now.
        let unlock = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        let report = result?;
        unlock?;
        Ok(report)
    }

    async fn lock(&mut self, timeout: Duration) -> Result<(), MigrateError> {
        let millis = timeout.as_millis();
        if millis == 0 {
            return Err(MigrateError::InvalidLockTimeout);
        }
        self.client
            .batch_execute(&format!("SET lock_timeout = '{millis}ms'"))
            .await?;
        let locked = self
            .client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        self.client.batch_execute("RESET lock_timeout").await?;
        match locked {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                Err(MigrateError::LockTimeout(timeout))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn migrate_locked(&mut self, set: &MigrationSet) -> Result<MigrateReport, MigrateError> {
        let report = set
            .runner()
            .run_async(&mut self.client)
            .await
            .map_err(|e| map_refinery_error(e, set))?;
        let applied: Vec<MigrationInfo> = report
            .applied_migrations()
            .iter()
            .map(MigrationInfo::from_migration)
            .collect();
        let schema_version = self.applied(set).await?.last().map(|m| m.version);
        Ok(MigrateReport {
            applied,
            schema_version,
        })
    }

    async fn applied(&mut self, set: &MigrationSet) -> Result<Vec<MigrationInfo>, MigrateError> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
            .await?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let applied = set
            .runner()
            .get_applied_migrations_async(&mut self.client)
            .await
            .map_err(|e| map_refinery_error(e, set))?;
        Ok(applied.iter().map(MigrationInfo::from_migration).collect())
    }

    /// Compares the history table with `set` without taking the lock or changing anything.
    pub async fn status(&mut self, set: &MigrationSet) -> Result<SchemaStatus, MigrateError> {
        let applied = self.applied(set).await?;
        let known = set.migrations();
        let mut changed = Vec::new();
        let mut missing = Vec::new();
        for app in &applied {
            match known.iter().find(|k| k.version == app.version) {
                None => missing.push(app.file()),
                Some(k) if k.name != app.name || k.checksum != app.checksum => {
                    changed.push(k.file())
                }
                Some(_) => {}
            }
        }
        let pending = known
            .into_iter()
            .filter(|k| !applied.iter().any(|a| a.version == k.version))
            .collect();
        Ok(SchemaStatus {
            applied,
            pending,
            changed,
            missing,
        })
    }
}

fn map_refinery_error(e: refinery::Error, set: &MigrationSet) -> MigrateError {
    match e.kind() {
        Kind::DivergentVersion(_applied, on_disk) => MigrateError::Changed {
            file: migration_file(on_disk),
        },
        Kind::MissingVersion(m) if set.contains_version(m.version()) => MigrateError::OutOfOrder {
            file: migration_file(m),
        },
        Kind::MissingVersion(m) => MigrateError::Missing {
            file: migration_file(m),
        },
        Kind::RepeatedVersion(m) => MigrateError::Repeated {
            file: migration_file(m),
        },
        Kind::Connection(context, source) => MigrateError::Database {
            context: context.clone(),
            reason: match source.downcast_ref::<tokio_postgres::Error>() {
                Some(pg) => db_error_text(pg),
                None => source.to_string(),
            },
        },
        other => MigrateError::Database {
            context: "migration bookkeeping".into(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_transaction_control_is_found_and_quoted_text_is_not() {
        for (sql, found) in [
            (
                "CREATE TABLE a (x int); COMMIT; CREATE TABLE b (y int);",
                Some("COMMIT"),
            ),
            ("BEGIN;\nCREATE TABLE a (x int);", Some("BEGIN")),
            ("select $1; commit", Some("COMMIT")),
            ("CREATE TABLE a (x int);\n  rollback ;", Some("ROLLBACK")),
            ("DO $$ BEGIN PERFORM 1; END $$;", None),
            (
                "CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN RETURN NEW; END; $body$ \
                 LANGUAGE plpgsql;",
                None,
            ),
            ("-- COMMIT;\nSELECT 1;", None),
            ("SELECT 'x; COMMIT';", None),
            ("/* BEGIN; */ SELECT 1", None),
            ("CREATE TABLE committed (x int);", None),
        ] {
            assert_eq!(
                top_level_transaction_control(sql).as_deref(),
                found,
                "{sql}"
            );
        }
    }

    #[test]
    fn the_committed_migrations_have_no_transaction_control() {
        let set = MigrationSet::embedded().expect("embedded migrations load");
        assert!(!set.migrations().is_empty());
    }

    #[test]
    fn a_file_with_its_own_commit_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("pmm-migrate-commit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("V1__ok.sql"), "CREATE TABLE a (x int);\n").expect("write");
        std::fs::write(
            dir.join("V2__half.sql"),
            "CREATE TABLE b (x int);\nCOMMIT;\nCREATE TABLE c (y int);\n",
        )
        .expect("write");
        let err = MigrationSet::from_dir(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            err.contains("V2__half.sql") && err.contains("COMMIT"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_named_once() {
        let err = Migrator::connect("postgres://x@127.0.0.1:notaport/db")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err.matches("invalid Postgres URL").count(), 1, "{err}");
    }
}
