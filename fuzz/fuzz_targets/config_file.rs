//! Raw bytes as the host's config file (`wsfn-host run --config FILE`), read with the same
//! call `wsfn-host run` makes, then turned into the settings a host starts with.
//!
//! Asserted beyond "no panic": a file that is read gives settings whose limits are the ones
//! the options name; a refusal names the file.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wsfn_host::options::{OptionsError, RunOptions, Sources};

/// One file per fuzzing process, rewritten for each input.
static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("wsfn-fuzz-config-{}.toml", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    let written = std::fs::File::create(&*PATH).and_then(|mut file| file.write_all(data));
    if written.is_err() {
        return;
    }
    let args = ["--config".to_owned(), PATH.display().to_string()];
    match RunOptions::parse_from(args, Sources::ArgumentsOnly) {
        Ok(options) => {
            let limits = options.limits.to_limits();
            let settings = options.into_settings();
            assert_eq!(settings.limits.max_message_size, limits.max_message_size);
        }
        Err(OptionsError::InFile { path, .. }) => assert_eq!(path, *PATH),
        Err(_) => {}
    }
});
