//! The hub binary as a child process, for tests that need its own output or its own memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// The hub process; killed on drop, whatever the test's outcome.
pub struct HubProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl HubProcess {
    /// Runs `pmm-hub --config` with `cfg` (a [`pmm_hub::HubConfig`] as JSON) on a free
    /// loopback port, its stdout and stderr in `log`, `RUST_LOG` set to `rust_log`.
    pub fn spawn(dir: &Path, mut cfg: Value, rust_log: &str, log: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        cfg["listen"] = json!(format!("127.0.0.1:{port}"));
        let config = dir.join(format!("hub-{port}.json"));
        std::fs::write(&config, cfg.to_string())?;
        let out = std::fs::File::create(log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_pmm-hub"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", rust_log)
            .env_remove("RPC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
