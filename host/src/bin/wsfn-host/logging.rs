//! The host's log on stderr: what RUST_LOG selects (default `info`), as lines for people or,
//! with `--log-format json`, one JSON object per line for log shippers.
//!
//! RUST_LOG takes a level and `target=level` pairs (`info,wsfn_host=debug`). The filter is
//! tracing-subscriber's `Targets`, which reads exactly that without the regex engine that the
//! span and field filters of `EnvFilter` would compile into the binary.
//!
//! Lines for people are coloured only when stderr is a terminal and NO_COLOR is not set
//! (<https://no-color.org>): a log written to a file or a pipe carries no escape codes.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use wsfn_host::options::LogFormat;

/// Installs the log for this process.
pub fn init(format: LogFormat) {
    let (filter, unreadable) = rust_log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            let colour = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            registry.with(log.with_ansi(colour)).init();
        }
        // The event's fields sit beside `timestamp`, `level`, `target` and `message`, as the
        // text lines show them.
        LogFormat::Json => registry
            .with(
                log.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .init(),
    }
    if let Some(error) = unreadable {
        tracing::warn!("RUST_LOG is not a filter ({error}); logging at info");
    }
}

/// The filter RUST_LOG asks for; `info` when it is unset, empty or unreadable (then with why).
fn rust_log_filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let info = Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => (info, None),
        Some(text) => match text.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(error) => (info, Some(error.to_string())),
        },
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
    fn rust_log_chooses_levels_per_target() {
        let (targets, error) = rust_log_filter(Some("warn,wsfn_host=debug"));
        assert_eq!(error, None);
        assert!(targets.would_enable("wsfn_host::front", &tracing::Level::DEBUG));
        assert!(!targets.would_enable("hyper", &tracing::Level::INFO));
        assert!(targets.would_enable("hyper", &tracing::Level::WARN));
    }

    #[test]
    fn no_or_a_bad_rust_log_means_info() {
        for unset in [None, Some(""), Some("  ")] {
            let (targets, error) = rust_log_filter(unset);
            assert_eq!(error, None);
            assert!(targets.would_enable("wsfn_host", &tracing::Level::INFO));
            assert!(!targets.would_enable("wsfn_host", &tracing::Level::DEBUG));
        }
        let (targets, error) = rust_log_filter(Some("wsfn_host=loud"));
        assert!(error.is_some());
        assert!(targets.would_enable("wsfn_host", &tracing::Level::INFO));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
