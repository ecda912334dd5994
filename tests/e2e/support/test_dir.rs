//! Where a test's hosts keep their data and logs, and where the prebuilt functions are.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Numbers the directories of the hosts started by this test process.
static DIRS_CREATED: AtomicUsize = AtomicUsize::new(0);

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

    /// Numbers the hosts started in this directory, for their log files.
    pub(super) fn next_host_number(&self) -> usize {
        self.hosts_started.fetch_add(1, Ordering::Relaxed)
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
