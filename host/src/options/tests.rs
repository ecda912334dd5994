//! The options and the config file, read together as `wsfn-host run` reads them.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// A scratch directory for config files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wsfn-options-test-{}-{number}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Writes `wsfn.toml` with `text` and returns its path.
    fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("wsfn.toml");
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn parse(args: &[&str]) -> Result<RunOptions, OptionsError> {
    RunOptions::parse_from(args, Sources::ArgumentsOnly)
}

/// Options read with a config file of `text` and the arguments `args`.
fn parse_with_file(text: &str, args: &[&str]) -> Result<RunOptions, OptionsError> {
    let scratch = Scratch::new();
    let file = scratch.config(text);
    let mut all: Vec<OsString> = vec!["--config".into(), file.into()];
    all.extend(args.iter().map(OsString::from));
    RunOptions::parse_from(all, Sources::ArgumentsOnly)
}

fn file_error(text: &str) -> String {
    match parse_with_file(text, &[]) {
        Ok(_) => panic!("the file should be refused:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_defaults_are_the_librarys() {
    let options = parse(&[]).unwrap();
    // Debug output covers every field, including those the options do not set.
    assert_eq!(
        format!("{:?}", options.limits.to_limits()),
        format!("{:?}", Limits::default())
    );
    assert_eq!(
        format!("{:?}", options.cluster.to_settings()),
        format!("{:?}", ClusterSettings::default())
    );
    let settings = options.into_settings();
    let defaults = Settings::new(".wsfn");
    assert_eq!(settings.listen, defaults.listen);
    assert_eq!(settings.admin_listen, defaults.admin_listen);
    assert_eq!(settings.data_dir, defaults.data_dir);
    assert_eq!(settings.store, defaults.store);
}

#[test]
fn times_that_cannot_be_zero_are_refused() {
    for option in [
        "--event-timeout-ms",
        "--handshake-timeout-ms",
        "--pong-timeout-ms",
        "--cluster-timeout-ms",
        "--kv-timeout",
        "--max-instances",
    ] {
        let error = parse(&[option, "0"]).err().unwrap().to_string();
        assert!(error.contains(option), "{option}: {error}");
        assert!(
            error.contains("at least 1") || error.contains("longer than 0"),
            "{error}"
        );
    }
    let error = parse(&["--node-timeout-ms", "100"])
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("at least 300"), "{error}");
    // Where 0 means "off", it is accepted.
    let options = parse(&["--idle-timeout-ms", "0", "--ping-interval-ms", "0"]).unwrap();
    assert!(options.limits.to_limits().idle_timeout.is_zero());
}

#[test]
fn every_option_can_be_set_in_the_file() {
    let text = r#"
listen = "127.0.0.1:9000"
admin-listen = "127.0.0.1:9001"
data-dir = "data"
admin-token-file = "token"
signing-key-file = "key"
public-metrics = true
require-signed = ["chat"]
static = "site"
store = "memory"
log-format = "json"
redis = "redis://127.0.0.1:6379/"
node-timeout-ms = 900
cluster-timeout-ms = 700

[limits]
kv-timeout = "250ms"
max-message-size = "64KiB"
max-frame-size = 100
allowed-origins = ["https://a.example", "https://b.example"]
slow-consumer = "drop-oldest"
compile-priority = "idle"
max-instances = 0x10
"#;
    let scratch = Scratch::new();
    let file = scratch.config(text);
    let options = RunOptions::parse_from(
        ["--config".into(), file.clone().into_os_string()],
        Sources::ArgumentsOnly,
    )
    .unwrap();
    let dir = file.parent().unwrap();
    assert_eq!(options.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(options.admin_listen, "127.0.0.1:9001".parse().unwrap());
    assert_eq!(options.data_dir, dir.join("data"));
    assert_eq!(options.admin_token_file, Some(dir.join("token")));
    assert_eq!(options.signing_key_file, Some(dir.join("key")));
    assert!(options.public_metrics);
    assert_eq!(options.require_signed, ["chat"]);
    assert_eq!(options.static_dir, Some(dir.join("site")));
    assert_eq!(options.store, StoreKind::Memory);
    assert_eq!(options.log_format, LogFormat::Json);
    assert_eq!(options.redis.as_deref(), Some("redis://127.0.0.1:6379/"));
    assert_eq!(options.cluster.node_timeout_ms, 900);
    assert_eq!(options.cluster.cluster_timeout_ms, 700);
    let limits = options.limits.to_limits();
    assert_eq!(limits.kv_timeout, Duration::from_millis(250));
    assert_eq!(limits.max_message_size, 64 << 10);
    assert_eq!(limits.max_frame_size, 100);
    assert_eq!(
        limits.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(limits.slow_consumer, SlowConsumerPolicy::DropOldest);
    assert_eq!(limits.compile_priority, CompilePriority::Idle);
    assert_eq!(limits.max_instances, 16);
    assert_eq!(options.config, Some(file));
}

#[test]
fn flags_win_over_the_file_which_wins_over_the_defaults() {
    let text = "listen = \"127.0.0.1:9000\"\n[limits]\nmax-message-size = \"2KiB\"\n\
                idle-timeout-ms = 5\nallowed-origins = [\"https://file.example\"]\n";
    let options = parse_with_file(
        text,
        &[
            "--max-message-size",
            "4KiB",
            "--allowed-origin",
            "https://flag.example",
        ],
    )
    .unwrap();
    let limits = options.limits.to_limits();
    assert_eq!(limits.max_message_size, 4 << 10, "the flag");
    assert_eq!(limits.allowed_origins, ["https://flag.example"], "the flag");
    assert_eq!(limits.idle_timeout, Duration::from_millis(5), "the file");
    assert_eq!(
        options.listen,
        "127.0.0.1:9000".parse().unwrap(),
        "the file"
    );
    assert_eq!(limits.max_frame_size, 1 << 20, "the default");
}

#[test]
fn functions_come_from_the_file_and_the_command_line() {
    let text = "[functions.echo]\npath = \"fns/echo.wasm\"\n\n\
                [functions.chat]\npath = \"fns/chat.wasm\"\nrequire-signed-url = true\n\n\
                [functions.later]\nrequire-signed-url = true\n";
    let options = parse_with_file(
        text,
        &["chat=/elsewhere/chat.wasm", "--require-signed", "x"],
    )
    .unwrap();
    let dir = options.config.clone().unwrap().parent().unwrap().to_owned();
    let paths: Vec<(&str, &Path)> = options
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.path.as_path()))
        .collect();
    assert_eq!(
        paths,
        [
            ("chat", Path::new("/elsewhere/chat.wasm")),
            ("echo", dir.join("fns/echo.wasm").as_path()),
        ],
        "the command line's file wins for a name in both"
    );
    let settings = options.into_settings();
    let signed: Vec<&str> = settings.signed_only().collect();
    assert_eq!(signed, ["chat", "later", "x"]);
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let error = file_error("listen = \"127.0.0.1:0\"\n\n[limits]\nmax-mesage-size = 5\n");
    assert!(error.contains("unknown field `max-mesage-size`"), "{error}");
    assert!(error.contains("line 4"), "{error}");
    let error = file_error("listen = \"127.0.0.1:0\"\n[limts]\nmax-connections = 5\n");
    assert!(error.contains("unknown field `limts`"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    let error = file_error("[functions.echo]\npath = \"e.wasm\"\nrequire-signed = true\n");
    assert!(error.contains("require-signed"), "{error}");
    assert!(error.contains("line 3"), "{error}");
    let error = file_error("max_connections = 5\n");
    assert!(error.contains("`max-connections`?"), "{error}");
    let error = file_error("config = \"other.toml\"\n");
    assert!(error.contains("unknown field `config`"), "{error}");
}

#[test]
fn keys_in_the_wrong_place_say_where_they_belong() {
    let error = file_error("kv-timeout = \"1s\"\n");
    assert!(error.contains("[limits]"), "{error}");
    let error = file_error("[limits]\nlisten = \"127.0.0.1:0\"\n");
    assert!(error.contains("at the top of the file"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    let error = file_error("limits = 5\n");
    assert!(error.contains("is a section"), "{error}");
}

#[test]
fn values_go_through_the_options_own_parsers() {
    let error = file_error("[limits]\n\nmax-message-size = \"10MB\"\n");
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains("KiB or MiB"), "{error}");
    let error = file_error("[limits]\nslow-consumer = \"wait\"\n");
    assert!(error.contains("`wait`"), "{error}");
    assert!(error.contains("`drop-oldest`"), "{error}");
    let error = file_error("[limits]\nevent-timeout-ms = 0\n");
    assert!(error.contains("at least 1"), "{error}");
    let error = file_error("listen = \"localhost:80\"\n");
    assert!(error.contains("not an IP address"), "{error}");
    let error = file_error("public-metrics = \"yes\"\n");
    assert!(error.contains("true or false"), "{error}");
    let error = file_error("[limits]\nmax-connections = [1, 2]\n");
    assert!(error.contains("not a list"), "{error}");
    let error = file_error("listen = 127.0.0.1\n");
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn the_example_file_is_valid_and_lists_every_key() {
    let example = include_str!("../../../wsfn.example.toml");
    let options = parse_with_file(example, &[]).unwrap();
    assert!(!options.functions.is_empty());
    let mut command = RunOptions::command();
    command.build();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else {
            continue;
        };
        if ["config", "help", "version"].contains(&id) {
            continue;
        }
        let key = arg
            .get_all_aliases()
            .and_then(|aliases| aliases.first().copied())
            .unwrap_or(long);
        let listed = example
            .lines()
            .map(|line| line.trim_start_matches(['#', ' ']))
            .any(|line| line.starts_with(&format!("{key} =")));
        assert!(listed, "wsfn.example.toml does not list `{key}`");
    }
}
