//! `wsfn-host new`: the crate it writes builds with the command its README documents, and the
//! component runs in the host and answers over a real WebSocket.
//!
//! The guest build shares the target directory `scripts/build-functions.sh` uses for the
//! samples (`target/guest/<route>`), so the standard library and the SDK's dependencies, built
//! with the same flags there, are not compiled again.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Host, TestDir, poll_until, run_wsfn_host, spawn_wsfn_host};

/// Only there so a hung build fails the test instead of hanging it: a first build on a busy
/// machine compiles the standard library and takes minutes.
const BUILD_WAIT: Duration = Duration::from_secs(30 * 60);

/// Where the generated crates build: the samples' guest target directory of whichever route
/// (rustup's wasm32-wasip2 target or Debian's toolchain) built them.
fn shared_guest_target_dir() -> PathBuf {
    let guest = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the test temp dir lies inside the target directory")
        .join("guest");
    let rustup = guest.join("rustup");
    if rustup.is_dir() {
        rustup
    } else {
        guest.join("debian")
    }
}

/// Runs the documented build command, `./build.sh`, in the crate `dir`.
async fn build(dir: &Path) {
    let mut command = tokio::process::Command::new("./build.sh");
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_guest_target_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BUILD_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("./build.sh in {} hung", dir.display()))
        .unwrap_or_else(|error| panic!("cannot run ./build.sh in {}: {error}", dir.display()));
    assert!(
        output.status.success(),
        "./build.sh in {} failed ({}):\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `git ARGS...` in `dir`, ignoring the machine's and the user's git configuration
/// (a global excludes file would change what counts as ignored), and returns its stdout.
async fn git(dir: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run git {args:?}: {error}"));
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The files `git add .` would pick up in `dir`, made a fresh repository.
async fn files_git_would_commit(dir: &Path) -> Vec<String> {
    git(dir, &["init", "--quiet"]).await;
    let status = git(dir, &["status", "--porcelain", "--untracked-files=all"]).await;
    status
        .lines()
        .filter_map(|line| line.strip_prefix("?? "))
        .map(str::to_owned)
        .collect()
}

/// Starts `wsfn-host run FILE` in `dir` as the generated README says, with the default data
/// directory, and stops it once it has written its admin token; returns the token's path.
async fn run_as_documented(dir: &Path, file: &str) -> PathBuf {
    let token = dir.join(".wsfn").join("admin-token");
    let mut host = spawn_wsfn_host(
        dir,
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            file,
        ],
        &[],
    );
    poll_until("the host wrote its admin token", async || {
        token.is_file().then_some(())
    })
    .await;
    let _ = host.kill().await;
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_function_builds_with_its_documented_command_and_answers() {
    let dir = TestDir::new();

    let created = run_wsfn_host(dir.path(), &["new", "hello"], &[]).await;

    let stdout = created.expect_success();
    assert!(
        stdout.contains("guest-sdk"),
        "uses this checkout's SDK: {stdout}"
    );
    let crate_dir = dir.path().join("hello");
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).expect("a README");
    assert!(
        readme.contains("./build.sh"),
        "the README documents the build: {readme}"
    );
    build(&crate_dir).await;
    let component = crate_dir.join("hello.wasm");
    assert!(
        component.is_file(),
        "./build.sh writes {}",
        component.display()
    );

    let host = Host::builder().function_file(&component).start().await;
    let mut client = host.connect("hello?name=ann").await;
    assert_eq!(client.ask("hi there").await, "hi there");
    assert_eq!(client.ask("whoami").await, "ann");
    assert_eq!(client.ask("count").await, "3", "hi there, whoami, count");

    let token = run_as_documented(&crate_dir, "hello.wasm").await;
    assert!(token.is_file(), "the host keeps its data in the crate");
    let committable = files_git_would_commit(&crate_dir).await;
    assert!(
        committable.iter().all(|file| !file.starts_with(".wsfn/")),
        "the host's data and admin token stay out of git: {committable:?}"
    );
    assert!(
        !committable.contains(&"hello.wasm".to_owned()),
        "the build output stays out of git: {committable:?}"
    );
    for source in ["src/lib.rs", "Cargo.toml", ".gitignore", "build.sh"] {
        assert!(
            committable.contains(&source.to_owned()),
            "{source} is committed: {committable:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn new_refuses_an_existing_directory_and_bad_names() {
    let dir = TestDir::new();
    std::fs::create_dir(dir.path().join("taken")).expect("a directory in the way");
    std::fs::write(dir.path().join("taken").join("mine.txt"), "keep").expect("a file");

    let taken = run_wsfn_host(dir.path(), &["new", "taken"], &[]).await;
    assert!(
        taken.expect_failure().contains("already exists"),
        "{taken:?}"
    );
    let kept = std::fs::read_dir(dir.path().join("taken"))
        .expect("still there")
        .count();
    assert_eq!(kept, 1, "nothing was written into the existing directory");

    for bad in ["9lives", "has/slash", "fn", ""] {
        let refused = run_wsfn_host(dir.path(), &["new", bad], &[]).await;
        refused.expect_failure();
    }
    let not_sdk = run_wsfn_host(dir.path(), &["new", "fine", "--sdk-path", "."], &[]).await;
    assert!(
        not_sdk.expect_failure().contains("guest SDK"),
        "{not_sdk:?}"
    );
    assert!(!dir.path().join("fine").exists());

    let elsewhere = run_wsfn_host(dir.path(), &["new", "fine", "--path", "nested/dir"], &[]).await;
    elsewhere.expect_success();
    assert!(dir.path().join("nested/dir/fine/src/lib.rs").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crate_with_the_bundled_sdk_builds_on_its_own_and_answers() {
    // What a binary installed away from its checkout writes: the SDK and WIT it carries.
    let dir = TestDir::new();

    let created = run_wsfn_host(dir.path(), &["new", "alone", "--bundled-sdk"], &[]).await;

    let stdout = created.expect_success();
    assert!(stdout.contains("wsfn-sdk/"), "{stdout}");
    let crate_dir = dir.path().join("alone");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("a manifest");
    assert!(
        manifest.contains("path = \"wsfn-sdk\"") && !manifest.contains("guest-sdk"),
        "depends on its own copy, not on the checkout: {manifest}"
    );
    for file in [
        "wsfn-sdk/Cargo.toml",
        "wsfn-sdk/src/lib.rs",
        "wit/function.wit",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} is written");
    }
    build(&crate_dir).await;

    let host = Host::builder()
        .function_file(&crate_dir.join("alone.wasm"))
        .start()
        .await;
    let mut client = host.connect("alone?name=bo").await;
    assert_eq!(client.ask("whoami").await, "bo");
    let committable = files_git_would_commit(&crate_dir).await;
    assert!(
        committable.contains(&"wsfn-sdk/src/lib.rs".to_owned())
            && committable.contains(&"wit/function.wit".to_owned()),
        "the bundled SDK is part of the crate's source: {committable:?}"
    );
}
