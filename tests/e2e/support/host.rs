//! A host for one test, started inside the test process (`start`, see `in_process.rs`) or as
//! a `wsfn-host run` child process (`start_process`, see `host_process.rs`), with the same
//! options and the same API: tests speak to either over real sockets.
//!
//! A behaviour test starts its host in process: that is quicker, and on a paused clock the
//! host's timers are paused too. A test that needs what only a process has (its command line
//! and environment, stdout, the log on stderr, signals, its pid, being killed) starts a
//! process, and the methods that need one say so if called on an in-process host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, http::StatusCode};
use wsfn_host::launch::RunningHost;

use super::host_process::{self, HostProcess};
use super::test_dir::{TestDir, function_wasm};
use super::{Admin, Client};

/// The host compiles every function before it is ready, which can take a while on a loaded
/// machine (a component embedding CPython takes wasmtime tens of seconds, more when several
/// compile at once); this only bounds a start that would otherwise hang.
pub(super) const STARTUP_WAIT: Duration = Duration::from_secs(300);

/// The directory of a host that has stopped, from which another host can start on the same
/// data directory.
pub struct StoppedHost {
    dir: Arc<TestDir>,
}

/// Which functions to serve and with which options.
#[derive(Default)]
pub struct HostBuilder {
    /// `FUNCTION` arguments of `wsfn-host run`.
    pub(super) functions: Vec<String>,
    /// Options of `wsfn-host run`, as on its command line.
    pub(super) options: Vec<String>,
    pub(super) admin_token: Option<String>,
    pub(super) signing_key: Option<String>,
    /// A config file that names the listen address itself.
    pub(super) config: Option<PathBuf>,
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

    /// Gives the host its admin token (through `WSFN_ADMIN_TOKEN` for a process). Without it
    /// the host generates one into its data directory.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Gives the host its signing key (through `WSFN_SIGNING_KEY` for a process).
    pub fn signing_key(mut self, key: &str) -> Self {
        self.signing_key = Some(key.to_owned());
        self
    }

    /// Starts with `--config FILE` instead of `--listen`: the file must set
    /// `listen = "127.0.0.1:0"`. The data directory and admin address are still the test's,
    /// given as for every test host.
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

    /// Starts the host inside the test process.
    pub async fn start(self) -> Host {
        let dir = self.prepare_dir().await;
        let running = super::in_process::start(&self, &dir).await;
        Host {
            addr: running.address(),
            admin_addr: running.admin_address(),
            admin_token: running.admin_token().to_owned(),
            dir,
            run: Run::InProcess(Some(running)),
        }
    }

    /// Starts the host as a `wsfn-host run` child process.
    pub async fn start_process(self) -> Host {
        let dir = self.prepare_dir().await;
        let started = host_process::start(&self, &dir).await;
        let admin_token = match self.admin_token {
            Some(token) => token,
            None => generated_token(&dir),
        };
        Host {
            addr: started.addr,
            admin_addr: started.admin_addr,
            admin_token,
            dir,
            run: Run::Process(started.process),
        }
    }

    async fn prepare_dir(&self) -> Arc<TestDir> {
        let dir = self.dir.clone().unwrap_or_else(TestDir::new);
        for (served_as, file_stem) in &self.precompiled {
            super::precompiled::install(&dir.data_dir(), served_as, file_stem).await;
        }
        dir
    }
}

/// The token a host without a configured one generated, before it announced its listeners.
fn generated_token(dir: &TestDir) -> String {
    let path = dir.data_dir().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "a host without a configured token generates one into {}: {error}",
            path.display()
        )
    });
    token.trim().to_owned()
}

/// Checks an address a host bound: where it was asked to listen, on the port it picked.
pub(super) fn assert_bound_as_asked(addr: SocketAddr, what: &str) {
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.1",
        "the host should listen where it was asked to: {what}"
    );
    assert_ne!(
        addr.port(),
        0,
        "the host should name the bound port: {what}"
    );
}

/// A running host; stopped (a process is killed) when dropped.
pub struct Host {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    admin_token: String,
    /// The host's private directory: its data directory and, for a process, its log.
    dir: Arc<TestDir>,
    run: Run,
}

/// Where the host runs.
enum Run {
    /// `None` once stopped.
    InProcess(Option<RunningHost>),
    Process(HostProcess),
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

    /// Shuts the host down gracefully and keeps its data directory for another host.
    pub async fn stop(mut self) -> StoppedHost {
        let dir = Arc::clone(&self.dir);
        match &mut self.run {
            Run::InProcess(running) => {
                let running = running.take().expect("a host stops once");
                running.shutdown();
                let stopped = super::within("the host to stop", running.stopped()).await;
                if let Err(error) = stopped {
                    panic!("the host failed while stopping: {error}");
                }
            }
            Run::Process(process) => {
                process.send_sigterm();
                let status = process.wait_for_exit().await;
                assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
            }
        }
        StoppedHost { dir }
    }

    /// Asserts that the host still serves: it has not stopped (nor, as a process, exited).
    pub fn assert_still_running(&mut self) {
        match &mut self.run {
            Run::InProcess(running) => {
                let stopped = running.as_ref().is_none_or(RunningHost::has_stopped);
                assert!(!stopped, "the host stopped unexpectedly");
            }
            Run::Process(process) => process.assert_still_running(),
        }
    }

    /// The host process, for a test that needs one.
    fn process(&self) -> &HostProcess {
        match &self.run {
            Run::Process(process) => process,
            Run::InProcess(_) => panic!(
                "this test needs wsfn-host as a process: start the host with `start_process()`"
            ),
        }
    }

    fn process_mut(&mut self) -> &mut HostProcess {
        match &mut self.run {
            Run::Process(process) => process,
            Run::InProcess(_) => panic!(
                "this test needs wsfn-host as a process: start the host with `start_process()`"
            ),
        }
    }

    /// The process id, to look at the host from outside (its memory, its open files).
    pub fn pid(&self) -> u32 {
        self.process().pid()
    }

    /// The process holding the host's sockets: the host's own, or this one.
    pub(super) fn socket_owner_pid(&self) -> u32 {
        match &self.run {
            Run::Process(process) => process.pid(),
            Run::InProcess(_) => std::process::id(),
        }
    }

    /// Asks the host process to shut down gracefully, as a service manager would.
    pub fn send_sigterm(&self) {
        self.process().send_sigterm();
    }

    /// Waits (bounded) for the host process to exit and returns how it exited.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        self.process_mut().wait_for_exit().await
    }

    /// Kills the host process with SIGKILL, as a crash or the OOM killer would: nothing of a
    /// shutdown runs. Keeps its data directory for another host.
    pub fn kill_hard(mut self) -> StoppedHost {
        self.process_mut().kill_hard();
        StoppedHost {
            dir: Arc::clone(&self.dir),
        }
    }

    /// Every line the host process has printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.process().stdout_lines()
    }

    /// Everything the host process has logged on stderr so far.
    pub fn log(&self) -> String {
        self.process().log()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // A process is killed by its own `Drop`; an in-process host is shut down, and its
        // tasks end with the test's runtime at the latest.
        if let Run::InProcess(Some(running)) = &self.run {
            running.shutdown();
        }
    }
}
