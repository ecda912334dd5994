//! A node's subscription to channels, on whatever shape the deployment has: plain pub/sub on
//! one server (or a Sentinel's primary), sharded pub/sub (SSUBSCRIBE) on a Redis Cluster,
//! where each channel lives on the shard that owns its name's slot and a publish reaches only
//! that shard's subscribers.
//!
//! Messages arrive as RESP3 pushes on one queue. A lost connection is reported (so the caller
//! can catch up on what it missed) and its channels are subscribed again as it comes back.

use std::collections::HashSet;

use redis::aio::ConnectionManager;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc;

use super::connection::{CONNECT_TIMEOUT, RedisConnection, SubscribeTarget, resp3};

/// What a subscriber heard.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Message {
        channel: String,
        payload: Vec<u8>,
    },
    /// The connection (or one shard's) dropped: messages may have been missed meanwhile.
    Lost,
}

enum Channels {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

pub struct Subscriber {
    redis: RedisConnection,
    channels: Channels,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    sender: mpsc::UnboundedSender<PushInfo>,
    subscribed: HashSet<String>,
}

async fn connect(
    redis: &RedisConnection,
    sender: mpsc::UnboundedSender<PushInfo>,
) -> RedisResult<Channels> {
    match redis.subscribe_target() {
        SubscribeTarget::One(client) => {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(None)
                // The inbox tries again itself, and must hear of a lost connection promptly.
                .set_number_of_retries(1)
                .set_push_sender(sender)
                .set_automatic_resubscription();
            let manager = ConnectionManager::new_with_config(resp3(&client)?, config).await?;
            Ok(Channels::One(manager))
        }
        SubscribeTarget::Cluster(seeds) => {
            let client = ClusterClientBuilder::new(seeds.iter().cloned())
                .use_protocol(ProtocolVersion::RESP3)
                .connection_timeout(CONNECT_TIMEOUT)
                .push_sender(sender)
                .build()?;
            Ok(Channels::Cluster(client.get_async_connection().await?))
        }
    }
}

impl Subscriber {
    /// A subscriber to nothing yet.
    pub async fn open(redis: &RedisConnection) -> RedisResult<Self> {
        let (sender, pushes) = mpsc::unbounded_channel();
        let channels = connect(redis, sender.clone()).await?;
        Ok(Self {
            redis: redis.clone(),
            channels,
            pushes,
            sender,
            subscribed: HashSet::new(),
        })
    }

    /// Subscribes to a channel. The channel counts as subscribed even if the request fails,
    /// so [`Subscriber::reopen`] asks for it again.
    pub async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        self.subscribed.insert(channel.to_owned());
        match &mut self.channels {
            Channels::One(connection) => connection.subscribe(channel).await,
            Channels::Cluster(connection) => connection.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        self.subscribed.remove(channel);
        match &mut self.channels {
            Channels::One(connection) => connection.unsubscribe(channel).await,
            Channels::Cluster(connection) => connection.sunsubscribe(channel).await,
        }
    }

    /// Every channel subscribed to (or asked for and to be asked for again).
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.subscribed.iter().map(String::as_str)
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.subscribed.contains(channel)
    }

    /// A round trip on the subscription's connection; it reconnects (and subscribes again)
    /// if it had dropped.
    pub async fn ping(&mut self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match &mut self.channels {
            Channels::One(connection) => ping.query_async(connection).await,
            Channels::Cluster(connection) => ping.query_async(connection).await,
        }
    }

    /// Subscribes every channel again on a new connection: after a Sentinel failover the old
    /// primary is gone or demoted, and its subscribers hear nothing.
    pub async fn reopen(&mut self) -> RedisResult<()> {
        self.channels = connect(&self.redis, self.sender.clone()).await?;
        let channels: Vec<String> = self.subscribed.drain().collect();
        for channel in channels {
            self.subscribe(&channel).await?;
        }
        Ok(())
    }

    /// The next message or loss; `None` only if the subscriber's queue closed.
    pub async fn next(&mut self) -> Option<Heard> {
        loop {
            let push = self.pushes.recv().await?;
            match push.kind {
                PushKind::Message | PushKind::SMessage => {
                    if let [Value::BulkString(channel), Value::BulkString(payload), ..] =
                        push.data.as_slice()
                    {
                        return Some(Heard::Message {
                            channel: String::from_utf8_lossy(channel).into_owned(),
                            payload: payload.clone(),
                        });
                    }
                }
                PushKind::Disconnection => return Some(Heard::Lost),
                _ => {}
            }
        }
    }
}
