//! Spawning and stopping the native anvil binary.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Result, TestkitError};

/// Environment variable naming the anvil binary to run, checked before PATH.
pub const ANVIL_ENV: &str = "PMM_ANVIL";

/// Number of funded dev accounts anvil is started with.
pub const DEV_ACCOUNTS: usize = 10;

/// Chain id the devnet is started with.
pub const CHAIN_ID: u64 = 31337;

/// The repository root, derived from this crate's manifest directory at compile time.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Where the npm-installed native anvil lives inside the repository.
pub fn bundled_anvil_path() -> PathBuf {
    repo_root().join("tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// Finds anvil: `$PMM_ANVIL`, then `anvil` on PATH (skipping npm's `.bin` Node wrappers, whose
/// death would orphan the real binary), then the repository's npm install.
pub fn locate_anvil() -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(p) = std::env::var_os(ANVIL_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        searched.push(format!("${ANVIL_ENV}={}", p.display()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.ends_with("node_modules/.bin") {
                continue;
            }
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        searched.push("PATH".to_string());
    }
    let bundled = bundled_anvil_path();
    if bundled.is_file() {
        return Ok(bundled);
    }
    searched.push(bundled.display().to_string());
    Err(TestkitError::AnvilNotFound {
        searched: searched.join(", "),
    })
}

/// What anvil printed before it became ready.
struct Banner {
    port: u16,
    private_keys: Vec<String>,
}

/// A running anvil process; killed and reaped on drop, panics included.
#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    port: u16,
    private_keys: Vec<String>,
}

impl AnvilProcess {
    /// Starts `anvil --host 127.0.0.1 --port <port>` (0 = ephemeral) and waits up to `timeout`
    /// for the `Listening on` line.
    pub fn spawn(binary: &Path, port: u16, timeout: Duration) -> Result<Self> {
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--chain-id",
                &CHAIN_ID.to_string(),
                "--accounts",
                &DEV_ACCOUNTS.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| TestkitError::AnvilSpawn {
                path: binary.to_path_buf(),
                source,
            })?;

        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            stop(&mut child);
            return Err(TestkitError::AnvilNotReady(
                "stdout/stderr not captured".into(),
            ));
        };
        let (tx, rx) = mpsc::channel();
        // The reader keeps draining stdout after readiness: anvil logs every RPC call, and a
        // full pipe would block it.
        std::thread::spawn(move || read_banner(stdout, &tx));

        match rx.recv_timeout(timeout) {
            Ok(banner) => {
                // stderr is only read on failure; drain it too so anvil never blocks on it.
                std::thread::spawn(move || {
                    std::io::copy(&mut BufReader::new(stderr), &mut std::io::sink())
                });
                Ok(Self {
                    child,
                    port: banner.port,
                    private_keys: banner.private_keys,
                })
            }
            Err(e) => {
                stop(&mut child);
                let mut err = String::new();
                let _ = BufReader::new(stderr).take(4096).read_to_string(&mut err);
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("no listening address within {timeout:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        "anvil exited before listening".to_string()
                    }
                };
                Err(TestkitError::AnvilNotReady(format!(
                    "{why}; stderr: {}",
                    err.trim()
                )))
            }
        }
    }

    /// The TCP port anvil listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The OS process id, so tests can check the process is gone after drop.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The dev private keys anvil printed, hex with 0x, in account order.
    pub fn private_keys(&self) -> &[String] {
        &self.private_keys
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Kills and reaps, so no zombie or orphan outlives the owner.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_banner(stdout: impl Read, tx: &mpsc::Sender<Banner>) {
    let mut lines = BufReader::new(stdout).lines();
    let mut keys = Vec::new();
    let mut in_keys = false;
    for line in lines.by_ref() {
        let Ok(line) = line else { return };
        let line = line.trim();
        if line == "Private Keys" {
            in_keys = true;
            continue;
        }
        if in_keys {
            if let Some(key) = parse_indexed_hex(line) {
                keys.push(key);
            } else if !line.is_empty() && !line.starts_with('=') {
                in_keys = false;
            }
        }
        if let Some(port) = parse_listening(line) {
            if tx
                .send(Banner {
                    port,
                    private_keys: keys,
                })
                .is_err()
            {
                return;
            }
            break;
        }
    }
    for line in lines {
        match line {
            Ok(l) => tracing::trace!(target: "anvil", "{l}"),
            Err(_) => return,
        }
    }
}

/// Parses `(3) 0xabc...` into `0xabc...`.
fn parse_indexed_hex(line: &str) -> Option<String> {
    let rest = line.strip_prefix('(')?;
    let (idx, rest) = rest.split_once(')')?;
    idx.parse::<usize>().ok()?;
    let key = rest.trim();
    key.starts_with("0x").then(|| key.to_string())
}

/// Parses `Listening on 127.0.0.1:PORT`.
fn parse_listening(line: &str) -> Option<u16> {
    let addr = line.strip_prefix("Listening on ")?;
    addr.trim().rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_banner_lines() {
        assert_eq!(parse_listening("Listening on 127.0.0.1:41234"), Some(41234));
        assert_eq!(parse_listening("Listening on 127.0.0.1:x"), None);
        assert_eq!(parse_indexed_hex("(9) 0xabc"), Some("0xabc".into()));
        assert_eq!(parse_indexed_hex("(x) 0xabc"), None);
        assert_eq!(parse_indexed_hex("(0) 10000.000000000000000000 ETH"), None);
    }
}
