//! `echo`: N connections, each keeping K messages in flight (K = 1 is a closed loop);
//! throughput and round-trip latency percentiles. Through fastwebsockets by default (the
//! comparison with the raw and Node servers), or through wsfn-client with or without sessions
//! and compression (the on/off comparisons).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use fastwebsockets::{Frame, OpCode, Payload};
use serde_json::json;
use wsfn_client::{Event, Session};

use crate::client::ClientFlags;
use crate::fast;
use crate::stats::{self, Tally};
use crate::text;

#[derive(Args)]
pub struct Echo {
    /// ws://127.0.0.1:PORT/path
    pub url: String,
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Messages each connection keeps in flight (1: closed loop).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Send binary frames instead of text.
    #[arg(long)]
    pub binary: bool,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    #[command(flatten)]
    pub client: ClientFlags,
}

/// Shared by a run's connections.
#[derive(Clone)]
struct Window {
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

pub async fn run(echo: Echo) -> Result<()> {
    let window = Window {
        measuring: Arc::new(AtomicBool::new(false)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let target = fast::parse_url(&echo.url)?;
    // Not the fastwebsockets side's one repeated byte, which compresses unrealistically well.
    let payloads = text::lines(echo.connections, echo.size);
    let tasks: Vec<_> = (0..echo.connections)
        .map(|i| {
            let window = window.clone();
            if echo.client.uses_wsfn_client() {
                let payload = payloads[i].clone();
                let options = echo.client.options(&echo.url);
                let (in_flight, binary) = (echo.in_flight, echo.binary);
                tokio::spawn(async move {
                    let session = Session::connect(options).await?;
                    with_client(session, payload, in_flight, binary, window).await
                })
            } else {
                let (target, in_flight) = (target.clone(), echo.in_flight);
                let (size, binary) = (echo.size, echo.binary);
                tokio::spawn(with_fastwebsockets(target, in_flight, size, binary, window))
            }
        })
        .collect();
    let elapsed = stats::measure(
        echo.warmup,
        echo.seconds,
        &window.measuring,
        &window.stop,
        || {},
    )
    .await;

    let (total, failures) = stats::gather(tasks, "connection").await?;
    let rate = total.messages as f64 / elapsed;
    let q = |p: f64| total.latencies.value_at_quantile(p);
    let (connections, in_flight, size) = (echo.connections, echo.in_flight, echo.size);
    eprintln!(
        "echo ({}): {connections} connections x {in_flight} in flight, {size} B: {rate:.0} msg/s, \
         p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, {failures} failed",
        echo.client.label(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999)
    );
    println!(
        "{}",
        json!({
            "mode": "echo", "client": echo.client.label(), "connections": connections,
            "in_flight": in_flight, "size": size, "messages": total.messages, "seconds": elapsed,
            "per_second": rate, "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99),
            "p999_us": q(0.999), "failed_connections": failures,
        })
    );
    if failures > 0 {
        bail!("{failures} connections failed");
    }
    Ok(())
}

fn message(size: usize, binary: bool) -> Frame<'static> {
    let payload = Payload::Owned(vec![b'x'; size]);
    if binary {
        Frame::binary(payload)
    } else {
        Frame::text(payload)
    }
}

async fn with_fastwebsockets(
    target: fast::Target,
    in_flight: usize,
    size: usize,
    binary: bool,
    window: Window,
) -> Result<Tally> {
    let mut ws = fast::connect(&target).await?;
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    let mut tally = Tally::new();
    for _ in 0..in_flight {
        ws.write_frame(message(size, binary)).await?;
        sent.push_back(Instant::now());
    }
    while !window.stop.load(Ordering::Relaxed) {
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
        tally.record(started, &window.measuring);
        ws.write_frame(message(size, binary)).await?;
        sent.push_back(Instant::now());
    }
    Ok(tally)
}

async fn with_client(
    mut session: Session,
    payload: String,
    in_flight: usize,
    binary: bool,
    window: Window,
) -> Result<Tally> {
    let bytes = Bytes::from(payload.clone().into_bytes());
    let send = |session: &Session| {
        if binary {
            session.send_binary(bytes.clone())
        } else {
            session.send_text(payload.clone())
        }
    };
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    let mut tally = Tally::new();
    for _ in 0..in_flight {
        send(&session)?;
        sent.push_back(Instant::now());
    }
    while !window.stop.load(Ordering::Relaxed) {
        let answered = match session.next_event().await.context("the session ended")? {
            Event::Text(text) => text.len(),
            Event::Binary(bytes) => bytes.len(),
            Event::Closed { code, reason } => bail!("closed with {code} {reason}"),
            other => bail!("continuity changed in an echo run: {other:?}"),
        };
        if answered != payload.len() {
            bail!(
                "the server answered {answered} bytes to a {}-byte message",
                payload.len()
            );
        }
        let started = sent
            .pop_front()
            .context("an answer arrived for no message")?;
        tally.record(started, &window.measuring);
        send(&session)?;
        sent.push_back(Instant::now());
    }
    Ok(tally)
}
