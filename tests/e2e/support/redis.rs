//! A real `redis-server` for one test, on a free loopback port, with its data in a fresh
//! directory. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TestDir;

/// How long `redis-server` may take to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: Arc<TestDir>,
}

/// A port nobody listens on right now. Redis binds it a moment later; a clash with another
/// test is possible but shows up as a clear startup failure, never as a wrong result.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}

impl RedisServer {
    /// Starts `redis-server` without persistence (tests of durability use the embedded store).
    pub fn start(dir: &Arc<TestDir>) -> Self {
        let data: PathBuf = dir.path().join(format!("redis-{}", std::process::id()));
        std::fs::create_dir_all(&data).expect("cannot create the Redis directory");
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start redis-server: install it (scripts/setup.sh does)");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + STARTUP_WAIT;
        if ready_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            let _ = child.kill();
            panic!("redis-server did not become ready on port {port}");
        }
        Self {
            child,
            port,
            _dir: dir.clone(),
        }
    }

    /// The process id, to pause and resume the server (SIGSTOP, SIGCONT) as an outage would.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a command with `redis-cli` against this server and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("cannot run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
