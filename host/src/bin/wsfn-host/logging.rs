//! The host's log on stderr: what RUST_LOG selects (default `info`), as lines for people or,
//! with `--log-format json`, one JSON object per line for log shippers.
//!
//! Lines for people are coloured only when stderr is a terminal and NO_COLOR is not set
//! (<https://no-color.org>): a log written to a file or a pipe carries no escape codes.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use wsfn_host::options::LogFormat;

/// Installs the log for this process.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            log.with_ansi(colour).init();
        }
        // The event's fields sit beside `timestamp`, `level`, `target` and `message`, as the
        // text lines show them.
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// Colour for a terminal only, and never when NO_COLOR is set to anything but nothing.
fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
