//! Runs `wsfn-host` as a command that is expected to finish: the admin client commands, or a
//! host that must refuse to start.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use super::host_process::WSFN_ENVIRONMENT;
use super::within;

/// How a finished command ended and what it printed.
pub struct CommandOutput {
    /// The command line, to say which run a failure is about.
    command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Asserts a successful exit and returns stdout.
    pub fn expect_success(&self) -> &str {
        assert!(self.status.success(), "{self:?} should succeed");
        &self.stdout
    }

    /// Asserts a failed exit with an `error: ...` message on stderr, and returns the message.
    pub fn expect_failure(&self) -> &str {
        assert!(!self.status.success(), "{self:?} should fail");
        assert_ne!(
            self.status.code(),
            None,
            "{self:?} should exit with a status, not be killed by a signal"
        );
        let message = self
            .stderr
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or_else(|| panic!("{self:?} should say `error: ...` on stderr"));
        assert!(
            !message.trim().is_empty(),
            "{self:?} should say what failed"
        );
        message
    }
}

impl std::fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout ---\n{}--- stderr ---\n{}---",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `wsfn-host ARGS...` in `dir` with exactly the `WSFN_*` variables in `env`, and
/// waits (bounded) for it to finish.
pub async fn run_wsfn_host(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CommandOutput {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsfn-host"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command that hangs past the bounded wait must not outlive the test.
        .kill_on_drop(true);
    for variable in WSFN_ENVIRONMENT {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let described = format!("wsfn-host {}", args.join(" "));
    let output = within(&format!("`{described}` to finish"), command.output())
        .await
        .unwrap_or_else(|error| panic!("cannot run `{described}`: {error}"));
    CommandOutput {
        command: described,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts `wsfn-host ARGS...` in `dir` with piped stdout and stderr, for commands that run
/// until stopped (`wsfn-host logs`). The process is killed when the child is dropped.
pub fn spawn_wsfn_host(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsfn-host"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for variable in WSFN_ENVIRONMENT {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `wsfn-host {}`: {error}", args.join(" ")))
}
