//! `wsfn-host new`: writes a function crate and says how to build and run it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wsfn_host::scaffold;

#[derive(Args)]
pub struct NewArgs {
    /// The function's name, also its crate's: 1 to 64 letters, digits, `-` or `_`, starting
    /// with a letter. The crate is written to DIR/<name>.
    pub name: String,

    /// The directory to create the crate in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub path: PathBuf,

    /// The wsfn guest SDK (`guest-sdk` of a wsfn checkout) to depend on by path. Default: the
    /// checkout this binary was built from, if it is still there, else the registry.
    #[arg(long, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

pub fn new_function(args: &NewArgs) -> Result<()> {
    let sdk = scaffold::find_sdk(args.sdk_path.as_deref())?;
    let created = scaffold::create(&args.name, &args.path, sdk)?;
    let name = &args.name;
    match &created.sdk {
        scaffold::SdkSource::Path(dir) => {
            println!(
                "created {} (wsfn-guest from {})",
                created.dir.display(),
                dir.display()
            );
        }
        scaffold::SdkSource::Registry => {
            println!("created {}", created.dir.display());
            eprintln!("{}", REGISTRY_WARNING);
        }
    }
    println!("next:");
    println!("  cd {} && ./build.sh", created.dir.display());
    println!("  wsfn-host run {name}.wasm");
    Ok(())
}

/// Said when the new crate asks the registry for the SDK, which may not have it.
const REGISTRY_WARNING: &str = "warning: the wsfn guest SDK was not found, so Cargo.toml asks \
    the registry for wsfn-guest; pass --sdk-path or edit Cargo.toml to use a checkout's guest-sdk";

#[cfg(test)]
mod tests {
    use super::REGISTRY_WARNING;

    #[test]
    fn the_registry_warning_has_single_spaces() {
        assert!(!REGISTRY_WARNING.contains("  "), "{REGISTRY_WARNING:?}");
    }
}
