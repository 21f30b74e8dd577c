//! The real `pmm-state` binary against real Postgres and Redis.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pmm_testkit::db::{TestDb, TestRedis};

const BIN: &str = env!("CARGO_BIN_EXE_pmm-state");

fn pmm_state(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("PMM_REDIS_NAMESPACE")
        .env_remove("PMM_MIGRATIONS_DIR")
        .env("PMM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(args: &[&str]) -> Output {
    pmm_state(args).output().expect("run pmm-state")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Children that are killed if the test ends before they do.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn history(db: &TestDb) -> Vec<(i32, String)> {
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT version, name FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .expect("history");
    drop(client);
    task.abort();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn migration_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("migrations dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('V') && n.ends_with(".sql"))
        .collect();
    files.sort_by_key(|f| f[1..f.find("__").unwrap_or(1)].parse::<u32>().unwrap_or(0));
    files
}

#[tokio::test]
async fn migrate_fresh_then_again_is_a_no_op_and_status_lists_everything() {
    let db = TestDb::create().await.expect("db");
    let url = db.url().to_owned();

    let not_ready = run(&["check", "--stores", "postgres", "--database-url", &url]);
    assert_eq!(not_ready.status.code(), Some(1), "{}", stdout(&not_ready));
    assert!(stdout(&not_ready).contains("postgres: not ready"));

    let first = run(&["migrate", "--database-url", &url]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let files = migration_files();
    for f in &files {
        assert!(
            stdout(&first).contains(&format!("applied {f}")),
            "{}",
            stdout(&first)
        );
    }
    assert_eq!(history(&db).await.len(), files.len());

    let second = pmm_state(&["migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("run");
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(!stdout(&second).contains("applied V"));
    assert!(stdout(&second).contains("schema up to date"));
    assert_eq!(history(&db).await.len(), files.len());

    let status = run(&["status", "--database-url", &url]);
    assert_eq!(status.status.code(), Some(0));
    for f in &files {
        assert!(stdout(&status).contains(f.as_str()));
    }
    assert!(stdout(&status).contains(&format!("{} applied, 0 pending", files.len())));

    let ready = run(&["check", "--stores", "postgres", "--database-url", &url]);
    assert_eq!(ready.status.code(), Some(0), "{}", stdout(&ready));
}

#[tokio::test]
async fn four_concurrent_migrators_end_with_one_schema() {
    let db = TestDb::create().await.expect("db");
    let mut children = Children(Vec::new());
    for _ in 0..4 {
        children.0.push(
            pmm_state(&["migrate", "--database-url", db.url()])
                .spawn()
                .expect("spawn"),
        );
    }
    let mut applied_lines = 0;
    // Popped one at a time so that the ones not yet waited for stay in the guard if this panics.
    while let Some(child) = children.0.pop() {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        applied_lines += stdout(&out)
            .lines()
            .filter(|l| l.starts_with("applied "))
            .count();
    }
    let files = migration_files();
    assert_eq!(
        applied_lines,
        files.len(),
        "each migration applied exactly once"
    );
    let versions: Vec<i32> = history(&db).await.into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions.len(), files.len());
    let check = run(&["check", "--stores", "postgres", "--database-url", db.url()]);
    assert_eq!(check.status.code(), Some(0));
}

/// A copy of the migrations directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_with_its_file_named() {
    let db = TestDb::create().await.expect("db");
    let dir = TempDir(std::env::temp_dir().join(format!("pmm-state-mig-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("mkdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    for f in migration_files() {
        std::fs::copy(source.join(&f), dir.0.join(&f)).expect("copy");
    }
    let dir_arg = dir.0.to_string_lossy().into_owned();
    let first = run(&[
        "migrate",
        "--database-url",
        db.url(),
        "--migrations-dir",
        &dir_arg,
    ]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let edited = dir.0.join("V3__pool_snapshots.sql");
    let sql = std::fs::read_to_string(&edited).expect("read");
    std::fs::write(
        &edited,
        format!("{sql}\nCREATE INDEX extra_idx ON pool_snapshots (taken_at);\n"),
    )
    .expect("write");
    let refused = run(&[
        "migrate",
        "--database-url",
        db.url(),
        "--migrations-dir",
        &dir_arg,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("V3__pool_snapshots.sql") && err.contains("changed"),
        "{err}"
    );

    let status = run(&[
        "status",
        "--database-url",
        db.url(),
        "--migrations-dir",
        &dir_arg,
    ]);
    assert!(stdout(&status).contains("V3__pool_snapshots.sql"));
    assert!(stdout(&status).contains("CHANGED"));
    let check = run(&[
        "check",
        "--stores",
        "postgres",
        "--database-url",
        db.url(),
        "--migrations-dir",
        &dir_arg,
    ]);
    assert_eq!(check.status.code(), Some(1));

    // The embedded copy is untouched, so the same database is still current for it.
    let embedded = run(&["migrate", "--database-url", db.url()]);
    assert_eq!(embedded.status.code(), Some(0), "{}", stderr(&embedded));
}

#[tokio::test]
async fn a_tampered_history_checksum_is_refused() {
    let db = TestDb::create().await.expect("db");
    assert_eq!(
        run(&["migrate", "--database-url", db.url()]).status.code(),
        Some(0)
    );
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    client
        .execute(
            "UPDATE refinery_schema_history SET checksum = '12345' WHERE version = 1",
            &[],
        )
        .await
        .expect("tamper");
    drop(client);
    task.abort();
    let refused = run(&["migrate", "--database-url", db.url()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("V1__tool_calls.sql"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn bootstrap_twice_is_idempotent_and_check_follows_it() {
    let ns = TestRedis::new();
    let db = TestDb::create().await.expect("db");
    let migrated = run(&["migrate", "--database-url", db.url()]);
    assert_eq!(migrated.status.code(), Some(0), "{}", stderr(&migrated));
    let args = |cmd: &'static str| {
        let mut c = pmm_state(&[cmd]);
        c.env("REDIS_URL", ns.url())
            .env("DATABASE_URL", db.url())
            .env("PMM_REDIS_NAMESPACE", ns.namespace());
        c
    };
    // Without Postgres there is nothing to rebuild the policy state from: refused.
    let no_pg = pmm_state(&["bootstrap"])
        .env("REDIS_URL", ns.url())
        .env("PMM_REDIS_NAMESPACE", ns.namespace())
        .output()
        .expect("run");
    assert_eq!(no_pg.status.code(), Some(2), "{}", stderr(&no_pg));
    assert!(ns.keys().expect("keys").is_empty());
    let mut check = args("check");
    check.args(["--stores", "redis"]);
    let before = check.output().expect("check");
    assert_eq!(before.status.code(), Some(1));
    assert!(stdout(&before).contains("not bootstrapped"));

    let first = args("bootstrap").output().expect("bootstrap");
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stdout(&first).contains(&format!(
            "schema version {} recorded",
            pmm_store::redis::REDIS_SCHEMA_VERSION
        )),
        "{}",
        stdout(&first)
    );
    let keys = ns.keys().expect("keys");
    let second = args("bootstrap").output().expect("bootstrap again");
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("already current"),
        "{}",
        stdout(&second)
    );
    assert_eq!(ns.keys().expect("keys"), keys);
    assert_eq!(keys, vec![format!("{}pmm:schema_version", ns.namespace())]);

    let after = check.output().expect("check");
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
}

#[test]
fn bad_urls_and_refused_connections_are_one_line_without_secrets() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "migrate",
                "--database-url",
                "postgres://u:s3cret@127.0.0.1:notaport/db",
            ],
            "invalid Postgres URL",
        ),
        (
            &[
                "migrate",
                "--database-url",
                "postgres://u:s3cret@127.0.0.1:1/db",
            ],
            "cannot connect to Postgres at 127.0.0.1:1",
        ),
        (
            &["bootstrap", "--redis-url", "redis://:s3cret@127.0.0.1:1"],
            "Redis unavailable at 127.0.0.1:1",
        ),
        (
            &["bootstrap", "--redis-url", "ftp://s3cret@x"],
            "invalid Redis URL",
        ),
    ];
    for (args, expected) in cases {
        let out = pmm_state(args)
            .env("PMM_LOG", "info")
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("s3cret"), "{args:?}: {err}");
    }
    let missing = run(&["migrate"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("pass --database-url or set DATABASE_URL"));
}

#[test]
fn help_explains_each_command() {
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    for cmd in [
        "migrate",
        "status",
        "bootstrap",
        "check",
        "DATABASE_URL",
        "REDIS_URL",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    let migrate_help = stdout(&run(&["migrate", "--help"]));
    assert!(migrate_help.contains("advisory lock"));
    assert!(migrate_help.contains("--lock-timeout-secs"));
}

/// `CONFIG SET maxmemory-policy <policy>` on the Redis at `port`, in the RESP wire format.
fn set_eviction_policy(port: u16, policy: &str) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let args = ["CONFIG", "SET", "maxmemory-policy", policy];
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(req.as_bytes()).expect("write");
    let mut reply = [0u8; 5];
    conn.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"+OK\r\n");
}

#[tokio::test]
async fn bootstrap_sets_noeviction_and_check_refuses_an_evicting_redis() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _redis = Children(vec![
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "allkeys-lru"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}");
    let db = TestDb::create().await.expect("db");
    let migrated = run(&["migrate", "--database-url", db.url()]);
    assert_eq!(migrated.status.code(), Some(0), "{}", stderr(&migrated));
    let args = |cmd: &'static str| {
        let mut c = pmm_state(&[cmd]);
        c.env("REDIS_URL", &url).env("DATABASE_URL", db.url());
        if cmd == "check" {
            c.args(["--stores", "redis"]);
        }
        c
    };

    let boot = args("bootstrap").output().expect("bootstrap");
    assert_eq!(boot.status.code(), Some(0), "{}", stderr(&boot));
    assert!(
        stdout(&boot).contains("maxmemory-policy was allkeys-lru, set to noeviction"),
        "{}",
        stdout(&boot)
    );
    let ready = args("check").output().expect("check");
    assert_eq!(ready.status.code(), Some(0), "{}", stdout(&ready));
    assert!(stdout(&ready).contains("maxmemory-policy noeviction"));

    // Bootstrapped, then switched to a policy that may evict: not ready, and says why.
    set_eviction_policy(port, "allkeys-lru");
    let evicting = args("check").output().expect("check");
    assert_eq!(evicting.status.code(), Some(1), "{}", stdout(&evicting));
    assert!(
        stdout(&evicting).contains("maxmemory-policy is allkeys-lru"),
        "{}",
        stdout(&evicting)
    );
}
