//! What a node hears from the cluster: commands for its connections, function changes, and
//! the publishes of the groups it holds members of, on one subscription.
//!
//! The subscription follows this node's interest: the inbox subscribes to a group's channel
//! when the first local member joins and leaves it with the last one, so a publish costs
//! nothing on nodes without members. A member of a group that had none here hears the
//! group's publishes from the moment the subscription is confirmed, one Redis round trip
//! after the join; the handshake of a connection that joins on connect waits for that
//! (`ClusterLink::await_listening`). Likewise for the channel of each journaled session the
//! node serves, where its messages come back numbered (see `journal`).

use std::sync::Arc;
use std::time::Duration;

use super::codec::{DecodeError, FunctionChanged, GroupPublish, NodeCommand};
use super::journal::SessionNotice;
use super::{ClusterError, ClusterLink, Interest, Member, keys};
use crate::backplane::{Heard, Shape, Subscriber};
use crate::connections::PublishMark;

/// Pause before trying again after the subscription was lost.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// A node's subscription to the cluster's channels, taken before the node serves anyone so
/// nothing sent to it after it announced itself is missed.
pub struct Subscription(Subscriber);

fn fixed_channels(link: &ClusterLink) -> [String; 2] {
    [
        keys::node_channel(link.node),
        keys::CONTROL_CHANNEL.to_owned(),
    ]
}

/// Subscribes to this node's channel and the control channel.
pub async fn subscribe(link: &ClusterLink) -> Result<Subscription, ClusterError> {
    let request = async {
        let mut subscriber = Subscriber::open(&link.redis).await?;
        for channel in fixed_channels(link) {
            subscriber.subscribe(&channel).await?;
        }
        Ok::<_, redis::RedisError>(subscriber)
    };
    link.bounded(request).await.map(Subscription)
}

/// Why the subscription must be made good again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// The connection dropped; it reconnects and subscribes again by itself.
    Dropped,
    /// A request failed, or the primary moved: a new connection with every channel.
    Reopen,
}

/// Listens until shutdown, following this node's group interest, and catching up whenever
/// the subscription was lost: after a gap, function changes may have been missed, so every
/// function is synced again.
pub async fn run(node: Arc<dyn Member>, link: Arc<ClusterLink>, subscription: Subscription) {
    let mut subscriber = subscription.0;
    let mut moves = link.redis.moves();
    link.metrics.subscribed.set(1);
    loop {
        let gap = tokio::select! {
            _ = node.leaving().cancelled() => return,
            heard = subscriber.next() => match heard {
                Some(Heard::Message { channel, payload }) => {
                    handle(&node, &link, &channel, payload);
                    None
                }
                Some(Heard::Lost) | None => Some(Gap::Dropped),
            },
            () = link.interests_changed.notified() => {
                let followed = follow_interests(&node, &link, &mut subscriber).await;
                link.stamp_joins().await;
                followed.err().map(|error| {
                    tracing::warn!("cannot change the cluster subscription: {error}");
                    Gap::Reopen
                })
            }
            Ok(()) = changed(&mut moves) => Some(Gap::Reopen),
        };
        if let Some(gap) = gap {
            link.metrics.subscribed.set(0);
            tracing::warn!("lost the cluster subscription; subscribing again");
            if !catch_up(&node, &link, &mut subscriber, gap).await {
                return;
            }
        }
    }
}

/// Resolves when a Sentinel failover moved the primary; never without Sentinels.
async fn changed(
    moves: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match moves {
        Some(moves) => moves.changed().await,
        None => std::future::pending().await,
    }
}

/// Subscribes to or leaves the channel of each group whose membership changed, as its member
/// count says now. A failure leaves the channel as wanted, so the reopen that follows
/// subscribes to it.
async fn follow_interests(
    node: &Arc<dyn Member>,
    link: &ClusterLink,
    subscriber: &mut Subscriber,
) -> Result<(), ClusterError> {
    let mut result = Ok(());
    for (channel, interest) in link.take_interests() {
        let wanted = match interest {
            Interest::Group { scope, group } => scope.groups.member_count(&group) > 0,
            Interest::Session(id) => node.serves_session(id),
        };
        let change = match (wanted, subscriber.is_subscribed(&channel)) {
            (true, false) => {
                let subscribed = link.bounded(subscriber.subscribe(&channel)).await;
                link.set_listening(&channel, subscribed.is_ok());
                subscribed
            }
            (false, true) => {
                link.set_listening(&channel, false);
                link.bounded(subscriber.unsubscribe(&channel)).await
            }
            _ => Ok(()),
        };
        if change.is_err() && result.is_ok() {
            result = change;
        }
    }
    result
}

/// Tries until the subscription answers again (or the node shuts down: false), then syncs
/// every function.
async fn catch_up(
    node: &Arc<dyn Member>,
    link: &ClusterLink,
    subscriber: &mut Subscriber,
    mut gap: Gap,
) -> bool {
    if link.redis.shape() == Shape::Sentinel {
        // The connection may point at a primary that is gone for good: ask where it is now.
        gap = Gap::Reopen;
    }
    loop {
        tokio::select! {
            _ = node.leaving().cancelled() => return false,
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
        let restored = match gap {
            Gap::Dropped => link.bounded(subscriber.ping()).await,
            Gap::Reopen => link.bounded(subscriber.reopen()).await,
        };
        match restored {
            Ok(()) => {
                for channel in subscriber.channels() {
                    link.set_listening(channel, true);
                }
                link.metrics.subscribed.set(1);
                tracing::info!("cluster subscription restored; syncing functions");
                let node = node.clone();
                tokio::spawn(async move {
                    // What the journaled sessions here missed meanwhile is in their journals.
                    node.catch_up_sessions().await;
                    node.sync_all().await;
                });
                return true;
            }
            Err(error) => {
                tracing::warn!("cannot subscribe to the cluster channels: {error}");
                gap = Gap::Reopen;
            }
        }
    }
}

fn handle(node: &Arc<dyn Member>, link: &ClusterLink, channel: &str, payload: Vec<u8>) {
    if channel == keys::CONTROL_CHANNEL {
        match FunctionChanged::decode(&payload) {
            Ok(changed) if changed.origin != link.node => {
                let node = node.clone();
                tokio::spawn(async move { node.sync_function(&changed.function).await });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("ignoring a function change: {error}"),
        }
    } else if channel == keys::node_channel(link.node) {
        match NodeCommand::decode(&payload) {
            Ok(command) => node.apply_command(command),
            Err(error) => tracing::warn!("ignoring a connection command: {error}"),
        }
    } else if let Some(id) = keys::session_of_channel(channel) {
        match SessionNotice::decode(payload.into()) {
            Ok(notice) => node.session_notice(id, notice),
            Err(error) => tracing::warn!("ignoring a session notice: {error}"),
        }
    } else {
        match decode_publish(&payload) {
            // This node delivered its own publish to its plain members as it was made; its
            // journaled sessions take it from here, with its id.
            Ok((mark, publish)) => {
                let journaled_only = publish.origin == link.node;
                node.deliver_publish(&publish, mark, journaled_only);
            }
            Err(error) => tracing::warn!("ignoring a group publish: {error}"),
        }
    }
}

/// A publish as the group's channel carries it: its id in the group's history, a space, the
/// publish.
fn decode_publish(payload: &[u8]) -> Result<(PublishMark, GroupPublish), DecodeError> {
    let space = payload
        .iter()
        .position(|&b| b == b' ')
        .ok_or(DecodeError("a publish without its history id"))?;
    let mark = std::str::from_utf8(&payload[..space])
        .ok()
        .and_then(|id| id.parse().ok())
        .ok_or(DecodeError("a publish with a malformed history id"))?;
    Ok((mark, GroupPublish::decode(&payload[space + 1..])?))
}
