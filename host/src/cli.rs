//! Command-line interface of `wsfn-host`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsfn_host::config::{CompilePriority, Limits, SlowConsumerPolicy};
use wsfn_host::state::StoreKind;

#[derive(Parser)]
#[command(
    name = "wsfn-host",
    version,
    about = "Host for WebSocket serverless functions written as WebAssembly components",
    long_about = "Host for WebSocket serverless functions written as WebAssembly components.\n\n\
        A function is a component targeting the `wsfn:function/function` world (see wit/). \
        wsfn-host terminates the WebSockets, runs on-connect before the handshake completes, \
        on-message for every message and on-close once per connection, each in a sandboxed \
        instance with no files, sockets or environment.\n\n\
        Logging is controlled with RUST_LOG (default: info), e.g. RUST_LOG=wsfn_host=debug."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
// Parsed once at start; the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve functions: each at ws://LISTEN/<name>.
    Run(Box<RunArgs>),
    /// Check that components are valid wsfn functions, without serving them.
    Check(CheckArgs),
    /// Deploy a component to a running host as a new function or a new version (hot swap).
    Deploy(DeployArgs),
    /// List the functions of a running host.
    Functions(ClientArgs),
    /// Serve the previous (or a given) version of a function on a running host.
    Rollback(RollbackArgs),
    /// Follow a function's live log on a running host: guest output and lifecycle events.
    Logs(LogsArgs),
    /// Create a new function crate, ready to build and run.
    New(NewArgs),
}

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

#[derive(Args)]
pub struct RunArgs {
    /// Functions to deploy at start, as `file.wasm` (named after the file stem) or
    /// `name=file.wasm`. Names are 1 to 64 letters, digits, `-` or `_`. Functions deployed
    /// earlier into the data directory are served too.
    #[arg(value_name = "FUNCTION")]
    pub functions: Vec<FunctionArg>,

    /// Where deployed versions, their compiled code, the generated admin token and the durable
    /// key-value store (state.redb) are kept.
    #[arg(long, env = "WSFN_DATA_DIR", default_value = ".wsfn")]
    pub data_dir: PathBuf,

    /// Address of the admin API. A non-loopback address requires a token
    /// (WSFN_ADMIN_TOKEN or --admin-token-file). The address actually bound is printed on
    /// stdout as `wsfn-host admin API on http://ADDR`.
    #[arg(long, env = "WSFN_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,

    /// File holding the admin bearer token. Without it (and without WSFN_ADMIN_TOKEN) a token
    /// is generated into <data-dir>/admin-token, readable only by its owner.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Address of the WebSocket listener. Port 0 picks a free port; the address actually bound
    /// is printed on stdout as `wsfn-host listening on ws://ADDR`.
    #[arg(long, env = "WSFN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve the files of this directory over plain HTTP (GET and HEAD) on the WebSocket
    /// listener, e.g. `--static clients/js` for the browser client and its demo. A request
    /// that is a WebSocket upgrade, or names no file, goes to the functions as usual.
    #[arg(long = "static", env = "WSFN_STATIC", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Configuration file (TOML, see wsfn.example.toml). Without it, ./wsfn.toml is read when
    /// it exists. Options given as flags or WSFN_* variables override the file.
    #[arg(long, env = "WSFN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// File holding the key signed connection URLs are made with: at least 32 bytes,
    /// surrounding whitespace ignored (e.g. `openssl rand -hex 32`). WSFN_SIGNING_KEY may
    /// hold the key itself instead, and wins over the file.
    #[arg(long, value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// A function that accepts only signed URLs; others get 401 (repeat for several).
    #[arg(long = "require-signed", value_name = "FUNCTION")]
    pub require_signed: Vec<String>,
    /// Serve the admin API's /metrics without the admin token (every other admin route still
    /// needs it), for Prometheus scrapers that cannot send one.
    #[arg(long)]
    pub public_metrics: bool,

    /// Where key-value state is kept on this host: `durable` in <data-dir>/state.redb (every
    /// acknowledged write survives a crash) or `memory` (lost when the host stops). Ignored
    /// with --redis.
    #[arg(long, env = "WSFN_STORE", value_enum, default_value_t = StoreKind::Durable)]
    pub store: StoreKind,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Redis to keep state in and to cluster through, e.g. `redis://127.0.0.1:6379/`. Every
    /// host started with the same Redis acts as one: connections on any node can be reached
    /// from every node, groups span nodes, and deploys reach every node.
    #[arg(long, env = "WSFN_REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Per-function settings from the config file's `[functions.NAME]` sections.
    #[arg(skip)]
    pub function_settings:
        std::collections::BTreeMap<String, wsfn_host::functions::FunctionSettings>,
}

/// How a node takes part in a cluster (only with --redis).
#[derive(Args)]
pub struct ClusterArgs {
    /// A node that sends no heartbeat for this long is declared dead; a surviving node then
    /// runs on-close (code 1006) for each of its connections within this time plus a third.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub node_timeout_ms: u64,

    /// Longest an event or admin request waits for one Redis round trip of the cluster.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub cluster_timeout_ms: u64,
}

impl ClusterArgs {
    pub fn to_settings(&self) -> wsfn_host::cluster::ClusterSettings {
        wsfn_host::cluster::ClusterSettings {
            node_timeout: Duration::from_millis(self.node_timeout_ms.max(300)),
            request_timeout: Duration::from_millis(self.cluster_timeout_ms.max(1)),
            ..Default::default()
        }
    }
}

/// Limits that protect the host; see the README's table of limits.
#[derive(Args)]
pub struct LimitArgs {
    /// Largest message a client may send (after reassembling fragments); larger closes with 1009.
    /// Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Largest single frame a client may send; larger closes with 1009. Accepts suffixes KiB
    /// and MiB.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub max_frame_size: usize,

    /// Guest time one event may use; past it the event is stopped and the connection closed
    /// with 1011.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub event_timeout_ms: u64,

    /// Linear memory one guest instance may use. Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub instance_memory: usize,

    /// Bytes that may wait to be written to one connection; a client that lets more pile up
    /// is closed with 1008. Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_size)]
    pub outbound_queue: usize,

    /// What to do when a client does not read what is sent to it and its queue is full.
    #[arg(long, value_enum, default_value_t = SlowConsumerPolicy::Close)]
    pub slow_consumer: SlowConsumerPolicy,

    /// Messages one event may send (reply, send, each id of send-many, each publish).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sends_per_event: u32,

    /// Keys one function may keep in the key-value store.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub kv_keys_per_function: usize,

    /// How long one key-value call of a function may wait for the store before it fails with
    /// `other` (time spent waiting does not count against --event-timeout-ms). Accepts `ms`
    /// and `s` suffixes; a bare number is milliseconds.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub kv_timeout: Duration,

    /// How long a client may take to send its handshake request after connecting.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,

    /// A ping is sent after this long without hearing from a peer; 0 disables pings.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub ping_interval_ms: u64,

    /// A peer that answers nothing this long after a ping is considered gone.
    #[arg(long, value_name = "MS", default_value_t = 20_000)]
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

    /// Browser origins allowed to connect (repeat for several). Without it any origin may
    /// connect; requests without an Origin header (non-browser clients) are always allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,

    /// Guest instances that may exist at once on the host, over all functions (each reserves
    /// address space for its memory; lower it where address space is scarce).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,

    /// Warm instances kept per function; 0 runs every event on a fresh instance.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub warm_instances: usize,

    /// Largest component the admin API accepts. Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_component_size: usize,

    /// How long shutdown waits for connections to close and run on-close.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// How compiling a deployed component shares the CPU with serving: `idle` keeps serving
    /// latency unchanged on a busy host (deploys then take longer), `low` is nice 10.
    #[arg(long, value_enum, default_value_t = CompilePriority::Low)]
    pub compile_priority: CompilePriority,

    /// How long a resumable session whose socket was lost is kept for its client to resume
    /// before its on-close runs (code 1006). Accepts `ms`, `s` and `m` suffixes.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub resume_window: Duration,

    /// Payload bytes a resumable session may hold for its client: queued, or sent and not yet
    /// acknowledged. More ends the connection (1008) rather than leave a hole in what its
    /// client receives. Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub session_retention: usize,

    /// Whether clients may negotiate permessage-deflate (RFC 7692; every browser offers it):
    /// `on` or `off`.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_toggle)]
    pub deflate: bool,

    /// Messages smaller than this go uncompressed even where permessage-deflate was
    /// negotiated. Accepts suffixes KiB and MiB.
    #[arg(long, value_name = "BYTES", default_value = "128", value_parser = parse_size)]
    pub deflate_threshold: usize,
}

/// Parses `on` or `off`.
pub fn parse_toggle(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("`{other}` is neither `on` nor `off`")),
    }
}

impl LimitArgs {
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_frame_size,
            slow_consumer: self.slow_consumer,
            sends_per_event: self.sends_per_event,
            kv_keys_per_function: self.kv_keys_per_function,
            kv_timeout: self.kv_timeout.max(Duration::from_millis(1)),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms.max(1)),
            ping_interval: Duration::from_millis(self.ping_interval_ms),
            pong_timeout: Duration::from_millis(self.pong_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            allowed_origins: self.allowed_origins.clone(),
            event_timeout: Duration::from_millis(self.event_timeout_ms.max(1)),
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

#[derive(Args)]
pub struct CheckArgs {
    /// Component files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// How the client commands reach a running host's admin API.
#[derive(Args)]
pub struct ClientArgs {
    /// The admin API of the host.
    #[arg(long, env = "WSFN_ADMIN_URL", default_value = "http://127.0.0.1:8081")]
    pub admin_url: String,

    /// File holding the admin token; by default WSFN_ADMIN_TOKEN, else <data-dir>/admin-token.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// The host's data directory, where a generated admin token is found.
    #[arg(long, env = "WSFN_DATA_DIR", default_value = ".wsfn")]
    pub data_dir: PathBuf,
}

#[derive(Args)]
pub struct DeployArgs {
    /// Function name.
    pub name: String,
    /// The component file.
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// Function name.
    pub name: String,
    /// The version to serve; by default the one before the current version.
    #[arg(long)]
    pub version: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A function given on the command line.
#[derive(Clone, Debug)]
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

/// Parses `1048576`, `64KiB`, `1MiB` (also `k`/`KB`, `m`/`MB` as binary units).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size: use e.g. 65536, 64KiB or 1MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => return Err(format!("unknown size unit `{other}`: use KiB or MiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `250ms`, `5s`, `2m` or `250` (milliseconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 250ms, 5s or 2m"))?;
    match unit.trim() {
        "" | "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        other => Err(format!("unknown duration unit `{other}`: use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_accept_ms_and_s() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("40"), Ok(Duration::from_millis(40)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn function_names_default_to_the_file_stem() {
        let arg: FunctionArg = "dir/echo.wasm".parse().unwrap();
        assert_eq!(arg.name, "echo");
        let arg: FunctionArg = "chat=dir/x.wasm".parse().unwrap();
        assert_eq!(
            (arg.name.as_str(), arg.path.to_str()),
            ("chat", Some("dir/x.wasm"))
        );
    }
}
