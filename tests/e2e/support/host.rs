//! Runs `wsfn-host` as a child process for one test.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, http::StatusCode};

use super::{Client, WAIT};

/// The host compiles every function before it reports ready, which can take a while on a
/// loaded machine; this only bounds a start that would otherwise hang.
const STARTUP_WAIT: Duration = Duration::from_secs(90);

/// What the host prints on stdout, followed by the bound address, once it accepts WebSocket
/// connections. It may print other announcements (such as the admin API's address) too.
const READY_PREFIX: &str = "wsfn-host listening on ws://";

/// Enough of the log to see what led to a failure without drowning the test output.
const LOG_LINES_SHOWN_ON_FAILURE: usize = 200;

/// Numbers the directories of the hosts started by this test process.
static HOSTS_STARTED: AtomicUsize = AtomicUsize::new(0);

/// The repository root (the host crate lives one level below it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate has a parent directory")
        .to_path_buf()
}

/// The prebuilt component for a sample function or a test fixture.
fn function_wasm(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target")
        .join("functions")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-functions.sh to build the sample functions and test \
         fixtures before running the end-to-end tests",
        path.display()
    );
    path
}

/// Which functions to serve and with which options.
#[derive(Default)]
pub struct HostBuilder {
    functions: Vec<String>,
    options: Vec<String>,
}

impl HostBuilder {
    /// Serves `target/functions/<name>.wasm` at `/<name>` (the name comes from the file stem).
    pub fn function(mut self, name: &str) -> Self {
        self.functions
            .push(function_wasm(name).display().to_string());
        self
    }

    /// Serves `target/functions/<file_stem>.wasm` at `/<served_as>`.
    pub fn function_served_as(mut self, served_as: &str, file_stem: &str) -> Self {
        self.functions.push(format!(
            "{served_as}={}",
            function_wasm(file_stem).display()
        ));
        self
    }

    /// Sets the per-event deadline of every guest call.
    pub fn event_timeout_ms(mut self, millis: u64) -> Self {
        self.options.push("--event-timeout-ms".into());
        self.options.push(millis.to_string());
        self
    }

    pub async fn start(self) -> Host {
        let dir = private_dir_for_this_test();
        let log_path = dir.join("host.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsfn-host"))
            .arg("run")
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.options)
            .args(&self.functions)
            // Hosts of tests running in parallel must not share deployed functions or an
            // admin port; given as environment so the command line stays the one under test.
            .env("WSFN_DATA_DIR", dir.join("data"))
            .env("WSFN_ADMIN_LISTEN", "127.0.0.1:0")
            // The log goes to a file that is shown on failure: keep it free of colour codes.
            .env("NO_COLOR", "1")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("wsfn-host can be started");

        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let mut new_lines = read_stdout_in_background(stdout, Arc::clone(&stdout_lines));

        // Built before waiting so that `Drop` kills the child and shows its log if the
        // start fails.
        let mut host = Host {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            stdout_lines,
        };
        let waiting_for_ready_line = async {
            while let Some(line) = new_lines.recv().await {
                if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                    return Some(parse_listen_address(addr, &line));
                }
            }
            None
        };
        host.addr = match tokio::time::timeout(STARTUP_WAIT, waiting_for_ready_line).await {
            Ok(Some(addr)) => addr,
            Ok(None) => panic!(
                "wsfn-host closed stdout without announcing that it listens (exit status: {:?})",
                host.child.try_wait()
            ),
            Err(_) => panic!("wsfn-host did not announce that it listens within {STARTUP_WAIT:?}"),
        };
        host
    }
}

/// A fresh directory under the target directory for one host, named after the running test:
/// it holds the host's data directory and its log, and is removed unless the test fails.
fn private_dir_for_this_test() -> PathBuf {
    // Tests run their body on the thread the test harness names after the test.
    let test_name: String = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let number = HOSTS_STARTED.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(format!("{test_name}-{}-{number}", std::process::id()));
    // A directory left by an earlier run of the same process id must not leak state in.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    dir
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
        .unwrap_or_else(|error| panic!("bad address in ready line {line:?}: {error}"));
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.1",
        "the host should listen where --listen asked"
    );
    assert_ne!(addr.port(), 0, "the ready line should name the bound port");
    addr
}

/// A running `wsfn-host`; killed when dropped.
pub struct Host {
    child: Child,
    addr: SocketAddr,
    /// The host's private directory: its data directory and its log.
    dir: PathBuf,
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

impl Host {
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The WebSocket URL of `path_and_query` (for example `chat?room=a&user=b`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "ws://{}/{}",
            self.addr,
            path_and_query.trim_start_matches('/')
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handshake request for `path_and_query`, to which a test may add headers.
    pub fn request(&self, path_and_query: &str) -> Request {
        self.url(path_and_query)
            .into_client_request()
            .expect("a valid WebSocket URL")
    }

    /// Opens a WebSocket, panicking if the handshake fails.
    pub async fn connect(&self, path_and_query: &str) -> Client {
        self.connect_with(self.request(path_and_query)).await.0
    }

    /// Opens a WebSocket with a prepared request and returns the handshake response too.
    pub async fn connect_with(&self, request: Request) -> (Client, Response) {
        let label = request.uri().to_string();
        let connecting = tokio_tungstenite::connect_async(request);
        match super::within(&format!("the handshake of {label}"), connecting).await {
            Ok((stream, response)) => (Client::new(stream, label), response),
            Err(error) => panic!("the handshake of {label} failed: {error}"),
        }
    }

    /// Attempts a handshake that the host must refuse, and returns the HTTP status it answered.
    pub async fn refused_handshake_status(&self, path_and_query: &str) -> StatusCode {
        let label = self.url(path_and_query);
        let connecting = tokio_tungstenite::connect_async(self.request(path_and_query));
        match super::within(&format!("the handshake of {label}"), connecting).await {
            Err(tungstenite::Error::Http(response)) => response.status(),
            Err(error) => panic!("{label} should be refused with an HTTP status, got: {error}"),
            Ok((_, response)) => panic!(
                "{label} should be refused, but the host upgraded it with {}",
                response.status()
            ),
        }
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

    pub fn assert_still_running(&mut self) {
        let status = self.child.try_wait().expect("the child can be polled");
        assert!(
            status.is_none(),
            "wsfn-host exited unexpectedly: {status:?}"
        );
    }

    /// Every line the host has printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().expect("not poisoned").clone()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Only a failed test's directory is worth keeping; the rest would pile up run after run.
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
            return;
        }
        let log_path = self.dir.join("host.log");
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN_ON_FAILURE)..];
        eprintln!(
            "----- last {} lines of wsfn-host stderr ({}) -----\n{}\n-----",
            tail.len(),
            log_path.display(),
            tail.join("\n")
        );
    }
}
