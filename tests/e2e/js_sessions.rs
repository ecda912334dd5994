//! The JS client's resumable sessions (`clients/js/wsfn.js`) in node against the real host
//! serving the `chat` sample, its connections going through a proxy that cuts them: every
//! line arrives once and in order both ways, and a session the host has ended is reported as
//! a reset. Driven by `tests/browser/sessions.mjs` with the `ws` package from tests/browser's
//! node modules (`scripts/test-deps.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::Host;

/// A scenario's own waits are bounded by the script; this only bounds a run that hangs.
const NODE_RUN_WAIT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate has a parent directory")
        .to_path_buf()
}

/// Runs `tests/browser/sessions.mjs SCENARIO BASE` and fails with its report unless it passed.
async fn run_scenario(host: &Host, scenario: &str) {
    let root = repo_root();
    assert!(
        root.join("tests/browser/node_modules/ws").is_dir(),
        "tests/browser's node modules are missing: run scripts/test-deps.sh"
    );
    let mut command = tokio::process::Command::new("node");
    command
        .arg("tests/browser/sessions.mjs")
        .arg(scenario)
        .arg(format!("http://{}", host.addr()))
        // `drops` reads the function's live log to count its on-connect and on-close.
        .env("WSFN_ADMIN_URL", host.admin_url())
        .env("WSFN_ADMIN_TOKEN", host.admin_token())
        .current_dir(&root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(NODE_RUN_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("`sessions.mjs {scenario}` did not finish in {NODE_RUN_WAIT:?}"))
        .unwrap_or_else(|error| panic!("cannot run node (is it installed?): {error}"));
    let report = format!(
        "`node tests/browser/sessions.mjs {scenario}` ({})\n--- stdout ---\n{}--- stderr ---\n{}---",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the scenario failed: {report}");
    assert!(
        report.contains(&format!("{scenario}: ok")),
        "the scenario ran to its end: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_delivers_every_line_once_and_in_order_while_its_connections_are_cut() {
    let host = Host::builder().function("chat").start().await;
    run_scenario(&host, "drops").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_reports_a_reset_when_it_comes_back_after_the_resume_window() {
    let host = Host::builder()
        .function("chat")
        .option("--resume-window", "1s")
        .start()
        .await;
    run_scenario(&host, "expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_reports_a_reset_when_its_session_overflowed_while_away() {
    let host = Host::builder()
        .function("chat")
        .option("--session-retention", "2KiB")
        .start()
        .await;
    run_scenario(&host, "overflow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_reports_a_reset_when_its_resume_carries_a_forged_secret() {
    let host = Host::builder()
        .function("chat")
        .option("--resume-window", "3s")
        .start()
        .await;
    run_scenario(&host, "forged").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_js_client_reports_a_reset_when_its_resume_goes_to_another_function() {
    let host = Host::builder()
        .function("chat")
        .function("echo")
        .option("--resume-window", "3s")
        .start()
        .await;
    run_scenario(&host, "elsewhere").await;
}
