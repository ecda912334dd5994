//! A host started inside the test process with the library's `launch::start`, from the same
//! options a `wsfn-host run` command line would give it, on the test's own tokio runtime.
//!
//! It serves real sockets on 127.0.0.1 like a host process, without a process to start, a
//! stdout to read or a binary to wait for; and a test on a paused clock pauses the host's
//! timers too. What it cannot show is what only a process has (see `host_process.rs`).

use std::ffi::OsString;

use wsfn_host::launch::{self, RunningHost, Secret};
use wsfn_host::options::{RunOptions, Sources};

use super::host::{HostBuilder, STARTUP_WAIT};
use super::test_dir::TestDir;

/// Starts a host for `builder` in `dir`.
pub(super) async fn start(builder: &HostBuilder, dir: &TestDir) -> RunningHost {
    let mut args: Vec<OsString> = Vec::new();
    match &builder.config {
        Some(file) => args.extend(["--config".into(), file.into()]),
        None => args.extend(["--listen".into(), "127.0.0.1:0".into()]),
    }
    // The environment of the test process is not the host's: everything is an argument.
    args.extend([
        "--data-dir".into(),
        dir.data_dir().into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
    ]);
    args.extend(builder.options.iter().map(OsString::from));
    args.extend(builder.functions.iter().map(OsString::from));
    let options = RunOptions::parse_from(&args, Sources::ArgumentsOnly)
        .unwrap_or_else(|error| panic!("the options {args:?} are refused: {error}"));
    let mut settings = options.into_settings();
    if let Some(token) = &builder.admin_token {
        settings.admin_token = Some(Secret::Value(token.clone()));
    }
    if let Some(key) = &builder.signing_key {
        settings.signing_key = Some(Secret::Value(key.clone()));
    }
    match tokio::time::timeout(STARTUP_WAIT, launch::start(settings)).await {
        Ok(Ok(running)) => {
            super::host::assert_bound_as_asked(running.address(), "the WebSocket listener");
            super::host::assert_bound_as_asked(running.admin_address(), "the admin API");
            running
        }
        Ok(Err(error)) => panic!("the host did not start: {error}"),
        Err(_) => panic!("the host did not start within {STARTUP_WAIT:?}"),
    }
}
