//! The command line of `wsfn-host`: its subcommands. The options of `run` are the library's
//! (`wsfn_host::options`), shared with the config file; each client command keeps its
//! arguments beside its code.

use clap::{Parser, Subcommand};
use wsfn_host::options::RunOptions;

use crate::admin_client::ClientArgs;
use crate::check::CheckArgs;
use crate::functions::{DeployArgs, FunctionArgs, RollbackArgs};
use crate::logs::LogsArgs;
use crate::new::NewArgs;
use crate::send::SendArgs;
use crate::signed_url::SignedUrlArgs;

#[derive(Parser)]
#[command(
    name = "wsfn-host",
    version,
    about = "Host for WebSocket serverless functions written as WebAssembly components",
    long_about = "Host for WebSocket serverless functions written as WebAssembly components.\n\n\
        A function is a component targeting the `wsfn:function/function` world (see wit/). \
        wsfn-host terminates the WebSockets, runs on-connect before the handshake completes, \
        on-message for every message and on-close once per connection, each in a sandboxed \
        instance with no files, sockets or environment.",
    after_help = "Every option of the host itself, with its WSFN_* variable and default: \
        `wsfn-host run --help`. Each command has its own `--help`.",
    after_long_help = "Every option of the host itself, with its WSFN_* variable and default: \
        `wsfn-host run --help`. Each command has its own `--help`.\n\n\
        Logging is controlled with RUST_LOG (default: info), e.g. RUST_LOG=wsfn_host=debug \
        also logs every connection."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
// Parsed once at start; the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve functions, each at ws://LISTEN/<name> (`run --help` lists every option).
    Run(Box<RunOptions>),
    /// Check that components are valid wsfn functions, without serving them.
    Check(CheckArgs),
    /// Deploy a component to a running host as a new function or a new version (hot swap).
    Deploy(DeployArgs),
    /// List the functions of a running host.
    Functions(ClientArgs),
    /// Serve the previous (or a given) version of a function on a running host.
    Rollback(RollbackArgs),
    /// Remove a function and all its versions from a running host; its connections are
    /// closed with 1001.
    Remove(FunctionArgs),
    /// Send a message to a connection, or to every member of a function's group.
    Send(SendArgs),
    /// Print a signed connection URL for a function that accepts only signed URLs.
    SignedUrl(SignedUrlArgs),
    /// Follow a function's live log on a running host: guest output and lifecycle events.
    Logs(LogsArgs),
    /// Create a new function crate, ready to build and run.
    New(NewArgs),
}
