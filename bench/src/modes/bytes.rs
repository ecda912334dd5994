//! `bytes`: what the chat sample's traffic costs on the wire. N connections, each alone in its
//! own room, send chat lines in a closed loop and wait for the room's JSON event carrying each
//! back (`{"type":"message","user":...,"text":...}`); the client's socket byte counters give
//! the bytes each message took both ways, handshakes and acknowledgements included. Run with
//! and without `--deflate` for the comparison; msg/s and latency come with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use wsfn_client::{Event, Session, Traffic};

use crate::client::ClientFlags;
use crate::stats::{self, Tally};
use crate::text;

/// How many different lines each connection cycles through.
const LINES: usize = 64;

#[derive(Args)]
pub struct Bytes {
    /// `{n}` becomes the connection's number, e.g. ws://127.0.0.1:8080/chat?room=r{n}&user=u{n}
    pub url: String,
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Bytes of each chat line sent (the room's JSON event around it is some 40 more).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    #[command(flatten)]
    pub client: ClientFlags,
}

/// Payload bytes (before compression, without frame headers) seen in the measured window.
#[derive(Default)]
struct Payloads {
    sent: AtomicU64,
    received: AtomicU64,
}

pub async fn run(mut bytes: Bytes) -> Result<()> {
    // The byte counters are the wsfn-client's.
    bytes.client.wsfn_client = true;
    let traffic = Traffic::new();
    let payloads = Arc::new(Payloads::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let lines = Arc::new(text::lines(LINES, bytes.size));
    let tasks: Vec<_> = (0..bytes.connections)
        .map(|n| {
            let url = bytes.url.replace("{n}", &n.to_string());
            let options = bytes.client.options(&url).traffic(traffic.clone());
            let (lines, payloads) = (lines.clone(), payloads.clone());
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tokio::spawn(async move {
                let session = Session::connect(options).await?;
                chat(session, n, &lines, &payloads, &measuring, &stop).await
            })
        })
        .collect();
    let mut edges = Vec::with_capacity(2);
    let elapsed = stats::measure(bytes.warmup, bytes.seconds, &measuring, &stop, || {
        edges.push((traffic.sent(), traffic.received()));
    })
    .await;
    let (total, failures) = stats::gather(tasks, "connection").await?;
    let [(sent_before, received_before), (sent_after, received_after)] = edges[..] else {
        bail!("the measured window did not open and close");
    };
    let messages = total.messages.max(1) as f64;
    let per_message = |before: u64, after: u64| (after - before) as f64 / messages;
    let wire_sent = per_message(sent_before, sent_after);
    let wire_received = per_message(received_before, received_after);
    let payload_sent = payloads.sent.load(Ordering::Relaxed) as f64 / messages;
    let payload_received = payloads.received.load(Ordering::Relaxed) as f64 / messages;
    let rate = total.messages as f64 / elapsed;
    let q = |p: f64| total.latencies.value_at_quantile(p);
    eprintln!(
        "bytes ({}): {} connections, {}-byte lines: {rate:.0} msg/s, p99 {} µs; per message \
         {wire_sent:.1} B sent ({payload_sent:.0} B of text), {wire_received:.1} B received \
         ({payload_received:.0} B of JSON); {failures} failed",
        bytes.client.label(),
        bytes.connections,
        bytes.size,
        q(0.99)
    );
    println!(
        "{}",
        json!({
            "mode": "bytes", "client": bytes.client.label(), "connections": bytes.connections,
            "size": bytes.size, "messages": total.messages, "seconds": elapsed,
            "per_second": rate, "p50_us": q(0.5), "p99_us": q(0.99),
            "wire_sent_per_message": wire_sent, "wire_received_per_message": wire_received,
            "payload_sent_per_message": payload_sent,
            "payload_received_per_message": payload_received, "failed_connections": failures,
        })
    );
    if failures > 0 {
        bail!("{failures} connections failed");
    }
    Ok(())
}

/// One member's closed loop: a line out, its room event back.
async fn chat(
    mut session: Session,
    n: usize,
    lines: &[String],
    payloads: &Payloads,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> Result<Tally> {
    let mut tally = Tally::new();
    let mut next = n;
    while !stop.load(Ordering::Relaxed) {
        let line = &lines[next % lines.len()];
        next += 1;
        let started = Instant::now();
        session.send_text(line.clone())?;
        let event = loop {
            match session.next_event().await.context("the session ended")? {
                Event::Text(event) if event.starts_with(r#"{"type":"message""#) => break event,
                Event::Text(_) => {}
                Event::Closed { code, reason } => bail!("closed with {code} {reason}"),
                other => bail!("unexpected in a chat run: {other:?}"),
            }
        };
        if measuring.load(Ordering::Relaxed) {
            payloads
                .sent
                .fetch_add(line.len() as u64, Ordering::Relaxed);
            payloads
                .received
                .fetch_add(event.len() as u64, Ordering::Relaxed);
        }
        tally.record(started, measuring);
    }
    Ok(tally)
}
