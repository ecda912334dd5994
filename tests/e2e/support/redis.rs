//! A real `redis-server` for one test, on a free loopback port, with its data in a fresh
//! directory. Killed when dropped.
//!
//! Also what every Redis fixture shares (see `redis_cluster.rs` and `redis_sentinel.rs`):
//! starting a `redis-server` and waiting until it accepts connections, free ports, and
//! `redis-cli`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TestDir;

/// How long `redis-server` may take to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

/// What a `redis-server` (primary, replica or cluster node) logs once it accepts connections.
const READY: &str = "Ready to accept connections";

pub struct RedisServer {
    child: Child,
    port: u16,
    data: PathBuf,
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

/// `count` distinct ports nobody listens on right now (see [`free_port`]), for the processes
/// of one fixture: each is held until all are found, so none is handed out twice.
pub(super) fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot find a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .expect("a bound listener has an address")
        })
        .collect()
}

/// Creates the directory a Redis process of a test keeps its files in.
pub(super) fn create_dir(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
}

/// Starts `redis-server` with `args` and waits until its output has a line containing
/// `ready`: each mode of Redis announces in its own words that it accepts connections
/// ([`READY`] for a server, a `+monitor` event for a Sentinel).
///
/// Its output goes on being read (so Redis never blocks on a full pipe) into `redis.log` in
/// `log_dir`, which a failed test leaves behind. `what` names the process in a failure.
pub(super) fn spawn_redis_server(
    what: &str,
    log_dir: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ready: &str,
) -> Child {
    let log_path = log_dir.join("redis.log");
    let mut log = File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let mut child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start redis-server: install it (scripts/setup.sh does)");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ready = ready.to_owned();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The log is only there to read after a failure; losing a line of it is harmless.
            let _ = writeln!(log, "{line}");
            if line.contains(&ready)
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
        let _ = child.wait();
        panic!(
            "{what} did not become ready within {STARTUP_WAIT:?} (its output is in {})",
            log_path.display()
        );
    }
    child
}

/// Starts a `redis-server` on `port` that listens on loopback only, persists nothing (tests
/// of durability use the embedded store) and keeps its files in `data`, with `extra` options.
pub(super) fn start_server(
    port: u16,
    data: &Path,
    extra: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Child {
    let mut args: Vec<OsString> = ["--bind", "127.0.0.1", "--port", &port.to_string()]
        .into_iter()
        .chain(["--save", "", "--appendonly", "no", "--dir"])
        .map(OsString::from)
        .collect();
    args.push(data.as_os_str().to_owned());
    args.extend(extra.into_iter().map(|arg| arg.as_ref().to_owned()));
    spawn_redis_server(&format!("redis-server on port {port}"), data, args, READY)
}

/// Runs `redis-cli` with `args` against the server on `port`: what it printed, or why it
/// failed.
fn run_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|error| format!("cannot run redis-cli: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `redis-cli` with `args` against the server on `port`; `None` if it failed (for polls,
/// where a server may not answer yet).
pub(super) fn try_cli(port: u16, args: &[&str]) -> Option<String> {
    run_cli(port, args).ok()
}

/// Runs `redis-cli` with `args` against the server on `port` and returns what it printed.
pub(super) fn cli(port: u16, args: &[&str]) -> String {
    run_cli(port, args)
        .unwrap_or_else(|error| panic!("redis-cli {args:?} against port {port} failed: {error}"))
}

/// Kills a Redis process of a fixture and reaps it.
pub(super) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl RedisServer {
    /// Starts `redis-server` without persistence (tests of durability use the embedded store).
    pub fn start(dir: &Arc<TestDir>) -> Self {
        let data: PathBuf = dir.path().join(format!("redis-{}", std::process::id()));
        create_dir(&data);
        let port = free_port();
        let child = start_server(port, &data, ["--protected-mode", "yes"]);
        Self {
            child,
            port,
            data,
            _dir: dir.clone(),
        }
    }

    /// Kills the server (SIGKILL) without starting another.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its port after [`RedisServer::kill`], empty, as a restart
    /// without persistence leaves it. Returns once it accepts connections.
    pub fn start_again(&mut self) {
        self.child = start_server(self.port, &self.data, ["--protected-mode", "yes"]);
    }

    /// The process id, to pause and resume the server (SIGSTOP, SIGCONT) as an outage would.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a command with `redis-cli` against this server and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
