//! A host run as a `wsfn-host run` child process, for what only a process shows: its command
//! line and environment, its stdout announcements, its log on stderr, signals, restarts on
//! the same data directory, and being killed.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::WAIT;
use super::host::{HostBuilder, STARTUP_WAIT};
use super::test_dir::TestDir;

/// What the host prints on stdout, followed by the bound address, once it accepts WebSocket
/// connections. It may print other announcements (such as the admin API's address) too.
const READY_PREFIX: &str = "wsfn-host listening on ws://";

/// What the host prints on stdout, followed by the bound address, for its admin API.
const ADMIN_PREFIX: &str = "wsfn-host admin API on http://";

/// Enough of the log to see what led to a failure without drowning the test output.
const LOG_LINES_SHOWN_ON_FAILURE: usize = 200;

/// Environment variables the host and its client commands read. A developer's shell may
/// set them; the tests must not depend on that.
pub(super) const WSFN_ENVIRONMENT: &[&str] = &[
    "WSFN_ADMIN_TOKEN",
    "WSFN_ADMIN_URL",
    "WSFN_ADMIN_LISTEN",
    "WSFN_DATA_DIR",
    "WSFN_LISTEN",
    "WSFN_STATIC",
    "WSFN_CONFIG",
    "WSFN_SIGNING_KEY",
    "WSFN_STORE",
    "WSFN_REDIS_URL",
    "WSFN_LOG_FORMAT",
    // The host decides about colour itself; a test's own setting must not decide for it.
    "NO_COLOR",
];

/// A running `wsfn-host` child process; killed when dropped.
pub(super) struct HostProcess {
    child: Child,
    log_path: PathBuf,
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

/// A started process and the addresses it announced.
pub(super) struct Announced {
    pub process: HostProcess,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

/// Starts `wsfn-host run` for `builder` in `dir` and waits until it announces both listeners.
pub(super) async fn start(builder: &HostBuilder, dir: &TestDir) -> Announced {
    let log_path = dir
        .path()
        .join(format!("host-{}.log", dir.next_host_number()));
    let log = File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsfn-host"));
    command.arg("run");
    match &builder.config {
        Some(file) => command.arg("--config").arg(file),
        None => command.args(["--listen", "127.0.0.1:0"]),
    };
    command.args(&builder.options).args(&builder.functions);
    for variable in WSFN_ENVIRONMENT {
        command.env_remove(variable);
    }
    if let Some(token) = &builder.admin_token {
        command.env("WSFN_ADMIN_TOKEN", token);
    }
    if let Some(key) = &builder.signing_key {
        command.env("WSFN_SIGNING_KEY", key);
    }
    let mut child = command
        // Hosts of tests running in parallel must not share deployed functions or an
        // admin port; given as environment so the command line stays the one under test.
        .env("WSFN_DATA_DIR", dir.data_dir())
        .env("WSFN_ADMIN_LISTEN", "127.0.0.1:0")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("wsfn-host can be started");

    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout_lines = Arc::new(Mutex::new(Vec::new()));
    let mut new_lines = read_stdout_in_background(stdout, Arc::clone(&stdout_lines));
    // Built before waiting so that `Drop` kills the child and shows its log if the start fails.
    let mut process = HostProcess {
        child,
        log_path,
        stdout_lines,
    };
    let (addr, admin_addr) = wait_for_announcements(&mut new_lines, &mut process).await;
    Announced {
        process,
        addr,
        admin_addr,
    }
}

/// The addresses of both listeners, as the host announces them on stdout.
async fn wait_for_announcements(
    new_lines: &mut mpsc::UnboundedReceiver<String>,
    process: &mut HostProcess,
) -> (SocketAddr, SocketAddr) {
    // The admin API is announced right after the WebSocket listener; both are bound before
    // either line is printed.
    let waiting_for_ready_lines = async {
        let (mut ready, mut admin) = (None, None);
        while let Some(line) = new_lines.recv().await {
            if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                ready = Some(parse_listen_address(addr, &line));
            } else if let Some(addr) = line.strip_prefix(ADMIN_PREFIX) {
                admin = Some(parse_listen_address(addr, &line));
            }
            if let (Some(ready), Some(admin)) = (ready, admin) {
                return Some((ready, admin));
            }
        }
        None
    };
    match tokio::time::timeout(STARTUP_WAIT, waiting_for_ready_lines).await {
        Ok(Some(addresses)) => addresses,
        Ok(None) => panic!(
            "wsfn-host closed stdout without announcing both its listeners (exit status: {:?}, \
             stdout: {:?})",
            process.child.try_wait(),
            process.stdout_lines()
        ),
        Err(_) => panic!("wsfn-host did not announce both its listeners within {STARTUP_WAIT:?}"),
    }
}

/// Forwards every stdout line to the returned receiver and records it, so the host never
/// blocks on a full pipe and a test can check everything it printed.
fn read_stdout_in_background(
    stdout: std::process::ChildStdout,
    all_lines: Arc<Mutex<Vec<String>>>,
) -> mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            all_lines.lock().expect("not poisoned").push(line.clone());
            // Nobody listens once the host is ready; the line is recorded all the same.
            let _ = sender.send(line);
        }
    });
    receiver
}

fn parse_listen_address(addr: &str, line: &str) -> SocketAddr {
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|error| panic!("bad address in announcement {line:?}: {error}"));
    super::host::assert_bound_as_asked(addr, line);
    addr
}

impl HostProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the host to shut down gracefully, as a service manager would.
    pub fn send_sigterm(&self) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.child.id()))
            .status()
            .expect("sh can be run");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits (bounded) for the process to exit and returns how it exited.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be polled") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wsfn-host did not exit within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the host with SIGKILL and reaps it.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("wsfn-host can be killed");
        let status = self.child.wait().expect("the killed child can be reaped");
        assert_eq!(status.signal(), Some(9), "wsfn-host died of SIGKILL");
    }

    pub fn assert_still_running(&mut self) {
        let status = self.child.try_wait().expect("the child can be polled");
        assert!(
            status.is_none(),
            "wsfn-host exited unexpectedly: {status:?}"
        );
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().expect("not poisoned").clone()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|error| {
            panic!("cannot read the log {}: {error}", self.log_path.display())
        })
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            return;
        }
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN_ON_FAILURE)..];
        eprintln!(
            "----- last {} lines of wsfn-host stderr ({}) -----\n{}\n-----",
            tail.len(),
            self.log_path.display(),
            tail.join("\n")
        );
    }
}
