//! Data directories in which a function is already deployed and compiled, shared by tests.
//!
//! Compiling a component that embeds a language runtime (CPython, SpiderMonkey) takes wasmtime
//! tens of seconds in a debug host, and every test starts a host on a fresh data directory. A
//! host restores a deployed version from its `compiled.cwasm` without compiling, and a function
//! named on the command line whose bytes are already current is not deployed again. So such a
//! function is compiled once, by a host that deploys it into a template data directory and
//! stops, and each test's data directory starts with hard links to the template's files (the
//! host never writes through them: it replaces files by renaming new ones into place).
//!
//! A template is named after the component and the host binary it was built with (their sizes
//! and modification times), so a later run of the tests reuses it until either is rebuilt.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::host::Host;
use super::test_dir::{TestDir, function_wasm};

/// The templates this test process has made or found, by `served_as=file_stem`.
static TEMPLATES: Mutex<BTreeMap<String, Arc<OnceCell<PathBuf>>>> = Mutex::new(BTreeMap::new());

/// Fills `data_dir` so that a host started on it serves `target/functions/<file_stem>.wasm` at
/// `/<served_as>` from compiled code.
pub(super) async fn install(data_dir: &Path, served_as: &str, file_stem: &str) {
    let template = template(served_as, file_stem).await;
    let functions = data_dir.join("functions");
    link_tree(&template.join("functions"), &functions).unwrap_or_else(|error| {
        panic!(
            "cannot copy the precompiled {file_stem} into {}: {error}",
            functions.display()
        )
    });
}

/// The data directory of the template for `served_as=file_stem`, made on first use.
async fn template(served_as: &str, file_stem: &str) -> PathBuf {
    let cell = Arc::clone(
        TEMPLATES
            .lock()
            .expect("not poisoned")
            .entry(format!("{served_as}={file_stem}"))
            .or_default(),
    );
    cell.get_or_init(|| make_template(served_as, file_stem))
        .await
        .clone()
}

async fn make_template(served_as: &str, file_stem: &str) -> PathBuf {
    let templates = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-templates");
    // `@` appears in neither a function name nor a file stem, so one prefix cannot match
    // another's templates (`echo@echo@` is not a prefix of `echo@echo-py@`).
    let prefix = format!("{served_as}@{file_stem}@");
    let host_binary = Path::new(env!("CARGO_BIN_EXE_wsfn-host"));
    let name = format!(
        "{prefix}{:016x}",
        fingerprint(&[&function_wasm(file_stem), host_binary])
    );
    let template = templates.join(&name).join("data");
    if template.join("functions").join(served_as).is_dir() {
        return template;
    }

    let building =
        TestDir::kept_at(templates.join(format!("building-{name}-{}", std::process::id())));
    // Boxed: this runs inside `HostBuilder::start`, which it calls again (for a host
    // without precompiled functions).
    let host = Box::pin(
        Host::builder()
            .in_dir(Arc::clone(&building))
            .function_served_as(served_as, file_stem)
            .start(),
    )
    .await;
    drop(host.stop().await);
    // Another test process may have finished the same template first; either copy will do.
    let finished = templates.join(&name);
    if fs::rename(building.path(), &finished).is_err() {
        let _ = fs::remove_dir_all(building.path());
    }
    // Templates of earlier builds of this component or of the host are never used again.
    if let Ok(entries) = fs::read_dir(&templates) {
        for entry in entries.flatten() {
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            if entry_name.starts_with(&prefix) && entry_name != name {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    template
}

/// A hash of the sizes and modification times of `files`: it changes when any is rebuilt.
fn fingerprint(files: &[&Path]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for file in files {
        let metadata = fs::metadata(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        metadata.len().hash(&mut hasher);
        metadata.modified().ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// Recreates the tree at `from` under `to`, hard-linking files (copying where linking fails).
fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if fs::hard_link(entry.path(), &target).is_err() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
