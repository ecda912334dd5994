//! One ordered queue of Redis writes per node.
//!
//! Mirror writes (a connection opened, joined a group, closed) and routed messages must reach
//! Redis in the order they happened, but no event should wait for Redis to take them. A single
//! task drains the queue and sends whatever has accumulated as one pipeline, so a burst of
//! connects costs a few round trips rather than one each.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

/// Most writes sent in one pipeline.
const BATCH: usize = 512;
/// Least time between two warnings about failed writes, so a Redis outage does not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// The queue is full: Redis is not keeping up (or is unreachable).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cluster link is backed up (Redis is slow or unreachable)")]
pub struct OutboxFull;

pub(super) enum Write {
    Publish {
        channel: String,
        payload: Vec<u8>,
    },
    Commands(Vec<redis::Cmd>),
    /// Answered once everything queued before it has been sent.
    Flush(oneshot::Sender<()>),
}

pub(super) struct Outbox {
    queue: mpsc::Sender<Write>,
}

impl Outbox {
    pub fn start(redis: ConnectionManager, capacity: usize) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(redis, receiver));
        Self { queue }
    }

    pub fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), OutboxFull> {
        self.push(Write::Publish { channel, payload })
    }

    pub fn commands(&self, commands: Vec<redis::Cmd>) -> Result<(), OutboxFull> {
        self.push(Write::Commands(commands))
    }

    /// Waits until everything queued so far has been sent (or failed).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Write::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    fn push(&self, write: Write) -> Result<(), OutboxFull> {
        self.queue.try_send(write).map_err(|_| OutboxFull)
    }
}

async fn drain(mut redis: ConnectionManager, mut receiver: mpsc::Receiver<Write>) {
    let mut last_warning: Option<Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while let received @ 1.. = receiver.recv_many(&mut batch, BATCH).await {
        let sent = received;
        let mut pipe = redis::pipe();
        let mut flushed = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Publish { channel, payload } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
                }
                Write::Commands(commands) => {
                    for command in commands {
                        pipe.add_command(command).ignore();
                    }
                }
                Write::Flush(done) => flushed.push(done),
            }
        }
        let nothing_to_send = flushed.len() == sent;
        if !nothing_to_send
            && let Err(error) = pipe.query_async::<()>(&mut redis).await
            && last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY)
        {
            last_warning = Some(Instant::now());
            tracing::warn!("cluster writes to Redis failed and were dropped: {error}");
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
