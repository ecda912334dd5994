//! Deployed versions on disk, so a restart serves what was deployed and history survives for
//! rollback.
//!
//! Layout under `<data-dir>/functions/<name>/`:
//! - `versions/<n>/component.wasm` — the bytes as uploaded;
//! - `versions/<n>/compiled.cwasm` — wasmtime's compiled code, so a restart does not recompile;
//! - `versions/<n>/version.json` — what the admin API reports about the version;
//! - `current` — the number of the version being served.
//!
//! A version's files are written and synced before `current` points at it, and `current` is
//! replaced by renaming a synced temporary file, so a crash at any point leaves either the old
//! or the new version current, never a half-written one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is known about one deployed version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Version number, counting up from 1 for each function.
    pub version: u64,
    /// SHA-256 of the component bytes, in hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When the version was deployed, in milliseconds since the Unix epoch.
    pub deployed_at_ms: u64,
    /// How long compiling the component took, in milliseconds.
    pub compile_ms: u64,
}

/// The versions of every function, on disk.
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
}

impl Catalog {
    /// Opens (creating if needed) the catalog under `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("functions");
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn function_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn version_dir(&self, name: &str, version: u64) -> PathBuf {
        self.function_dir(name)
            .join("versions")
            .join(version.to_string())
    }

    pub fn component_path(&self, name: &str, version: u64) -> PathBuf {
        self.version_dir(name, version).join("component.wasm")
    }

    pub fn compiled_path(&self, name: &str, version: u64) -> PathBuf {
        self.version_dir(name, version).join("compiled.cwasm")
    }

    /// Names of functions that have a current version.
    pub fn function_names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && entry.path().join("current").is_file()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The version being served, if the function exists.
    pub fn current(&self, name: &str) -> io::Result<Option<u64>> {
        match fs::read_to_string(self.function_dir(name).join("current")) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt current version of `{name}`"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every stored version of a function, oldest first.
    pub fn versions(&self, name: &str) -> io::Result<Vec<VersionInfo>> {
        let dir = self.function_dir(name).join("versions");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let path = entry?.path().join("version.json");
            // A version directory without metadata was never completed: it is not a version.
            let Ok(text) = fs::read(&path) else { continue };
            let info: VersionInfo = serde_json::from_slice(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            versions.push(info);
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    pub fn version(&self, name: &str, version: u64) -> io::Result<Option<VersionInfo>> {
        Ok(self
            .versions(name)?
            .into_iter()
            .find(|v| v.version == version))
    }

    /// The number the next version of `name` gets.
    pub fn next_version(&self, name: &str) -> io::Result<u64> {
        Ok(self.versions(name)?.last().map_or(1, |v| v.version + 1))
    }

    /// Stores a new version's files; it is not served until [`set_current`](Self::set_current).
    pub fn store_version(
        &self,
        name: &str,
        info: &VersionInfo,
        component: &[u8],
        compiled: &[u8],
    ) -> io::Result<()> {
        let dir = self.version_dir(name, info.version);
        // Leftovers of a crashed deploy of the same number are replaced.
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        write_synced(&dir.join("component.wasm"), component)?;
        write_synced(&dir.join("compiled.cwasm"), compiled)?;
        let meta = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
        // Written last: its presence marks the version as complete.
        write_synced(&dir.join("version.json"), &meta)?;
        sync_dir(&dir)
    }

    /// Replaces the compiled code of a version (after the engine changed and it was recompiled).
    pub fn store_compiled(&self, name: &str, version: u64, compiled: &[u8]) -> io::Result<()> {
        let path = self.compiled_path(name, version);
        let temporary = path.with_extension("cwasm.tmp");
        write_synced(&temporary, compiled)?;
        fs::rename(&temporary, &path)?;
        sync_dir(&self.version_dir(name, version))
    }

    /// Points the function at `version`, atomically.
    pub fn set_current(&self, name: &str, version: u64) -> io::Result<()> {
        let dir = self.function_dir(name);
        let temporary = dir.join("current.tmp");
        write_synced(&temporary, version.to_string().as_bytes())?;
        fs::rename(&temporary, dir.join("current"))?;
        sync_dir(&dir)
    }

    /// Forgets a function and all its versions.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let dir = self.function_dir(name);
        // Removing `current` first makes the function gone even if the rest fails midway.
        match fs::remove_file(dir.join("current")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(&dir)?;
        fs::remove_dir_all(&dir)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: u64) -> VersionInfo {
        VersionInfo {
            version,
            sha256: "00".into(),
            size: 3,
            deployed_at_ms: 0,
            compile_ms: 0,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsfn-catalog-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn versions_and_current_survive_reopening() {
        let dir = temp_dir("reopen");
        let catalog = Catalog::open(&dir).unwrap();
        assert_eq!(catalog.next_version("echo").unwrap(), 1);
        catalog
            .store_version("echo", &info(1), b"abc", b"x")
            .unwrap();
        catalog.set_current("echo", 1).unwrap();
        catalog
            .store_version("echo", &info(2), b"def", b"y")
            .unwrap();

        let reopened = Catalog::open(&dir).unwrap();
        assert_eq!(reopened.function_names().unwrap(), vec!["echo"]);
        assert_eq!(reopened.current("echo").unwrap(), Some(1));
        assert_eq!(reopened.versions("echo").unwrap(), vec![info(1), info(2)]);
        assert_eq!(reopened.next_version("echo").unwrap(), 3);
        assert_eq!(
            fs::read(reopened.component_path("echo", 2)).unwrap(),
            b"def"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_without_metadata_does_not_exist() {
        let dir = temp_dir("partial");
        let catalog = Catalog::open(&dir).unwrap();
        fs::create_dir_all(catalog.version_dir("echo", 1)).unwrap();
        assert_eq!(catalog.versions("echo").unwrap(), vec![]);
        assert_eq!(catalog.function_names().unwrap(), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn removed_functions_are_gone() {
        let dir = temp_dir("remove");
        let catalog = Catalog::open(&dir).unwrap();
        catalog
            .store_version("echo", &info(1), b"abc", b"x")
            .unwrap();
        catalog.set_current("echo", 1).unwrap();
        catalog.remove("echo").unwrap();
        assert_eq!(catalog.current("echo").unwrap(), None);
        assert!(catalog.function_names().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
