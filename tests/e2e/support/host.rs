//! Runs `wsfn-host` as a child process for one test.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, http::StatusCode};

use super::{Admin, Client, WAIT};

/// The host compiles every function before it reports ready, which can take a while on a
/// loaded machine (a component embedding CPython takes wasmtime tens of seconds, more when
/// several compile at once); this only bounds a start that would otherwise hang.
const STARTUP_WAIT: Duration = Duration::from_secs(300);

/// What the host prints on stdout, followed by the bound address, once it accepts WebSocket
/// connections. It may print other announcements (such as the admin API's address) too.
const READY_PREFIX: &str = "wsfn-host listening on ws://";

/// What the host prints on stdout, followed by the bound address, for its admin API.
const ADMIN_PREFIX: &str = "wsfn-host admin API on http://";

/// Enough of the log to see what led to a failure without drowning the test output.
const LOG_LINES_SHOWN_ON_FAILURE: usize = 200;

/// Numbers the directories of the hosts started by this test process.
static DIRS_CREATED: AtomicUsize = AtomicUsize::new(0);

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
];

/// The repository root (the host crate lives one level below it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate has a parent directory")
        .to_path_buf()
}

/// The prebuilt component for a sample function or a test fixture.
pub fn function_wasm(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target")
        .join("functions")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-functions.sh (with --other-languages for the Python \
         and JavaScript builds) to build the sample functions and test fixtures before running \
         the end-to-end tests",
        path.display()
    );
    path
}

/// The bytes of a prebuilt component, for uploading through the admin API.
pub fn function_bytes(name: &str) -> Vec<u8> {
    let path = function_wasm(name);
    fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// A fresh directory under the target directory, named after the running test. It holds
/// the data directory and logs of the hosts that use it, and is removed when the last user
/// lets go of it, unless the test is failing.
pub struct TestDir {
    path: PathBuf,
    /// Numbers the logs of the hosts started in this directory.
    hosts_started: AtomicUsize,
    /// Whether the directory outlives its last user (see [`TestDir::kept_at`]).
    kept: bool,
}

impl TestDir {
    pub fn new() -> Arc<Self> {
        // Tests run their body on the thread the test harness names after the test.
        let test_name: String = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let number = DIRS_CREATED.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e")
            .join(format!("{test_name}-{}-{number}", std::process::id()));
        // A directory left by an earlier run of the same process id must not leak state in.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        Arc::new(Self {
            path,
            hosts_started: AtomicUsize::new(0),
            kept: false,
        })
    }

    /// A fresh directory at `path` that is not removed when dropped, for what outlives a test.
    pub fn kept_at(path: PathBuf) -> Arc<Self> {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        Arc::new(Self {
            path,
            hosts_started: AtomicUsize::new(0),
            kept: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host's `--data-dir`: deployed versions, compiled code, the generated admin token.
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Only a failed test's directory is worth keeping; the rest would pile up run after run.
        if !self.kept && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The directory of a host that has exited, from which another host can start on the same
/// data directory.
pub struct StoppedHost {
    dir: Arc<TestDir>,
}

/// Which functions to serve and with which options.
#[derive(Default)]
pub struct HostBuilder {
    functions: Vec<String>,
    options: Vec<String>,
    admin_token: Option<String>,
    signing_key: Option<String>,
    /// A config file that names the listen address itself.
    config: Option<PathBuf>,
    dir: Option<Arc<TestDir>>,
    /// `(served_as, file_stem)` of functions whose data directory comes precompiled.
    precompiled: Vec<(String, String)>,
}

impl HostBuilder {
    /// Serves `target/functions/<name>.wasm` at `/<name>` (the name comes from the file stem).
    pub fn function(mut self, name: &str) -> Self {
        self.functions
            .push(function_wasm(name).display().to_string());
        self
    }

    /// Serves a component file at `/<its file stem>`, for one built by the test itself.
    pub fn function_file(mut self, path: &Path) -> Self {
        self.functions.push(path.display().to_string());
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

    /// Like [`Self::function_served_as`], but the data directory already holds the function
    /// deployed and compiled (compiled once per test process, see `precompiled.rs`), so the
    /// host starts without compiling. For components that take seconds to compile.
    pub fn precompiled_function_served_as(mut self, served_as: &str, file_stem: &str) -> Self {
        self.precompiled
            .push((served_as.to_owned(), file_stem.to_owned()));
        self.function_served_as(served_as, file_stem)
    }

    /// Sets the per-event deadline of every guest call.
    pub fn event_timeout_ms(mut self, millis: u64) -> Self {
        self.options.push("--event-timeout-ms".into());
        self.options.push(millis.to_string());
        self
    }

    /// Sets the largest message a client may send (for example `64KiB`).
    pub fn max_message_size(mut self, size: &str) -> Self {
        self.options.push("--max-message-size".into());
        self.options.push(size.into());
        self
    }

    /// Sets the largest component the admin API accepts (for example `64KiB`).
    pub fn max_component_size(mut self, size: &str) -> Self {
        self.options.push("--max-component-size".into());
        self.options.push(size.into());
        self
    }

    /// Passes a command-line option with its value (for example `--idle-timeout-ms`, `300`),
    /// for limits that have no method of their own.
    pub fn option(mut self, flag: &str, value: &str) -> Self {
        self.options.push(flag.into());
        self.options.push(value.into());
        self
    }

    /// Passes a command-line flag that takes no value (for example `--public-metrics`).
    pub fn flag(mut self, flag: &str) -> Self {
        self.options.push(flag.into());
        self
    }

    /// Gives the host its admin token through `WSFN_ADMIN_TOKEN`. Without it the host
    /// generates one into its data directory, which is where [`Host::admin`] then reads it.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Gives the host its signing key through `WSFN_SIGNING_KEY`.
    pub fn signing_key(mut self, key: &str) -> Self {
        self.signing_key = Some(key.to_owned());
        self
    }

    /// Starts with `--config FILE` instead of `--listen`: the file must set
    /// `listen = "127.0.0.1:0"`. The data directory and admin address still come from the
    /// environment, as for every test host.
    pub fn config(mut self, file: &Path) -> Self {
        self.config = Some(file.to_owned());
        self
    }

    /// Starts on the data directory a stopped host left behind, as a restart would.
    pub fn data_dir_of(mut self, stopped: StoppedHost) -> Self {
        self.dir = Some(stopped.dir);
        self
    }

    /// Starts in `dir` instead of a fresh directory.
    pub(super) fn in_dir(mut self, dir: Arc<TestDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    pub async fn start(self) -> Host {
        let dir = self.dir.unwrap_or_else(TestDir::new);
        for (served_as, file_stem) in &self.precompiled {
            super::precompiled::install(&dir.data_dir(), served_as, file_stem).await;
        }
        let number = dir.hosts_started.fetch_add(1, Ordering::Relaxed);
        let log_path = dir.path().join(format!("host-{number}.log"));
        let log = File::create(&log_path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsfn-host"));
        command.arg("run");
        match &self.config {
            Some(file) => command.arg("--config").arg(file),
            None => command.args(["--listen", "127.0.0.1:0"]),
        };
        command.args(&self.options).args(&self.functions);
        for variable in WSFN_ENVIRONMENT {
            command.env_remove(variable);
        }
        if let Some(token) = &self.admin_token {
            command.env("WSFN_ADMIN_TOKEN", token);
        }
        if let Some(key) = &self.signing_key {
            command.env("WSFN_SIGNING_KEY", key);
        }
        let mut child = command
            // Hosts of tests running in parallel must not share deployed functions or an
            // admin port; given as environment so the command line stays the one under test.
            .env("WSFN_DATA_DIR", dir.data_dir())
            .env("WSFN_ADMIN_LISTEN", "127.0.0.1:0")
            // The log goes to a file that is shown on failure: keep it free of colour codes.
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
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
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut host = Host {
            child,
            addr: unbound,
            admin_addr: unbound,
            admin_token: String::new(),
            dir,
            log_path,
            stdout_lines,
        };
        // The admin API is announced right after the WebSocket listener; both are bound
        // before either line is printed.
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
        (host.addr, host.admin_addr) =
            match tokio::time::timeout(STARTUP_WAIT, waiting_for_ready_lines).await {
                Ok(Some(addresses)) => addresses,
                Ok(None) => panic!(
                    "wsfn-host closed stdout without announcing both its listeners (exit \
                     status: {:?}, stdout: {:?})",
                    host.child.try_wait(),
                    host.stdout_lines()
                ),
                Err(_) => {
                    panic!("wsfn-host did not announce both its listeners within {STARTUP_WAIT:?}")
                }
            };
        host.admin_token = match self.admin_token {
            Some(token) => token,
            None => {
                // Written before the listeners are announced.
                let path = host.dir.data_dir().join("admin-token");
                let token = fs::read_to_string(&path).unwrap_or_else(|error| {
                    panic!(
                        "a host without a configured token generates one into {}: {error}",
                        path.display()
                    )
                });
                token.trim().to_owned()
            }
        };
        host
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
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.1",
        "the host should listen where it was asked to: {line:?}"
    );
    assert_ne!(
        addr.port(),
        0,
        "the announcement should name the bound port"
    );
    addr
}

/// A running `wsfn-host`; killed when dropped.
pub struct Host {
    child: Child,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    admin_token: String,
    /// The host's private directory: its data directory and its log.
    dir: Arc<TestDir>,
    log_path: PathBuf,
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

    /// The process id, to look at the host from outside (its memory, its open files).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The base URL of the admin API, such as `http://127.0.0.1:40123`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The token the admin API expects.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client of the admin API that presents the right token.
    pub fn admin(&self) -> Admin {
        Admin::new(self.admin_url(), Some(self.admin_token.clone()))
    }

    /// The host's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.data_dir()
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

    /// Shuts the host down gracefully and keeps its data directory for another host.
    pub async fn stop(mut self) -> StoppedHost {
        self.send_sigterm();
        let status = self.wait_for_exit().await;
        assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
        StoppedHost {
            dir: Arc::clone(&self.dir),
        }
    }

    /// Kills the host with SIGKILL, as a crash or the OOM killer would: nothing of a shutdown
    /// runs. Keeps its data directory for another host.
    pub fn kill_hard(mut self) -> StoppedHost {
        self.child.kill().expect("wsfn-host can be killed");
        let status = self.child.wait().expect("the killed child can be reaped");
        assert_eq!(status.signal(), Some(9), "wsfn-host died of SIGKILL");
        StoppedHost {
            dir: Arc::clone(&self.dir),
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

    /// Everything the host has logged on stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|error| {
            panic!("cannot read the log {}: {error}", self.log_path.display())
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The directory itself goes with the last `TestDir` handle.
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
