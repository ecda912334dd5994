//! What a node hears from the cluster: commands for its connections, group publishes and
//! function changes, on one Redis subscription.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::Member;
use super::codec::{FunctionChanged, GroupPublish, NodeCommand};
use super::{ClusterError, ClusterLink, keys};

/// Pause before subscribing again after the subscription was lost.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// A node's subscription to the cluster's channels, taken before the node serves anyone so
/// nothing sent to it after it announced itself is missed.
pub struct Subscription(redis::aio::PubSub);

fn channels(link: &ClusterLink) -> [String; 3] {
    [
        keys::node_channel(link.node),
        keys::PUBLISH_CHANNEL.to_owned(),
        keys::CONTROL_CHANNEL.to_owned(),
    ]
}

/// Subscribes to this node's channel, the publish channel and the control channel.
pub async fn subscribe(link: &ClusterLink) -> Result<Subscription, ClusterError> {
    let request = async {
        let mut pubsub = link.client.get_async_pubsub().await?;
        pubsub.subscribe(&channels(link)).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    link.bounded(request).await.map(Subscription)
}

/// Listens until shutdown, subscribing again whenever the subscription is lost. After a gap,
/// function changes may have been missed, so every function is synced again.
pub async fn run(node: Arc<dyn Member>, link: Arc<ClusterLink>, subscription: Subscription) {
    let mut pubsub = Some(subscription.0);
    loop {
        if let Some(mut current) = pubsub.take() {
            let mut messages = current.on_message();
            loop {
                tokio::select! {
                    _ = node.shutdown().cancelled() => return,
                    message = messages.next() => match message {
                        Some(message) => handle(&node, &link, message.get_channel_name(), message.get_payload_bytes()),
                        None => break,
                    },
                }
            }
            tracing::warn!("lost the cluster subscription; subscribing again");
        }
        tokio::select! {
            _ = node.shutdown().cancelled() => return,
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
        match subscribe(&link).await {
            Ok(Subscription(restored)) => {
                tracing::info!("cluster subscription restored; syncing functions");
                pubsub = Some(restored);
                let node = node.clone();
                tokio::spawn(async move { node.sync_all().await });
            }
            Err(error) => tracing::warn!("cannot subscribe to the cluster channels: {error}"),
        }
    }
}

fn handle(node: &Arc<dyn Member>, link: &ClusterLink, channel: &str, payload: &[u8]) {
    if channel == keys::PUBLISH_CHANNEL {
        match GroupPublish::decode(payload) {
            Ok(publish) if publish.origin != link.node => node.deliver_publish(&publish),
            Ok(_) => {}
            Err(error) => tracing::warn!("ignoring a group publish: {error}"),
        }
    } else if channel == keys::CONTROL_CHANNEL {
        match FunctionChanged::decode(payload) {
            Ok(changed) if changed.origin != link.node => {
                let node = node.clone();
                tokio::spawn(async move { node.sync_function(&changed.function).await });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("ignoring a function change: {error}"),
        }
    } else {
        match NodeCommand::decode(payload) {
            Ok(command) => node.apply_command(command),
            Err(error) => tracing::warn!("ignoring a connection command: {error}"),
        }
    }
}
