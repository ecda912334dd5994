//! The options of `wsfn-host run`, each defined once, as a clap argument: that one definition
//! gives the option its flag, its `WSFN_*` variable (where it has one), its default, its help,
//! its value parser, and its key in the config file ([`config_file`]), whose values go through
//! the same parser. Nothing else lists the options, so the file cannot accept what the
//! command line refuses, and a new option is in the file as soon as it is a flag.
//!
//! They live in the library, not in the binary, so that a host can be started from the same
//! options inside another program: the end-to-end tests start in-process hosts with them.
//! [`RunOptions::into_settings`] turns them into the [`Settings`] that [`crate::launch`]
//! starts a host with. The binary keeps its subcommands and the client commands.

mod config_file;
pub mod values;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgMatches, Args, FromArgMatches, ValueHint};

use crate::cluster::ClusterSettings;
use crate::config::{CompilePriority, Limits, SlowConsumerPolicy};
use crate::launch::{ComponentFile, FunctionSettings, Secret, Settings};
use crate::state::StoreKind;

pub use config_file::DEFAULT_PATH as DEFAULT_CONFIG_FILE;

/// The help heading of the limits, which are also the `[limits]` section of the config file.
pub const LIMITS_HEADING: &str = "Limits";

/// The help heading of the cluster options.
const CLUSTER_HEADING: &str = "Cluster (with --redis)";

/// The options of `wsfn-host run`.
#[derive(Args)]
pub struct RunOptions {
    /// Functions to deploy at start, as `file.wasm` (named after the file stem) or
    /// `name=file.wasm`. Names are 1 to 64 letters, digits, `-` or `_`. Functions deployed
    /// earlier into the data directory are served too.
    #[arg(value_name = "FUNCTION")]
    pub functions: Vec<FunctionArg>,

    /// Configuration file (TOML, see wsfn.example.toml): its keys are the long options below,
    /// limits under [limits]. Without it, ./wsfn.toml is read when it exists. Options given as
    /// flags or WSFN_* variables override the file.
    #[arg(long, env = "WSFN_CONFIG", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// Address of the WebSocket listener: an IP address and a port. Port 0 picks a free port;
    /// the address actually bound is printed on stdout as `wsfn-host listening on ws://ADDR`.
    #[arg(long, env = "WSFN_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8080",
          value_parser = values::listen_address)]
    pub listen: SocketAddr,

    /// Address of the admin API. A non-loopback address requires a token
    /// (WSFN_ADMIN_TOKEN or --admin-token-file). The address actually bound is printed on
    /// stdout as `wsfn-host admin API on http://ADDR`.
    #[arg(long, env = "WSFN_ADMIN_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8081",
          value_parser = values::listen_address)]
    pub admin_listen: SocketAddr,

    /// Where deployed versions, their compiled code, the generated admin token and the durable
    /// key-value store (state.redb) are kept.
    #[arg(long, env = "WSFN_DATA_DIR", value_name = "DIR", default_value = ".wsfn",
          value_hint = ValueHint::DirPath)]
    pub data_dir: PathBuf,

    /// File holding the admin bearer token. Without it (and without WSFN_ADMIN_TOKEN, which
    /// holds the token itself and wins over the file) a token is generated into
    /// <data-dir>/admin-token, readable only by its owner.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub admin_token_file: Option<PathBuf>,

    /// Serve the admin API's /metrics without the admin token (every other admin route still
    /// needs it), for Prometheus scrapers that cannot send one.
    #[arg(long)]
    pub public_metrics: bool,

    /// File holding the key signed connection URLs are made with: at least 32 bytes,
    /// surrounding whitespace ignored (e.g. `openssl rand -hex 32`). WSFN_SIGNING_KEY may
    /// hold the key itself instead, and wins over the file.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub signing_key_file: Option<PathBuf>,

    /// A function that accepts only signed URLs; others get 401 (repeat for several). In the
    /// config file also `require-signed-url = true` in the function's section.
    #[arg(long = "require-signed", value_name = "FUNCTION")]
    pub require_signed: Vec<String>,

    /// Serve the files of this directory over plain HTTP (GET and HEAD) on the WebSocket
    /// listener, e.g. `--static clients/js` for the browser client and its demo; a directory
    /// serves its `index.html`. A WebSocket upgrade, or a plain GET of a path that could be a
    /// function's name and is no file, goes to the functions; other missing paths get 404.
    #[arg(long = "static", env = "WSFN_STATIC", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub static_dir: Option<PathBuf>,

    /// Where key-value state is kept on this host: `durable` in <data-dir>/state.redb (every
    /// acknowledged write survives a crash) or `memory` (lost when the host stops). Ignored
    /// with --redis.
    #[arg(long, env = "WSFN_STORE", value_name = "KIND", value_enum,
          default_value_t = StoreKind::Durable)]
    pub store: StoreKind,

    /// How the log on stderr is written: `text` for people (coloured only on a terminal, and
    /// never with NO_COLOR set), `json` for log shippers: one object per line with the same
    /// fields. RUST_LOG chooses what is logged (default: info).
    #[arg(long, env = "WSFN_LOG_FORMAT", value_name = "FORMAT", value_enum,
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Redis to keep state in and to cluster through: `redis://127.0.0.1:6379/` (one server,
    /// or any node of a Redis Cluster), several such URLs separated by commas (a Redis
    /// Cluster's seeds), or `redis+sentinel://HOST:PORT[,HOST:PORT...]/NAME` (the primary
    /// Sentinels know as NAME, followed across failovers). Every host started with the same
    /// Redis acts as one: connections on any node can be reached from every node, groups span
    /// nodes, and deploys reach every node.
    #[arg(long, env = "WSFN_REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,

    #[command(flatten)]
    pub cluster: ClusterOptions,

    #[command(flatten)]
    pub limits: LimitOptions,

    /// Settings of single functions, from the config file's `[functions.NAME]` sections.
    #[arg(skip)]
    pub function_settings: BTreeMap<String, FunctionSettings>,

    /// WSFN_ADMIN_TOKEN, when the environment was read: secrets have no flag, so they never
    /// show in a process listing.
    #[arg(skip)]
    pub admin_token: Option<String>,

    /// WSFN_SIGNING_KEY, when the environment was read.
    #[arg(skip)]
    pub signing_key: Option<String>,
}

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How a node takes part in a cluster (only with --redis).
#[derive(Args)]
#[command(next_help_heading = CLUSTER_HEADING)]
pub struct ClusterOptions {
    /// A node that sends no heartbeat for this long is declared dead; a surviving node then
    /// runs on-close (code 1006) for each of its connections within this time plus a third.
    /// At least 300.
    #[arg(long, value_name = "MS", default_value_t = 3000,
          value_parser = values::node_timeout_millis)]
    pub node_timeout_ms: u64,

    /// Longest an event or admin request waits for one Redis round trip of the cluster.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = values::positive_millis)]
    pub cluster_timeout_ms: u64,
}

impl ClusterOptions {
    pub fn to_settings(&self) -> ClusterSettings {
        ClusterSettings {
            node_timeout: Duration::from_millis(self.node_timeout_ms),
            request_timeout: Duration::from_millis(self.cluster_timeout_ms),
            ..ClusterSettings::default()
        }
    }
}

/// Limits that protect the host; see the README's table of limits. Sizes are
/// [`values::SIZE_UNITS`].
#[derive(Args)]
#[command(next_help_heading = LIMITS_HEADING)]
pub struct LimitOptions {
    /// Largest message a client may send (after reassembling fragments); larger closes with
    /// 1009. Bytes, or with the unit KiB or MiB.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = values::size)]
    pub max_message_size: usize,

    /// Largest single frame a client may send; larger closes with 1009. Bytes, or KiB or MiB.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = values::size)]
    pub max_frame_size: usize,

    /// Guest time one event may use; past it the event is stopped and the connection closed
    /// with 1011. At least 1.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = values::positive_millis)]
    pub event_timeout_ms: u64,

    /// Linear memory one guest instance may use. Bytes, or KiB or MiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = values::size)]
    pub instance_memory: usize,

    /// Bytes that may wait to be written to one connection; a client that lets more pile up
    /// is closed with 1008 (see --slow-consumer). Bytes, or KiB or MiB.
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = values::size)]
    pub outbound_queue: usize,

    /// What to do when a client does not read what is sent to it and its queue is full.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = SlowConsumerPolicy::Close)]
    pub slow_consumer: SlowConsumerPolicy,

    /// Messages one event may send (reply, send, each id of send-many, each publish).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sends_per_event: u32,

    /// Keys one function may keep in the key-value store.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub kv_keys_per_function: usize,

    /// How long one key-value call of a function may wait for the store before it fails with
    /// `other` (time spent waiting does not count against --event-timeout-ms): `250ms`, `5s`,
    /// or a bare number of milliseconds; more than 0.
    #[arg(long, value_name = "DURATION", default_value = "5s",
          value_parser = values::positive_duration)]
    pub kv_timeout: Duration,

    /// How long a client may take to send its handshake request after connecting. At least 1.
    #[arg(long, value_name = "MS", default_value_t = 10_000, value_parser = values::positive_millis)]
    pub handshake_timeout_ms: u64,

    /// A ping is sent after this long without hearing from a peer; 0 disables pings.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub ping_interval_ms: u64,

    /// A peer that answers nothing this long after a ping is considered gone. At least 1.
    #[arg(long, value_name = "MS", default_value_t = 20_000, value_parser = values::positive_millis)]
    pub pong_timeout_ms: u64,

    /// A connection that sends no message this long is closed with 1001; 0 disables it.
    #[arg(long, value_name = "MS", default_value_t = 600_000)]
    pub idle_timeout_ms: u64,

    /// Open connections the host accepts in all; more are refused with 503.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Open connections one client address may have; more are refused with 429.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections_per_ip: usize,

    /// Browser origins allowed to connect (repeat for several; in the config file a list,
    /// `allowed-origins`). Without it any origin may connect; requests without an Origin
    /// header (non-browser clients) are always allowed.
    #[arg(
        long = "allowed-origin",
        alias = "allowed-origins",
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// Guest instances that may exist at once on the host, over all functions (each reserves
    /// address space for its memory; lower it where address space is scarce). At least 1.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = values::instance_count)]
    pub max_instances: u32,

    /// Warm instances kept per function; 0 runs every event on a fresh instance.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub warm_instances: usize,

    /// Largest component the admin API accepts. Bytes, or KiB or MiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = values::size)]
    pub max_component_size: usize,

    /// How long shutdown waits for connections to close and run on-close.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// How compiling a deployed component shares the CPU with serving: `idle` keeps serving
    /// latency unchanged on a busy host (deploys then take longer), `low` is nice 10.
    #[arg(long, value_name = "PRIORITY", value_enum, default_value_t = CompilePriority::Low)]
    pub compile_priority: CompilePriority,

    /// How long a resumable session whose socket was lost is kept for its client to resume
    /// before its on-close runs (code 1006): `500ms`, `30s`, `2m`; more than 0.
    #[arg(long, value_name = "DURATION", default_value = "2m",
          value_parser = values::positive_duration)]
    pub resume_window: Duration,

    /// Payload bytes a resumable session may hold for its client: queued, or sent and not yet
    /// acknowledged. More ends the connection (1008) rather than leave a hole in what its
    /// client receives. Bytes, or KiB or MiB; per function `session-retention`.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = values::size)]
    pub session_retention: usize,

    /// Whether clients may negotiate permessage-deflate (RFC 7692; every browser offers it):
    /// `on` or `off`; per function `deflate = false`.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = values::toggle)]
    pub deflate: bool,

    /// Messages smaller than this go uncompressed even where permessage-deflate was
    /// negotiated. Bytes, or KiB or MiB; per function `deflate-threshold`.
    #[arg(long, value_name = "SIZE", default_value = "128", value_parser = values::size)]
    pub deflate_threshold: usize,
}

impl LimitOptions {
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_frame_size,
            slow_consumer: self.slow_consumer,
            sends_per_event: self.sends_per_event,
            kv_keys_per_function: self.kv_keys_per_function,
            kv_timeout: self.kv_timeout,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            ping_interval: Duration::from_millis(self.ping_interval_ms),
            pong_timeout: Duration::from_millis(self.pong_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            allowed_origins: self.allowed_origins.clone(),
            event_timeout: Duration::from_millis(self.event_timeout_ms),
            instance_memory: self.instance_memory,
            outbound_queue_bytes: self.outbound_queue,
            warm_instances: self.warm_instances,
            max_instances: self.max_instances,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            compile_priority: self.compile_priority,
            max_component_size: self.max_component_size,
            resume_window: self.resume_window,
            session_retention: self.session_retention,
            deflate: self.deflate,
            deflate_threshold: self.deflate_threshold,
            ..Limits::default()
        }
    }
}

/// A function given on the command line: `file.wasm` or `name=file.wasm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionArg {
    pub name: String,
    pub path: PathBuf,
}

impl std::str::FromStr for FunctionArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        if let Some((name, path)) = arg.split_once('=') {
            return Ok(Self {
                name: name.to_owned(),
                path: path.into(),
            });
        }
        let path = PathBuf::from(arg);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("cannot name a function after `{arg}`: use name=file.wasm"))?
            .to_owned();
        Ok(Self { name, path })
    }
}

/// Where option values come from besides the arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// The `WSFN_*` variables, `./wsfn.toml` when no config file is named, and the secrets
    /// WSFN_ADMIN_TOKEN and WSFN_SIGNING_KEY: what `wsfn-host run` reads.
    ArgumentsAndEnvironment,
    /// The arguments only (and the config file they name), for a host started inside another
    /// program, whose environment and working directory are not the host's.
    ArgumentsOnly,
}

/// Why the options could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A flag or variable is wrong; clap's own error, with usage, for the binary to print.
    #[error(transparent)]
    Arguments(#[from] clap::Error),
    #[error("cannot read the config file {path}: {cause}")]
    ReadFile {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Something in the config file is wrong: the file, the line and what to change.
    #[error("in the config file {path}, line {line}: {message}")]
    InFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl RunOptions {
    /// The `run` command with every option: for help and for parsing.
    pub fn command() -> clap::Command {
        Self::augment_args(clap::Command::new("run").bin_name("wsfn-host run"))
    }

    /// Reads the options from `args` (the arguments after `run`), from `sources`, and from the
    /// config file: flags and variables win over the file, which wins over the defaults.
    pub fn parse_from<I, T>(args: I, sources: Sources) -> Result<Self, OptionsError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Self::command();
        if sources == Sources::ArgumentsOnly {
            command = command.mut_args(|arg| arg.env(None));
        }
        let program = || OsString::from("wsfn-host run");
        let given =
            command.try_get_matches_from_mut(std::iter::once(program()).chain(args.clone()))?;
        let Some(path) = config_path(&given, sources) else {
            return Self::finish(&given, sources);
        };
        let file = config_file::read(&path, &command, &given)?;
        // The file's options go first, so that a `--` among the arguments still ends the
        // options; none of them is also given, so none is given twice.
        let all = std::iter::once(program()).chain(file.args).chain(args);
        let matches = command.try_get_matches_from_mut(all)?;
        let mut options = Self::finish(&matches, sources)?;
        options.config = Some(path);
        for (name, function) in file.functions {
            if let Some(path) = function.path
                && !options.functions.iter().any(|f| f.name == name)
            {
                options.functions.push(FunctionArg {
                    name: name.clone(),
                    path,
                });
            }
            options.function_settings.insert(name, function.settings);
        }
        Ok(options)
    }

    fn finish(matches: &ArgMatches, sources: Sources) -> Result<Self, OptionsError> {
        let mut options = Self::from_arg_matches(matches)?;
        if sources == Sources::ArgumentsAndEnvironment {
            let secret = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
            options.admin_token = secret("WSFN_ADMIN_TOKEN");
            options.signing_key = secret("WSFN_SIGNING_KEY");
        }
        Ok(options)
    }

    /// The settings to start a host with.
    pub fn into_settings(self) -> Settings {
        let mut function_settings = self.function_settings;
        for name in self.require_signed {
            function_settings
                .entry(name)
                .or_default()
                .require_signed_url = true;
        }
        let secret = |value: Option<String>, file: Option<PathBuf>| {
            value.map(Secret::Value).or(file.map(Secret::File))
        };
        Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            data_dir: self.data_dir,
            static_dir: self.static_dir,
            admin_token: secret(self.admin_token, self.admin_token_file),
            signing_key: secret(self.signing_key, self.signing_key_file),
            public_metrics: self.public_metrics,
            store: self.store,
            redis: self.redis,
            cluster: self.cluster.to_settings(),
            limits: self.limits.to_limits(),
            functions: self
                .functions
                .into_iter()
                .map(|f| ComponentFile {
                    name: f.name,
                    path: f.path,
                })
                .collect(),
            function_settings,
        }
    }
}

/// The config file to read: the one named, else `./wsfn.toml` when the environment (the
/// working directory) counts and it exists there.
fn config_path(given: &ArgMatches, sources: Sources) -> Option<PathBuf> {
    if let Some(path) = given.get_one::<PathBuf>("config") {
        return Some(path.clone());
    }
    let default = Path::new(DEFAULT_CONFIG_FILE);
    (sources == Sources::ArgumentsAndEnvironment && default.is_file()).then(|| default.to_owned())
}

#[cfg(test)]
mod tests;
