//! The configuration file of `wsfn-host run` (`wsfn.toml`; see `wsfn.example.toml`).
//!
//! The file fills in what the command line leaves at its defaults: an option given as a flag
//! or through its `WSFN_*` variable wins over the file, which wins over the built-in default.
//! clap's value sources tell the two apart, so the flags keep a single definition in `cli.rs`.
//! Paths in the file are relative to the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Deserializer};
use wsfn_host::config::{CompilePriority, SlowConsumerPolicy};
use wsfn_host::functions::FunctionSettings;

use crate::cli::{FunctionArg, RunArgs, parse_size};

/// Read when neither `--config` nor `WSFN_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "wsfn.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    admin_token_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    /// The Redis server to keep state in and cluster through (the same as `--redis`).
    redis: Option<String>,
    signing_key_file: Option<PathBuf>,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    functions: BTreeMap<String, FunctionSection>,
}

/// One function to serve, `[functions.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FunctionSection {
    path: PathBuf,
    /// Accept only signed URLs (as `--require-signed NAME`).
    #[serde(default)]
    require_signed_url: bool,
    /// What one of its resumable sessions may hold for the client (`--session-retention`
    /// for this function only).
    #[serde(default, deserialize_with = "size")]
    session_retention: Option<usize>,
    /// Whether its clients may negotiate permessage-deflate (`--deflate` for this function).
    deflate: Option<bool>,
    /// Its smallest compressed message (`--deflate-threshold` for this function).
    #[serde(default, deserialize_with = "size")]
    deflate_threshold: Option<usize>,
}

/// `[limits]`: every limit option of `wsfn-host run`, under the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsSection {
    #[serde(default, deserialize_with = "size")]
    max_message_size: Option<usize>,
    #[serde(default, deserialize_with = "size")]
    max_frame_size: Option<usize>,
    event_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "size")]
    instance_memory: Option<usize>,
    #[serde(default, deserialize_with = "size")]
    outbound_queue: Option<usize>,
    #[serde(default, deserialize_with = "choice")]
    slow_consumer: Option<SlowConsumerPolicy>,
    sends_per_event: Option<u32>,
    kv_keys_per_function: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    pong_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    allowed_origins: Option<Vec<String>>,
    max_instances: Option<u32>,
    warm_instances: Option<usize>,
    #[serde(default, deserialize_with = "size")]
    max_component_size: Option<usize>,
    shutdown_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "choice")]
    compile_priority: Option<CompilePriority>,
    #[serde(default, deserialize_with = "duration")]
    resume_window: Option<std::time::Duration>,
    #[serde(default, deserialize_with = "size")]
    session_retention: Option<usize>,
    deflate: Option<bool>,
    #[serde(default, deserialize_with = "size")]
    deflate_threshold: Option<usize>,
}

/// A duration as a number of milliseconds or a text with a unit (`"250ms"`, `"5s"`, `"2m"`).
fn duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Duration {
        Millis(u64),
        Text(String),
    }
    match Duration::deserialize(deserializer)? {
        Duration::Millis(ms) => Ok(Some(std::time::Duration::from_millis(ms))),
        Duration::Text(text) => crate::cli::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A size as a number of bytes or a text with a unit (`"64KiB"`, `"1MiB"`).
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(Some(bytes)),
        Size::Text(text) => parse_size(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// One of the values the command-line option of the same name accepts.
fn choice<'de, D: Deserializer<'de>, T: clap::ValueEnum>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let text = String::deserialize(deserializer)?;
    T::from_str(&text, false).map(Some).map_err(|_| {
        let known: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        serde::de::Error::custom(format!(
            "unknown value `{text}`: use one of {}",
            known.join(", ")
        ))
    })
}

impl ConfigFile {
    /// Reads and checks a file; errors name the file and, for its content, the line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Fills in `args` where the command line left an option at its default; `base` is the
    /// file's directory, against which its paths are resolved.
    pub fn apply(self, base: &Path, args: &mut RunArgs, matches: &ArgMatches) -> Result<()> {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let path = |relative: PathBuf| base.join(relative);

        macro_rules! fill {
            ($value:expr, $id:literal => $target:expr) => {
                if let Some(value) = $value
                    && !given($id)
                {
                    $target = value;
                }
            };
        }
        fill!(self.listen, "listen" => args.listen);
        fill!(self.admin_listen, "admin_listen" => args.admin_listen);
        fill!(self.data_dir.map(path), "data_dir" => args.data_dir);
        fill!(self.admin_token_file.map(path).map(Some), "admin_token_file" => args.admin_token_file);
        fill!(self.signing_key_file.map(path).map(Some), "signing_key_file" => args.signing_key_file);
        fill!(self.redis.map(Some), "redis" => args.redis);

        let limits = self.limits;
        let to = &mut args.limits;
        fill!(limits.max_message_size, "max_message_size" => to.max_message_size);
        fill!(limits.max_frame_size, "max_frame_size" => to.max_frame_size);
        fill!(limits.event_timeout_ms, "event_timeout_ms" => to.event_timeout_ms);
        fill!(limits.instance_memory, "instance_memory" => to.instance_memory);
        fill!(limits.outbound_queue, "outbound_queue" => to.outbound_queue);
        fill!(limits.slow_consumer, "slow_consumer" => to.slow_consumer);
        fill!(limits.sends_per_event, "sends_per_event" => to.sends_per_event);
        fill!(limits.kv_keys_per_function, "kv_keys_per_function" => to.kv_keys_per_function);
        fill!(limits.handshake_timeout_ms, "handshake_timeout_ms" => to.handshake_timeout_ms);
        fill!(limits.ping_interval_ms, "ping_interval_ms" => to.ping_interval_ms);
        fill!(limits.pong_timeout_ms, "pong_timeout_ms" => to.pong_timeout_ms);
        fill!(limits.idle_timeout_ms, "idle_timeout_ms" => to.idle_timeout_ms);
        fill!(limits.max_connections, "max_connections" => to.max_connections);
        fill!(limits.max_connections_per_ip, "max_connections_per_ip" => to.max_connections_per_ip);
        fill!(limits.allowed_origins, "allowed_origins" => to.allowed_origins);
        fill!(limits.max_instances, "max_instances" => to.max_instances);
        fill!(limits.warm_instances, "warm_instances" => to.warm_instances);
        fill!(limits.max_component_size, "max_component_size" => to.max_component_size);
        fill!(limits.shutdown_timeout_ms, "shutdown_timeout_ms" => to.shutdown_timeout_ms);
        fill!(limits.compile_priority, "compile_priority" => to.compile_priority);
        fill!(limits.resume_window, "resume_window" => to.resume_window);
        fill!(limits.session_retention, "session_retention" => to.session_retention);
        fill!(limits.deflate, "deflate" => to.deflate);
        fill!(limits.deflate_threshold, "deflate_threshold" => to.deflate_threshold);

        // A function named on the command line is served from the file given there; its
        // settings from the file still apply.
        for (name, function) in self.functions {
            if function.require_signed_url && !args.require_signed.contains(&name) {
                args.require_signed.push(name.clone());
            }
            let settings = FunctionSettings {
                session_retention: function.session_retention,
                deflate: function.deflate,
                deflate_threshold: function.deflate_threshold,
            };
            args.function_settings.insert(name.clone(), settings);
            if !args.functions.iter().any(|f| f.name == name) {
                args.functions.push(FunctionArg {
                    name,
                    path: path(function.path),
                });
            }
        }
        Ok(())
    }
}

/// Reads the config file named by `--config`/`WSFN_CONFIG`, or `./wsfn.toml` when it exists,
/// into `args`.
pub fn load_into(args: &mut RunArgs, matches: &ArgMatches) -> Result<()> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None if Path::new(DEFAULT_PATH).is_file() => PathBuf::from(DEFAULT_PATH),
        None => return Ok(()),
    };
    let file = ConfigFile::read(&path)?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    file.apply(&base, args, matches)
        .with_context(|| format!("in the config file {}", path.display()))?;
    tracing::info!("read the config file {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        format!("{:#}", ConfigFile::parse(text).unwrap_err())
    }

    #[test]
    fn the_example_file_is_valid() {
        let example = include_str!("../../wsfn.example.toml");
        let file = ConfigFile::parse(example).unwrap();
        assert!(!file.functions.is_empty());
        assert!(file.limits.max_message_size.is_some());
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let error = error_of("listen = \"127.0.0.1:0\"\n\n[limits]\nmax-mesage-size = 5\n");
        assert!(error.contains("max-mesage-size"), "{error}");
        assert!(error.contains("line 4"), "{error}");
        let error = error_of("[functions.echo]\npath = \"e.wasm\"\nrequire-signed = true\n");
        assert!(error.contains("require-signed"), "{error}");
    }

    #[test]
    fn sizes_and_policies_are_checked() {
        let file = ConfigFile::parse("[limits]\nmax-message-size = \"64KiB\"\nmax-frame-size = 100\nslow-consumer = \"drop-oldest\"\n").unwrap();
        assert_eq!(file.limits.max_message_size, Some(64 << 10));
        assert_eq!(file.limits.max_frame_size, Some(100));
        assert_eq!(
            file.limits.slow_consumer,
            Some(SlowConsumerPolicy::DropOldest)
        );
        assert!(error_of("[limits]\nmax-message-size = \"1GiB\"\n").contains("GiB"));
        assert!(error_of("[limits]\nslow-consumer = \"wait\"\n").contains("wait"));
    }
}
