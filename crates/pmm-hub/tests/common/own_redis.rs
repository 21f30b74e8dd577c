//! A redis-server of a test's own, for tests that flush, restart or reconfigure it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of this test's own, without persistence, on an ephemeral 127.0.0.1 port:
/// the shared Redis is never flushed or restarted. Killed on drop.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut r = Self { port, child: None };
        r.spawn()?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server and starts a new one on the same port: everything in it is gone.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// `FLUSHALL` (this server only).
    pub fn flushall(&self) -> anyhow::Result<()> {
        self.command(&["FLUSHALL"])
    }

    /// `CONFIG SET <name> <value>` (this server only).
    pub fn config_set(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.command(&["CONFIG", "SET", name, value])
    }

    /// Sends one command in the RESP wire format and expects `+OK`.
    fn command(&self, args: &[&str]) -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        conn.write_all(req.as_bytes())?;
        let mut reply = [0u8; 5];
        conn.read_exact(&mut reply)?;
        anyhow::ensure!(&reply == b"+OK\r\n", "{args:?}: {reply:?}");
        Ok(())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
