//! The browser client (`clients/js/wsfn.js`) and its chat demo in a real chromium, driven by
//! `tests/browser/chat.mjs` through playwright-core, against the real host serving the `chat`
//! sample and `--static clients/js`. `scripts/test-deps.sh` installs chromium and the pinned
//! playwright-core.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::Host;

/// A browser start and two page loads on a loaded machine; only bounds a run that hangs.
const BROWSER_RUN_WAIT: Duration = Duration::from_secs(180);

/// The smallest believable screenshot of two chat pages side by side.
const MIN_SCREENSHOT_BYTES: usize = 10_000;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate has a parent directory")
        .to_path_buf()
}

/// Fails with what to run when the browser tools are missing, rather than with a puzzle.
fn require_browser_tools(root: &Path) {
    assert!(
        Path::new("/usr/bin/chromium").is_file()
            && root
                .join("tests/browser/node_modules/playwright-core")
                .is_dir(),
        "chromium or tests/browser's node modules are missing: run scripts/test-deps.sh"
    );
}

/// Runs `node ARGS...` in the repository, bounded, and returns its combined report.
async fn node(root: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = tokio::process::Command::new("node");
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let described = format!("node {}", args.join(" "));
    let output = tokio::time::timeout(BROWSER_RUN_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("`{described}` did not finish within {BROWSER_RUN_WAIT:?}"))
        .unwrap_or_else(|error| panic!("cannot run `{described}` (is node installed?): {error}"));
    let report = format!(
        "`{described}` ({})\n--- stdout ---\n{}--- stderr ---\n{}---",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// Width and height from a PNG's header, or `None` if the bytes are not a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browser_pages_chat_through_the_demo_and_reconnect() {
    let root = repo_root();
    require_browser_tools(&root);
    let static_dir = root.join("clients/js");
    let host = Host::builder()
        .function("chat")
        .option("--static", static_dir.to_str().expect("a UTF-8 path"))
        .start()
        .await;
    let screenshot = root.join("target/browser/chat.png");
    // A screenshot left by an earlier run must not pass for this one.
    let _ = std::fs::remove_file(&screenshot);

    let base = format!("http://{}", host.addr());
    let admin_url = host.admin_url();
    let (passed, report) = node(
        &root,
        &[
            "tests/browser/chat.mjs",
            &base,
            "--out",
            screenshot.to_str().expect("a UTF-8 path"),
        ],
        // Lets the script close the connections through the admin API to test reconnects.
        &[
            ("WSFN_ADMIN_URL", &admin_url),
            ("WSFN_ADMIN_TOKEN", host.admin_token()),
        ],
    )
    .await;
    assert!(passed, "the browser test failed: {report}");
    assert!(
        report.contains("reconnect: ok"),
        "the reconnect part ran: {report}"
    );

    let bytes = std::fs::read(&screenshot)
        .unwrap_or_else(|error| panic!("no screenshot at {}: {error}", screenshot.display()));
    let (width, height) = png_size(&bytes).expect("the screenshot is a PNG");
    assert!(
        bytes.len() >= MIN_SCREENSHOT_BYTES && width >= 1000 && height >= 400,
        "the screenshot should show two pages side by side, got {width}x{height} in {} bytes",
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_browser_client_passes_its_unit_tests() {
    let root = repo_root();
    let (passed, report) = node(&root, &["--test", "clients/js/test/"], &[]).await;
    assert!(passed, "the client's unit tests failed: {report}");
}
