//! `relay`: messages from one connection to another through a function (a chat room of two,
//! or a sender and a receiver on different nodes of a cluster): closed loop per pair,
//! latency from send until the receiver has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use serde_json::json;
use tokio::net::TcpStream;

use crate::fast::{self, Target};
use crate::stats::{self, Tally};

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
) -> Result<Tally> {
    let mut inbox = fast::connect(&receiver).await?;
    let mut outbox = fast::connect(&sender).await?;
    let mut tally = Tally::new();
    let mut sequence: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        sequence += 1;
        let marker = format!("m{sequence}x");
        let started = Instant::now();
        outbox
            .write_frame(Frame::text(Payload::Owned(marker.clone().into_bytes())))
            .await?;
        read_until(&mut inbox, marker.as_bytes()).await?;
        tally.record(started, &measuring);
        // A room also sends the sender its own message; keep its socket drained.
        read_until(&mut outbox, marker.as_bytes()).await?;
    }
    Ok(tally)
}

#[derive(Args)]
pub struct Relay {
    /// Where each pair's receiver connects, e.g. ws://127.0.0.1:8081/chat?room=p{pair}&user=r
    pub receiver_url: String,
    /// Where each pair's sender connects, e.g. ws://127.0.0.1:8080/chat?room=p{pair}&user=s
    pub sender_url: String,
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

pub async fn run(relay: Relay) -> Result<()> {
    let Relay {
        receiver_url,
        sender_url,
        pairs,
        seconds,
        warmup,
    } = relay;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let receiver = fast::parse_url(&receiver_url.replace("{pair}", &pair.to_string()))?;
        let sender = fast::parse_url(&sender_url.replace("{pair}", &pair.to_string()))?;
        tasks.push(tokio::spawn(relay_pair(
            receiver,
            sender,
            measuring.clone(),
            stop.clone(),
        )));
    }
    let elapsed = stats::measure(warmup, seconds, &measuring, &stop, || {}).await;

    let (total, failures) = stats::gather(tasks, "pair").await?;
    let rate = total.messages as f64 / elapsed;
    let q = |p: f64| total.latencies.value_at_quantile(p);
    eprintln!(
        "relay: {pairs} pairs: {rate:.0} msg/s, p50 {} µs, p99 {} µs, {failures} failed",
        q(0.5),
        q(0.99)
    );
    println!(
        "{}",
        json!({
            "mode": "relay", "pairs": pairs, "messages": total.messages, "seconds": elapsed,
            "per_second": rate, "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99),
            "p999_us": q(0.999), "failed_pairs": failures,
        })
    );
    if failures > 0 {
        bail!("{failures} pairs failed");
    }
    Ok(())
}
