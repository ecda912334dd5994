//! One ordered queue of Redis writes per node.
//!
//! Mirror writes (a connection opened, joined a group, closed) and routed messages must reach
//! Redis in the order they happened, but no event should wait for Redis to take them. A single
//! task drains the queue and sends whatever has accumulated as one pipeline (one per slot on a
//! Redis Cluster, sent at once), so a burst of connects costs a few round trips rather than
//! one each.

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::backplane::{RedisConnection, pipelines};

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
    /// Starts the task that drains the queue; `failures` counts the pipelines Redis refused
    /// or never answered.
    pub fn start(redis: RedisConnection, capacity: usize, failures: Counter) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(redis, receiver, failures));
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

async fn drain(redis: RedisConnection, mut receiver: mpsc::Receiver<Write>, failures: Counter) {
    let cluster = redis.is_cluster();
    let publish = redis.publish_command();
    let mut last_warning: Option<Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let mut commands = Vec::new();
        let mut flushed = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Publish { channel, payload } => {
                    commands.push(redis::cmd(publish).arg(channel).arg(payload).clone());
                }
                Write::Commands(more) => commands.extend(more),
                Write::Flush(done) => flushed.push(done),
            }
        }
        let sends = pipelines(commands, cluster).into_iter().map(|pipeline| {
            let mut redis = redis.clone();
            async move { pipeline.query_async::<()>(&mut redis).await }
        });
        for result in futures_util::future::join_all(sends).await {
            let Err(error) = result else {
                continue;
            };
            failures.inc();
            if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                last_warning = Some(Instant::now());
                tracing::warn!("cluster writes to Redis failed and were dropped: {error}");
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
