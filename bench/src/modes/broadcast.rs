//! `broadcast`: N members wait; one publisher triggers a group publish; the time until the
//! last member has the message. Members read through fastwebsockets, or through wsfn-client
//! with or without compression (the deflate comparison); the publisher always through
//! fastwebsockets, since only the members' side is compared.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use fastwebsockets::{Frame, OpCode, Payload};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use wsfn_client::Event;

use crate::client::{self, ClientFlags};
use crate::fast;

#[derive(Args)]
pub struct Broadcast {
    /// Where members connect (they must all join one group).
    pub member_url: String,
    /// Where the publisher connects.
    pub publisher_url: String,
    /// The text the publisher sends to make the function publish to the members' group.
    #[arg(long)]
    pub trigger: String,
    #[arg(long, default_value_t = 10_000)]
    pub members: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Which client the members use (the publisher always uses fastwebsockets).
    #[command(flatten)]
    pub client: ClientFlags,
}

/// Counts arrivals in a round and wakes the publisher when every member has one.
#[derive(Clone)]
struct Arrivals {
    received: Arc<AtomicUsize>,
    all_received: Arc<Notify>,
    members: usize,
}

impl Arrivals {
    fn arrived(&self) {
        if self.received.fetch_add(1, Ordering::AcqRel) + 1 == self.members {
            self.all_received.notify_one();
        }
    }
}

pub async fn run(broadcast: Broadcast) -> Result<()> {
    let members = broadcast.members;
    let arrivals = Arrivals {
        received: Arc::new(AtomicUsize::new(0)),
        all_received: Arc::new(Notify::new()),
        members,
    };
    let readers = if broadcast.client.uses_wsfn_client() {
        client_members(&broadcast, &arrivals).await?
    } else {
        fast_members(&broadcast, &arrivals).await?
    };
    let mut publisher = fast::connect(&fast::parse_url(&broadcast.publisher_url)?).await?;
    let mut times = Vec::with_capacity(broadcast.rounds);
    for _ in 0..broadcast.rounds {
        // Let the previous round's stragglers settle before counting again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        arrivals.received.store(0, Ordering::Release);
        let waiting = arrivals.all_received.notified();
        tokio::pin!(waiting);
        let started = Instant::now();
        let trigger = broadcast.trigger.as_bytes().to_vec();
        publisher
            .write_frame(Frame::text(Payload::Owned(trigger)))
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
        "broadcast ({}): {members} members, median {median:.1} ms until the last received ({times:.1?})",
        broadcast.client.label()
    );
    println!(
        "{}",
        json!({"mode": "broadcast", "client": broadcast.client.label(), "members": members, "rounds_ms": times, "median_ms": median})
    );
    Ok(())
}

async fn fast_members(broadcast: &Broadcast, arrivals: &Arrivals) -> Result<Vec<JoinHandle<()>>> {
    let target = fast::parse_url(&broadcast.member_url)?;
    let sockets = fast::open_many(&target, broadcast.members, broadcast.concurrency).await?;
    let readers = sockets.into_iter().map(|mut ws| {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Ok(frame) = ws.read_frame().await {
                if matches!(frame.opcode, OpCode::Text | OpCode::Binary) {
                    arrivals.arrived();
                }
            }
        })
    });
    Ok(readers.collect())
}

async fn client_members(broadcast: &Broadcast, arrivals: &Arrivals) -> Result<Vec<JoinHandle<()>>> {
    let client = broadcast.client;
    let url = &broadcast.member_url;
    let sessions = client::open_sessions(broadcast.members, broadcast.concurrency, |_| {
        client.options(url)
    })
    .await?;
    let readers = sessions.into_iter().map(|mut session| {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(event) = session.next_event().await {
                match event {
                    Event::Text(_) | Event::Binary(_) => arrivals.arrived(),
                    Event::Closed { code, reason } => {
                        eprintln!("a member was closed: {code} {reason}");
                        break;
                    }
                    _ => {}
                }
            }
        })
    });
    Ok(readers.collect())
}
