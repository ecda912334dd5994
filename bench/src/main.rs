//! `wsfn-bench`: a WebSocket load generator for loopback benchmarks.
//!
//! Modes:
//! - `echo`: N connections, each keeping K messages in flight (K = 1 is a closed loop);
//!   throughput and round-trip latency percentiles from an HDR histogram.
//! - `idle`: open and hold N connections, so the server's memory per connection can be read.
//! - `connect`: open connections (handshake and on-connect included) as fast as possible.
//! - `relay`: messages from one connection to another through a function.
//! - `broadcast`: N members wait; one publisher triggers a group publish; time until the last
//!   member has the message.
//! - `bytes`: chat lines through the chat sample; wire bytes per message and msg/s.
//! - `storm`: N sessions cut off at once while the host publishes to them, then resumed
//!   together; time until every one has everything.
//!
//! `echo`, `idle` and `broadcast` connect through fastwebsockets unless `--session`,
//! `--deflate` or `--wsfn-client` ask for the repository's own client (`clients/rust`), which
//! `bytes` and `storm` always use. Each mode prints one JSON line on stdout for scripts, and a
//! summary on stderr. The client runs on one thread, because benchmarks pin it to one CPU.

mod client;
mod fast;
mod modes;
mod opening;
mod stats;
mod text;

use anyhow::Result;
use clap::{Parser, Subcommand};

use modes::{broadcast, bytes, connect, echo, idle, relay, storm};

#[derive(Parser)]
#[command(
    name = "wsfn-bench",
    about = "WebSocket load generator for loopback benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Round trips on N connections: throughput and latency.
    Echo(echo::Echo),
    /// Open N connections and hold them.
    Idle(idle::Idle),
    /// Open connections as fast as possible (each is closed right after its handshake).
    Connect(connect::Connect),
    /// Messages from one connection to another through a function (for example a chat room
    /// of two, or a sender and a receiver on different nodes of a cluster): closed loop per
    /// pair, latency from send until the receiver has it. `{pair}` in the URLs is replaced by
    /// the pair's number, so every pair can have its own room.
    Relay(relay::Relay),
    /// One publish to a group of N members: time until the last member has it.
    Broadcast(broadcast::Broadcast),
    /// Chat lines through the chat sample, each connection alone in its room, closed loop:
    /// bytes on the wire per message both ways (from the client's socket counters), msg/s
    /// and latency. Compare runs with and without --deflate.
    Bytes(bytes::Bytes),
    /// N sessions lose their sockets at once; the host publishes M messages to them
    /// meanwhile; all resume together: time until every session has all M.
    Storm(storm::Storm),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // One thread: benchmarks pin the load generator to one CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.mode))
}

async fn run(mode: Mode) -> Result<()> {
    match mode {
        Mode::Echo(args) => echo::run(args).await,
        Mode::Idle(args) => idle::run(args).await,
        Mode::Connect(args) => connect::run(args).await,
        Mode::Relay(args) => relay::run(args).await,
        Mode::Broadcast(args) => broadcast::run(args).await,
        Mode::Bytes(args) => bytes::run(args).await,
        Mode::Storm(args) => storm::run(args).await,
    }
}
