//! `wsfn-bench`: a WebSocket load generator for loopback benchmarks.
//!
//! Modes:
//! - `echo`: N connections, each keeping K messages in flight (K = 1 is a closed loop);
//!   throughput and round-trip latency percentiles from an HDR histogram.
//! - `idle`: open and hold N connections, so the server's memory per connection can be read.
//! - `connect`: open connections (handshake and on-connect included) as fast as possible.
//! - `broadcast`: N members wait; one publisher triggers a group publish; time until the last
//!   member has the message.
//!
//! Each mode prints one JSON line on stdout for scripts, and a summary on stderr. The client
//! runs on one thread, because benchmarks pin it to one CPU.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

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
    Echo {
        /// ws://127.0.0.1:PORT/path
        url: String,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Messages each connection keeps in flight (1: closed loop).
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Send binary frames instead of text.
        #[arg(long)]
        binary: bool,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Seconds of load before measuring starts.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
    },
    /// Open N connections and hold them.
    Idle {
        url: String,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Handshakes in progress at once while opening.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// How long to hold the connections once all are open.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
    },
    /// Open connections as fast as possible (each is closed right after its handshake).
    Connect {
        url: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Messages from one connection to another through a function (for example a chat room
    /// of two, or a sender and a receiver on different nodes of a cluster): closed loop per
    /// pair, latency from send until the receiver has it. `{pair}` in the URLs is replaced by
    /// the pair's number, so every pair can have its own room.
    Relay {
        /// Where each pair's receiver connects, e.g. ws://127.0.0.1:8081/chat?room=p{pair}&user=r
        receiver_url: String,
        /// Where each pair's sender connects, e.g. ws://127.0.0.1:8080/chat?room=p{pair}&user=s
        sender_url: String,
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
    },
    /// One publish to a group of N members: time until the last member has it.
    Broadcast {
        /// Where members connect (they must all join one group).
        member_url: String,
        /// Where the publisher connects.
        publisher_url: String,
        /// The text the publisher sends to make the function publish to the members' group.
        #[arg(long)]
        trigger: String,
        #[arg(long, default_value_t = 10_000)]
        members: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
    },
}

/// A parsed `ws://host:port/path?query` URL.
#[derive(Clone)]
struct Target {
    address: SocketAddr,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("`{url}` is not a ws:// URL"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = host.parse().with_context(|| {
        format!("`{host}` is not IP:PORT (benchmarks run on loopback addresses)")
    })?;
    Ok(Target {
        address,
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

/// Connects and performs the WebSocket handshake over a plain TCP stream.
async fn connect(target: &Target) -> Result<WebSocket<TcpStream>> {
    let mut stream = TcpStream::connect(target.address).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path,
        target.host,
        fastwebsockets::handshake::generate_key()
    );
    stream.write_all(request.as_bytes()).await?;
    // Read the response byte by byte up to its end, so no frame byte is consumed here.
    let mut response = Vec::with_capacity(256);
    while !response.ends_with(b"\r\n\r\n") {
        let byte = stream
            .read_u8()
            .await
            .context("connection closed during the handshake")?;
        response.push(byte);
        if response.len() > 16 * 1024 {
            bail!("handshake response too long");
        }
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        let status = String::from_utf8_lossy(&response);
        bail!(
            "handshake refused: {}",
            status.lines().next().unwrap_or_default()
        );
    }
    let mut ws = WebSocket::after_handshake(stream, Role::Client);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    Ok(ws)
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s with 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn message(size: usize, binary: bool) -> Frame<'static> {
    let payload = Payload::Owned(vec![b'x'; size]);
    if binary {
        Frame::binary(payload)
    } else {
        Frame::text(payload)
    }
}

struct EchoResult {
    messages: u64,
    latencies: Histogram<u64>,
}

/// Lets the load run `warmup` seconds, then measures for `seconds`, then tells the tasks to
/// stop; returns the measured time in seconds.
async fn measure(warmup: f64, seconds: f64, measuring: &AtomicBool, stop: &AtomicBool) -> f64 {
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    elapsed
}

/// Waits for every task and adds up their messages and latencies; returns those and how many
/// tasks failed (each failure is printed, naming the task as `what`).
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<EchoResult>>>,
    what: &str,
) -> Result<(u64, Histogram<u64>, usize)> {
    let mut total = histogram();
    let mut messages = 0;
    let mut failures = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(result))) => {
                messages += result.messages;
                total.add(&result.latencies).context("merging histograms")?;
            }
            Ok(Ok(Err(error))) => {
                failures += 1;
                eprintln!("{what} failed: {error:#}");
            }
            _ => failures += 1,
        }
    }
    Ok((messages, total, failures))
}

async fn echo_connection(
    target: Target,
    in_flight: usize,
    size: usize,
    binary: bool,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<EchoResult> {
    let mut ws = connect(&target).await?;
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    let mut latencies = histogram();
    let mut messages = 0;
    for _ in 0..in_flight {
        ws.write_frame(message(size, binary)).await?;
        sent.push_back(Instant::now());
    }
    while !stop.load(Ordering::Relaxed) {
        let frame = ws.read_frame().await?;
        if !matches!(frame.opcode, OpCode::Text | OpCode::Binary) {
            continue;
        }
        if frame.payload.len() != size {
            bail!(
                "the server answered {} bytes to a {size}-byte message",
                frame.payload.len()
            );
        }
        let started = sent
            .pop_front()
            .context("an answer arrived for no message")?;
        if measuring.load(Ordering::Relaxed) {
            let micros = started.elapsed().as_micros().max(1) as u64;
            latencies.saturating_record(micros);
            messages += 1;
        }
        ws.write_frame(message(size, binary)).await?;
        sent.push_back(Instant::now());
    }
    Ok(EchoResult {
        messages,
        latencies,
    })
}

async fn run_echo(
    url: &str,
    connections: usize,
    in_flight: usize,
    size: usize,
    binary: bool,
    seconds: f64,
    warmup: f64,
) -> Result<()> {
    let target = parse_url(url)?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(echo_connection(
                target.clone(),
                in_flight,
                size,
                binary,
                measuring.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let elapsed = measure(warmup, seconds, &measuring, &stop).await;

    let (messages, total, failures) = gather(tasks, "connection").await?;
    let rate = messages as f64 / elapsed;
    let q = |p: f64| total.value_at_quantile(p);
    eprintln!(
        "echo: {connections} connections x {in_flight} in flight, {size} B: {rate:.0} msg/s, \
         p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, {failures} failed",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999)
    );
    println!(
        "{}",
        json!({
            "mode": "echo", "connections": connections, "in_flight": in_flight, "size": size,
            "messages": messages, "seconds": elapsed, "per_second": rate,
            "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99), "p999_us": q(0.999),
            "failed_connections": failures,
        })
    );
    if failures > 0 {
        bail!("{failures} connections failed");
    }
    Ok(())
}

/// Reads frames until a data frame carrying `marker` arrives (others, such as join notices,
/// are skipped).
async fn read_until(ws: &mut WebSocket<TcpStream>, marker: &[u8]) -> Result<()> {
    loop {
        let frame = ws.read_frame().await?;
        if matches!(frame.opcode, OpCode::Close) {
            bail!("the connection was closed");
        }
        if matches!(frame.opcode, OpCode::Text | OpCode::Binary)
            && frame
                .payload
                .windows(marker.len())
                .any(|window| window == marker)
        {
            return Ok(());
        }
    }
}

async fn relay_pair(
    receiver: Target,
    sender: Target,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<EchoResult> {
    let mut inbox = connect(&receiver).await?;
    let mut outbox = connect(&sender).await?;
    let mut latencies = histogram();
    let mut messages = 0;
    let mut sequence: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        sequence += 1;
        let marker = format!("m{sequence}x");
        let started = Instant::now();
        outbox
            .write_frame(Frame::text(Payload::Owned(marker.clone().into_bytes())))
            .await?;
        read_until(&mut inbox, marker.as_bytes()).await?;
        if measuring.load(Ordering::Relaxed) {
            latencies.saturating_record(started.elapsed().as_micros().max(1) as u64);
            messages += 1;
        }
        // A room also sends the sender its own message; keep its socket drained.
        read_until(&mut outbox, marker.as_bytes()).await?;
    }
    Ok(EchoResult {
        messages,
        latencies,
    })
}

async fn run_relay(
    receiver_url: &str,
    sender_url: &str,
    pairs: usize,
    seconds: f64,
    warmup: f64,
) -> Result<()> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let receiver = parse_url(&receiver_url.replace("{pair}", &pair.to_string()))?;
        let sender = parse_url(&sender_url.replace("{pair}", &pair.to_string()))?;
        tasks.push(tokio::spawn(relay_pair(
            receiver,
            sender,
            measuring.clone(),
            stop.clone(),
        )));
    }
    let elapsed = measure(warmup, seconds, &measuring, &stop).await;

    let (messages, total, failures) = gather(tasks, "pair").await?;
    let rate = messages as f64 / elapsed;
    let q = |p: f64| total.value_at_quantile(p);
    eprintln!(
        "relay: {pairs} pairs: {rate:.0} msg/s, p50 {} µs, p99 {} µs, {failures} failed",
        q(0.5),
        q(0.99)
    );
    println!(
        "{}",
        json!({
            "mode": "relay", "pairs": pairs, "messages": messages, "seconds": elapsed,
            "per_second": rate, "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99),
            "p999_us": q(0.999), "failed_pairs": failures,
        })
    );
    if failures > 0 {
        bail!("{failures} pairs failed");
    }
    Ok(())
}

/// Opens `count` connections with at most `concurrency` handshakes at once.
async fn open_many(
    target: &Target,
    count: usize,
    concurrency: usize,
) -> Result<Vec<WebSocket<TcpStream>>> {
    let mut sockets = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while sockets.len() < count {
        while started < count && pending.len() < concurrency.max(1) {
            let target = target.clone();
            pending.spawn(async move { connect(&target).await });
            started += 1;
        }
        match pending.join_next().await {
            Some(result) => sockets.push(result??),
            None => break,
        }
    }
    Ok(sockets)
}

async fn run_idle(url: &str, connections: usize, concurrency: usize, hold: f64) -> Result<()> {
    let target = parse_url(url)?;
    let started = Instant::now();
    let sockets = open_many(&target, connections, concurrency).await?;
    let opened_in = started.elapsed().as_secs_f64();
    eprintln!(
        "idle: {} connections open in {opened_in:.2} s",
        sockets.len()
    );
    println!(
        "{}",
        json!({"mode": "idle", "connections": sockets.len(), "open_seconds": opened_in, "state": "holding"})
    );
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(sockets);
    Ok(())
}

async fn run_connect(url: &str, concurrency: usize, seconds: f64) -> Result<()> {
    let target = parse_url(url)?;
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (target, opened, failed) = (target.clone(), opened.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match connect(&target).await {
                        Ok(mut ws) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            let _ = ws.write_frame(Frame::close(1000, b"")).await;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let opened = opened.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let rate = opened as f64 / elapsed;
    eprintln!("connect: {rate:.0} connections/s ({opened} opened, {failed} failed)");
    println!(
        "{}",
        json!({"mode": "connect", "opened": opened, "failed": failed, "seconds": elapsed, "per_second": rate})
    );
    Ok(())
}

async fn run_broadcast(
    member_url: &str,
    publisher_url: &str,
    trigger: &str,
    members: usize,
    rounds: usize,
    concurrency: usize,
) -> Result<()> {
    let member_target = parse_url(member_url)?;
    let sockets = open_many(&member_target, members, concurrency).await?;
    let received = Arc::new(AtomicUsize::new(0));
    let all_received = Arc::new(Notify::new());
    let mut readers = Vec::with_capacity(members);
    for mut ws in sockets {
        let (received, all_received) = (received.clone(), all_received.clone());
        readers.push(tokio::spawn(async move {
            while let Ok(frame) = ws.read_frame().await {
                if matches!(frame.opcode, OpCode::Text | OpCode::Binary)
                    && received.fetch_add(1, Ordering::AcqRel) + 1 == members
                {
                    all_received.notify_one();
                }
            }
        }));
    }
    let mut publisher = connect(&parse_url(publisher_url)?).await?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // Let the previous round's stragglers settle before counting again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        received.store(0, Ordering::Release);
        let waiting = all_received.notified();
        tokio::pin!(waiting);
        let started = Instant::now();
        publisher
            .write_frame(Frame::text(Payload::Owned(trigger.as_bytes().to_vec())))
            .await?;
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .context("not every member received the publish within 30 s")?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for reader in readers {
        reader.abort();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    eprintln!(
        "broadcast: {members} members, median {median:.1} ms until the last received ({times:.1?})"
    );
    println!(
        "{}",
        json!({"mode": "broadcast", "members": members, "rounds_ms": times, "median_ms": median})
    );
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // One thread: benchmarks pin the load generator to one CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Echo {
                url,
                connections,
                in_flight,
                size,
                binary,
                seconds,
                warmup,
            } => run_echo(&url, connections, in_flight, size, binary, seconds, warmup).await,
            Mode::Idle {
                url,
                connections,
                concurrency,
                hold,
            } => run_idle(&url, connections, concurrency, hold).await,
            Mode::Connect {
                url,
                concurrency,
                seconds,
            } => run_connect(&url, concurrency, seconds).await,
            Mode::Relay {
                receiver_url,
                sender_url,
                pairs,
                seconds,
                warmup,
            } => run_relay(&receiver_url, &sender_url, pairs, seconds, warmup).await,
            Mode::Broadcast {
                member_url,
                publisher_url,
                trigger,
                members,
                rounds,
                concurrency,
            } => {
                run_broadcast(
                    &member_url,
                    &publisher_url,
                    &trigger,
                    members,
                    rounds,
                    concurrency,
                )
                .await
            }
        }
    })
}
