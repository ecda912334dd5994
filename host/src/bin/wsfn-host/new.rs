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
    /// checkout this binary was built from, if it is still there, else the copy this binary
    /// carries, written into the crate (see --bundled-sdk).
    #[arg(long, value_name = "DIR", conflicts_with = "bundled_sdk")]
    pub sdk_path: Option<PathBuf>,

    /// Write the guest SDK and WIT this binary carries into the crate (`wsfn-sdk/`, `wit/`),
    /// even when a checkout is found, so the crate builds on its own.
    #[arg(long)]
    pub bundled_sdk: bool,
}

pub fn new_function(args: &NewArgs) -> Result<()> {
    let sdk = scaffold::find_sdk(args.sdk_path.as_deref(), args.bundled_sdk)?;
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
        scaffold::SdkSource::Bundled => {
            println!(
                "created {} (wsfn-guest {} in wsfn-sdk/)",
                created.dir.display(),
                env!("CARGO_PKG_VERSION")
            );
        }
    }
    println!("next:");
    println!("  cd {} && ./build.sh", created.dir.display());
    println!("  wsfn-host run {name}.wasm");
    Ok(())
}
