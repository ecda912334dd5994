//! `wsfn-host new`: writes a ready-to-build function crate.
//!
//! The files come from `host/templates/new/`, embedded at compile time, with a few
//! `{{placeholders}}` filled in. The crate depends on the guest SDK by path: a given SDK
//! directory, the checkout this binary was built from if it is still there, or else a copy of
//! the SDK and the WIT it was built with, which the binary carries and writes into the crate
//! (`wsfn-sdk/`, `wit/`). So a binary installed with `cargo install` scaffolds functions that
//! build anywhere, matching the host's interface, with nothing published.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::functions::is_valid_function_name;

/// One file of a new function crate: where it goes and its template.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const TEMPLATES: &[Template] = &[
    Template {
        path: "Cargo.toml",
        text: include_str!("../templates/new/Cargo.toml.in"),
        executable: false,
    },
    Template {
        path: "src/lib.rs",
        text: include_str!("../templates/new/lib.rs.in"),
        executable: false,
    },
    Template {
        path: ".cargo/config.toml",
        text: include_str!("../templates/new/cargo-config.toml.in"),
        executable: false,
    },
    Template {
        path: "build.sh",
        text: include_str!("../templates/new/build.sh.in"),
        executable: true,
    },
    Template {
        path: "README.md",
        text: include_str!("../templates/new/README.md.in"),
        executable: false,
    },
    Template {
        path: ".gitignore",
        text: include_str!("../templates/new/gitignore.in"),
        executable: false,
    },
];

/// The guest SDK and the WIT this binary was built with, for crates scaffolded away from a
/// checkout. The SDK's `generate!` reads `../wit`, so the WIT goes beside `wsfn-sdk/`.
const BUNDLED_SDK: &[Template] = &[
    bundled(
        "wsfn-sdk/Cargo.toml",
        include_str!("../../guest-sdk/Cargo.toml"),
    ),
    bundled(
        "wsfn-sdk/README.md",
        include_str!("../../guest-sdk/README.md"),
    ),
    bundled(
        "wsfn-sdk/src/lib.rs",
        include_str!("../../guest-sdk/src/lib.rs"),
    ),
    bundled(
        "wsfn-sdk/src/connect.rs",
        include_str!("../../guest-sdk/src/connect.rs"),
    ),
    bundled(
        "wsfn-sdk/src/connection.rs",
        include_str!("../../guest-sdk/src/connection.rs"),
    ),
    bundled(
        "wsfn-sdk/src/error.rs",
        include_str!("../../guest-sdk/src/error.rs"),
    ),
    bundled(
        "wsfn-sdk/src/export.rs",
        include_str!("../../guest-sdk/src/export.rs"),
    ),
    bundled(
        "wsfn-sdk/src/handler_error.rs",
        include_str!("../../guest-sdk/src/handler_error.rs"),
    ),
    bundled(
        "wsfn-sdk/src/kv.rs",
        include_str!("../../guest-sdk/src/kv.rs"),
    ),
    bundled(
        "wsfn-sdk/src/message.rs",
        include_str!("../../guest-sdk/src/message.rs"),
    ),
    bundled("wit/function.wit", include_str!("../../wit/function.wit")),
    bundled(
        "wit/deps/keyvalue/atomic.wit",
        include_str!("../../wit/deps/keyvalue/atomic.wit"),
    ),
    bundled(
        "wit/deps/keyvalue/batch.wit",
        include_str!("../../wit/deps/keyvalue/batch.wit"),
    ),
    bundled(
        "wit/deps/keyvalue/store.wit",
        include_str!("../../wit/deps/keyvalue/store.wit"),
    ),
    bundled(
        "wit/deps/keyvalue/world.wit",
        include_str!("../../wit/deps/keyvalue/world.wit"),
    ),
];

/// Where a bundled SDK is written in the new crate.
const BUNDLED_SDK_DIR: &str = "wsfn-sdk";

const fn bundled(path: &'static str, text: &'static str) -> Template {
    Template {
        path,
        text,
        executable: false,
    }
}

/// The guest SDK of the checkout this binary was built from, if it is still there.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// The SDK's package name, which is also the dependency the new crate declares.
const SDK_PACKAGE: &str = "wsfn-guest";

/// Names that cargo refuses for a package or that would clash with what the crate uses.
const RESERVED: &[&str] = &[
    // Rust keywords, strict and reserved.
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    // Crates every Rust build has, and the SDK itself.
    "alloc",
    "core",
    "proc_macro",
    "proc-macro",
    "std",
    "test",
    "wsfn-guest",
    "wsfn_guest",
];

/// Why a function crate was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a valid function name: use 1 to 64 ASCII letters, digits, `-` or `_`, \
         starting with a letter"
    )]
    InvalidName(String),
    #[error("`{0}` is reserved in Rust or by cargo; choose another name")]
    ReservedName(String),
    #[error("{} already exists; choose another name or --path", .0.display())]
    Exists(PathBuf),
    #[error("{} is not the wsfn guest SDK (no package `{SDK_PACKAGE}` in its Cargo.toml)", .0.display())]
    NotTheSdk(PathBuf),
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Where the new crate finds `wsfn-guest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A path dependency on a guest SDK directory.
    Path(PathBuf),
    /// The copy this binary carries, written into the crate's `wsfn-sdk/` (and the WIT into
    /// `wit/`): for a binary away from its checkout, or when asked for.
    Bundled,
}

/// What was written.
#[derive(Debug)]
pub struct Scaffolded {
    pub dir: PathBuf,
    pub sdk: SdkSource,
}

/// Checks that `name` can be both a function name and a cargo package name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if !is_valid_function_name(name) || !starts_with_letter {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ScaffoldError::ReservedName(name.to_owned()));
    }
    Ok(())
}

/// Chooses the SDK: `given` must be one; `bundled` asks for the copy this binary carries;
/// otherwise the checkout this binary was built from, if it is still there, else that copy.
pub fn find_sdk(given: Option<&Path>, bundled: bool) -> Result<SdkSource, ScaffoldError> {
    if let Some(dir) = given {
        return match sdk_dir(dir) {
            Some(dir) => Ok(SdkSource::Path(dir)),
            None => Err(ScaffoldError::NotTheSdk(dir.to_path_buf())),
        };
    }
    if bundled {
        return Ok(SdkSource::Bundled);
    }
    Ok(sdk_dir(Path::new(BUILT_FROM_SDK)).map_or(SdkSource::Bundled, SdkSource::Path))
}

/// `dir`, made absolute, if it holds the `wsfn-guest` package.
fn sdk_dir(dir: &Path) -> Option<PathBuf> {
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let manifest: toml::Table = manifest.parse().ok()?;
    let name = manifest.get("package")?.get("name")?.as_str()?;
    if name != SDK_PACKAGE {
        return None;
    }
    fs::canonicalize(dir).ok()
}

/// Writes the crate `<parent>/<name>/`. Refuses a directory that exists, whatever is in it.
pub fn create(name: &str, parent: &Path, sdk: SdkSource) -> Result<Scaffolded, ScaffoldError> {
    check_name(name)?;
    let dir = parent.join(name);
    let write_error = |path: &Path, source| ScaffoldError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    // `create_dir` rather than a check first: it fails on anything already there, even one
    // created a moment ago.
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ScaffoldError::Exists(dir));
        }
        Err(e) => return Err(write_error(&dir, e)),
    }
    let dependency = dependency_line(&sdk);
    let bundled: &[Template] = match sdk {
        SdkSource::Bundled => BUNDLED_SDK,
        SdkSource::Path(_) => &[],
    };
    let written = TEMPLATES.iter().chain(bundled).try_for_each(|template| {
        let path = dir.join(template.path);
        write_file(
            &path,
            &fill(template.text, name, &dependency),
            template.executable,
        )
        .map_err(|e| write_error(&path, e))
    });
    if let Err(error) = written {
        // Only what this call created is removed: the directory did not exist before.
        let _ = fs::remove_dir_all(&dir);
        return Err(error);
    }
    Ok(Scaffolded { dir, sdk })
}

/// The `wsfn-guest = ...` line of the new crate's `[dependencies]`.
fn dependency_line(sdk: &SdkSource) -> String {
    match sdk {
        SdkSource::Path(dir) => {
            // Quoted by the TOML writer, so any path survives.
            let path = toml::Value::String(dir.display().to_string());
            format!("{SDK_PACKAGE} = {{ path = {path} }}")
        }
        SdkSource::Bundled => format!(
            "# The SDK of wsfn-host {}, written here by `wsfn-host new`; the WIT it builds\n\
             # against is in wit/.\n\
             {SDK_PACKAGE} = {{ path = \"{BUNDLED_SDK_DIR}\" }}",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

/// Fills in a template's placeholders.
fn fill(template: &str, name: &str, dependency: &str) -> String {
    template
        .replace("{{name}}", name)
        // Cargo names the artifact after the crate, with `-` turned into `_`.
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{wsfn_guest}}", dependency)
}

fn write_file(path: &Path, text: &str, executable: bool) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_both_functions_and_cargo() {
        for good in ["hello", "Chat-Room_2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "2fast",
            "-x",
            "_x",
            "has space",
            "dot.ted",
            "ünï",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_name(bad), Err(ScaffoldError::InvalidName(_))),
                "{bad}"
            );
        }
        for reserved in ["fn", "std", "test", "wsfn-guest", "Self"] {
            assert!(
                matches!(check_name(reserved), Err(ScaffoldError::ReservedName(_))),
                "{reserved}"
            );
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dependency = dependency_line(&SdkSource::Path(PathBuf::from("/sdk \"quoted\"")));
        for template in TEMPLATES {
            let text = fill(template.text, "my-fn", &dependency);
            assert!(
                !text.contains("{{"),
                "{} keeps a placeholder",
                template.path
            );
        }
        let manifest: toml::Table = fill(TEMPLATES[0].text, "my-fn", &dependency)
            .parse()
            .expect("the manifest is TOML");
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-fn"));
        assert_eq!(
            manifest["dependencies"][SDK_PACKAGE]["path"].as_str(),
            Some("/sdk \"quoted\"")
        );
    }

    #[test]
    fn the_bundled_sdk_is_a_path_dependency_on_the_copy() {
        let dependency = dependency_line(&SdkSource::Bundled);
        let manifest: toml::Table = fill(TEMPLATES[0].text, "x", &dependency)
            .parse()
            .expect("the manifest is TOML");
        assert_eq!(
            manifest["dependencies"][SDK_PACKAGE]["path"].as_str(),
            Some(BUNDLED_SDK_DIR)
        );
        let sdk_manifest = BUNDLED_SDK
            .iter()
            .find(|file| file.path == "wsfn-sdk/Cargo.toml")
            .expect("the SDK's manifest is bundled");
        let sdk_manifest: toml::Table = sdk_manifest.text.parse().expect("TOML");
        assert_eq!(sdk_manifest["package"]["name"].as_str(), Some(SDK_PACKAGE));
    }

    #[test]
    fn every_sdk_source_file_is_bundled() {
        // A new module in the SDK must be added to BUNDLED_SDK, or bundled crates fail to build.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/src");
        for entry in fs::read_dir(&dir).expect("the SDK's sources") {
            let name = entry.expect("a directory entry").file_name();
            let path = format!("wsfn-sdk/src/{}", name.to_string_lossy());
            assert!(
                BUNDLED_SDK.iter().any(|file| file.path == path),
                "{path} is not bundled"
            );
        }
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps/keyvalue");
        let wit_files = fs::read_dir(&wit).expect("the WIT deps").count();
        let bundled_wit = BUNDLED_SDK
            .iter()
            .filter(|file| file.path.starts_with("wit/deps/keyvalue/"))
            .count();
        assert_eq!(wit_files, bundled_wit, "every WIT dependency is bundled");
    }

    #[test]
    fn an_existing_directory_is_never_touched() {
        let parent = std::env::temp_dir().join(format!("wsfn-scaffold-{}", std::process::id()));
        let dir = parent.join("taken");
        fs::create_dir_all(&dir).expect("temp dir");
        fs::write(dir.join("keep.txt"), "mine").expect("temp file");

        let result = create("taken", &parent, SdkSource::Bundled);

        assert!(
            matches!(result, Err(ScaffoldError::Exists(_))),
            "{result:?}"
        );
        assert_eq!(
            fs::read_to_string(dir.join("keep.txt")).ok().as_deref(),
            Some("mine")
        );
        assert!(!dir.join("Cargo.toml").exists());
        let _ = fs::remove_dir_all(&parent);
    }
}
