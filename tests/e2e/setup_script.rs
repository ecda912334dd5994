//! `scripts/setup.sh` takes rustup's route when rustup can add the wasm32-wasip2 target, and
//! Debian's only when it cannot, saying why.
//!
//! The script runs for real, with stand-ins for `rustup`, `apt-get`, `sudo`, `dpkg-query` and
//! `cargo` first on `PATH`: each records how it was called, so the tests see exactly what the
//! script would have installed, without installing anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::TestDir;

/// How the stand-in `rustup` answers `rustup target add`.
enum TargetAdd {
    Succeeds,
    /// Fails with this text (no single quotes) on stderr, as rustup does without a network.
    Fails(&'static str),
}

/// A directory of stand-in tools, each appending `NAME ARGS...` to `calls.log`.
struct FakeTools {
    bin: PathBuf,
    log: PathBuf,
}

impl FakeTools {
    fn new(dir: &Path, rustup_installed: &[&str], target_add: TargetAdd) -> Self {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("a bin directory");
        let log = dir.join("calls.log");
        fs::write(&log, "").expect("the call log");
        let record = format!("echo \"$(basename \"$0\") $*\" >> '{}'", log.display());
        let installed = rustup_installed.join("\n");
        let add = match target_add {
            TargetAdd::Succeeds => "exit 0".to_owned(),
            TargetAdd::Fails(text) => format!("echo '{text}' >&2; exit 1"),
        };
        let rustup = format!(
            "{record}\ncase \"$1 $2\" in\n\
             'target list') printf '%s\\n' '{installed}' ;;\n\
             'target add') {add} ;;\n\
             *) exit 3 ;;\nesac\n"
        );
        write_tool(&bin, "rustup", &rustup);
        // Nothing of Debian's is installed, so the Debian route would install all of it.
        write_tool(&bin, "dpkg-query", &format!("{record}\nexit 1\n"));
        for tool in ["apt-get", "sudo", "cargo"] {
            write_tool(&bin, tool, &format!("{record}\nexit 0\n"));
        }
        // Not root, so a Debian install would go through sudo.
        write_tool(&bin, "id", &format!("{record}\necho 1000\n"));
        Self { bin, log }
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .expect("the call log")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn write_tool(bin: &Path, name: &str, body: &str) {
    let path = bin.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).expect("a stand-in tool");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("executable");
}

struct SetupRun {
    success: bool,
    stderr: String,
    calls: Vec<String>,
}

/// Runs the repository's `scripts/setup.sh` with the stand-ins first on `PATH` and a `HOME`
/// of the test's own (so no wasm-component-ld of the machine's counts as installed).
async fn run_setup(dir: &Path, tools: &FakeTools) -> SetupRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
    let home = dir.join("home");
    fs::create_dir_all(&home).expect("a home directory");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", tools.bin.display()))
        .env("HOME", &home)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("bash runs setup.sh");
    SetupRun {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        calls: tools.calls(),
    }
}

fn called(calls: &[String], tool: &str) -> bool {
    calls
        .iter()
        .any(|call| call.split(' ').next() == Some(tool))
}

#[tokio::test]
async fn with_rustup_the_target_is_added_and_nothing_comes_from_apt() {
    let dir = TestDir::new();
    let tools = FakeTools::new(
        dir.path(),
        &["x86_64-unknown-linux-gnu"],
        TargetAdd::Succeeds,
    );

    let run = run_setup(dir.path(), &tools).await;

    assert!(run.success, "setup.sh failed: {}", run.stderr);
    assert!(
        run.calls
            .contains(&"rustup target add wasm32-wasip2".to_owned()),
        "{:?}",
        run.calls
    );
    for debian_tool in ["apt-get", "sudo", "dpkg-query", "cargo"] {
        assert!(
            !called(&run.calls, debian_tool),
            "{debian_tool} was called on the rustup route: {:?}",
            run.calls
        );
    }
    assert!(
        !run.stderr.contains("Debian"),
        "the rustup route says nothing of Debian: {}",
        run.stderr
    );
}

#[tokio::test]
async fn with_the_target_already_there_nothing_is_installed() {
    let dir = TestDir::new();
    let tools = FakeTools::new(
        dir.path(),
        &["wasm32-wasip2", "x86_64-unknown-linux-gnu"],
        TargetAdd::Fails("error: must not be called"),
    );

    let run = run_setup(dir.path(), &tools).await;

    assert!(run.success, "setup.sh failed: {}", run.stderr);
    assert_eq!(run.calls, ["rustup target list --installed"]);
    assert_eq!(run.stderr, "", "a set-up machine hears nothing");
}

#[tokio::test]
async fn when_rustup_cannot_add_the_target_the_debian_route_is_taken_and_said() {
    let dir = TestDir::new();
    let tools = FakeTools::new(
        dir.path(),
        &["x86_64-unknown-linux-gnu"],
        // What rustup prints when it cannot reach its servers, shortened.
        TargetAdd::Fails(
            "info: downloading component rust-std\ninfo: rolling back changes\n\
             error: component download failed for rust-std-wasm32-wasip2\n\nCaused by:\n    \
             0: could not download file from https://static.rust-lang.org/dist/\n    \
             1: Connection refused (os error 111)\n",
        ),
    );

    let run = run_setup(dir.path(), &tools).await;

    assert!(run.success, "setup.sh failed: {}", run.stderr);
    assert!(
        run.stderr.contains(
            "rustup target add wasm32-wasip2 failed (component download failed for \
             rust-std-wasm32-wasip2); using Debian's toolchain instead"
        ),
        "the fallback and its reason are said in one line: {}",
        run.stderr
    );
    let apt_install = run
        .calls
        .iter()
        .find(|call| call.starts_with("sudo env DEBIAN_FRONTEND=noninteractive apt-get install"))
        .unwrap_or_else(|| panic!("Debian's packages are installed: {:?}", run.calls));
    for package in [
        "rustc-web",
        "cargo-web",
        "rust-web-src",
        "lld-22",
        "wasi-libc",
    ] {
        assert!(apt_install.contains(package), "{apt_install}");
    }
    assert!(
        run.calls
            .iter()
            .any(|call| call.starts_with("cargo install") && call.contains("wasm-component-ld")),
        "the component linker is installed: {:?}",
        run.calls
    );
}

#[tokio::test]
async fn without_rustup_the_debian_route_is_taken_and_said() {
    let dir = TestDir::new();
    let tools = FakeTools::new(dir.path(), &[], TargetAdd::Succeeds);
    fs::remove_file(tools.bin.join("rustup")).expect("no rustup");

    let run = run_setup(dir.path(), &tools).await;

    assert!(run.success, "setup.sh failed: {}", run.stderr);
    assert!(
        run.stderr.contains("no rustup; using Debian's toolchain"),
        "{}",
        run.stderr
    );
    assert!(called(&run.calls, "sudo"), "{:?}", run.calls);
}
