//! `wsfn-host check`: whether component files are valid wsfn functions, without serving them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use wsfn_host::config::Limits;
use wsfn_host::host::Host;
use wsfn_host::state::MemoryStore;

#[derive(Args)]
pub struct CheckArgs {
    /// Component files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub async fn check(args: CheckArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("wsfn-check-{}", std::process::id()));
    let limits = Limits::default();
    let kv = Arc::new(MemoryStore::new(limits.kv_keys_per_function));
    let host = Host::new(limits, &scratch, kv)?;
    let mut failed = 0;
    for path in &args.files {
        let result = match std::fs::read(path) {
            Ok(bytes) => host
                .functions
                .check(bytes)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        match result {
            Ok(exports) => println!("ok    {}  ({exports})", path.display()),
            Err(error) => {
                failed += 1;
                println!("FAIL  {}: {error:#}", path.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed > 0 {
        bail!(
            "{failed} of {} components are not valid wsfn functions",
            args.files.len()
        );
    }
    Ok(())
}
