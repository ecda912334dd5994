//! Many `wsfn-host` nodes on one Redis acting as one host.
//!
//! Every node serves its own sockets. Connection ids name the node that holds them, so a send
//! or close for a connection elsewhere is routed to that node's channel; a group publish goes
//! to one channel every node hears, and each node delivers it to the members it holds. Which
//! connections are open, who is in which group and the attachments are mirrored into Redis,
//! so the cluster can list them and a surviving node can run on-close for the connections of
//! a node that died. Deployed components and the version each function serves live in Redis
//! too, so a deploy on any node reaches all of them.
//!
//! Redis writes that only mirror local state go through one ordered queue ([`outbox`]) and
//! never hold up an event; reads that a guest waits for are bounded by a timeout.

mod codec;
mod deploys;
mod directory;
mod inbox;
mod keys;
mod liveness;
mod member;
mod outbox;
mod publish;

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::RwLock;
use redis::aio::ConnectionManager;

pub use codec::{DecodeError, FunctionChanged, GroupPublish, NodeCommand};
pub use directory::{ConnectionRecord, Orphan};
pub use inbox::{Subscription, run as run_inbox, subscribe};
pub use liveness::run as run_liveness;
pub use member::Member;
pub use outbox::OutboxFull;
pub use publish::publish;

use crate::connections::NodeId;
use outbox::Outbox;

/// Most departed nodes remembered.
const MAX_GONE_NODES: usize = 10_000;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the cluster's data in Redis is malformed: {0}")]
    Malformed(String),
}

/// Settings of a node's cluster membership.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// A node that has not sent a heartbeat for this long is declared dead and its
    /// connections are closed on its behalf.
    pub node_timeout: Duration,
    /// Bound on one Redis round trip that an event or admin request waits for.
    pub request_timeout: Duration,
    /// Mirror writes and routed messages that may wait for Redis at once; beyond it sends to
    /// other nodes fail with "limit exceeded" instead of piling up in memory.
    pub outbox_capacity: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            outbox_capacity: 65_536,
        }
    }
}

/// This node's connection to the cluster.
pub struct ClusterLink {
    pub node: NodeId,
    client: redis::Client,
    redis: ConnectionManager,
    outbox: Outbox,
    /// Nodes whose heartbeat was seen at the last check.
    live_nodes: RwLock<HashSet<NodeId>>,
    /// Nodes seen alive once and gone since: routing to them fails fast. A node not seen at
    /// all may have joined since the last check, so it is routed to.
    gone_nodes: RwLock<HashSet<NodeId>>,
    pub settings: ClusterSettings,
    /// Recent member counts of groups, by their directory key (see `group_size`).
    group_sizes: dashmap::DashMap<String, (std::time::Instant, usize)>,
}

impl ClusterLink {
    /// Connects to Redis at `url` as node `node`.
    pub async fn connect(
        url: &str,
        node: NodeId,
        settings: ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)?;
        let redis = tokio::time::timeout(
            settings.request_timeout,
            ConnectionManager::new(client.clone()),
        )
        .await
        .map_err(|_| ClusterError::Timeout(settings.request_timeout))??;
        let outbox = Outbox::start(redis.clone(), settings.outbox_capacity);
        let mut live_nodes = HashSet::new();
        live_nodes.insert(node);
        Ok(Self {
            node,
            client,
            redis,
            outbox,
            live_nodes: RwLock::new(live_nodes),
            gone_nodes: RwLock::new(HashSet::new()),
            settings,
            group_sizes: dashmap::DashMap::new(),
        })
    }

    /// A connection for one request; cheap (the manager multiplexes one socket).
    fn redis(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Runs one Redis request, bounded by the request timeout.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.settings.request_timeout, request)
            .await
            .map_err(|_| ClusterError::Timeout(self.settings.request_timeout))?
            .map_err(ClusterError::from)
    }

    /// Whether commands for `node` may reach it: it was alive at the last heartbeat check, or
    /// it is not known to have gone (it may have joined since).
    pub fn is_live(&self, node: NodeId) -> bool {
        self.live_nodes.read().contains(&node) || !self.gone_nodes.read().contains(&node)
    }

    fn set_live_nodes(&self, nodes: HashSet<NodeId>, dead: &[NodeId]) {
        let mut live = self.live_nodes.write();
        let mut gone = self.gone_nodes.write();
        gone.extend(live.difference(&nodes).copied());
        gone.extend(dead.iter().copied());
        gone.retain(|n| !nodes.contains(n));
        // Node ids are random per process, so a gone node never comes back; the bound only
        // keeps a long-lived node's memory flat.
        if gone.len() > MAX_GONE_NODES {
            gone.clear();
        }
        *live = nodes;
        live.insert(self.node);
    }

    /// Waits until every mirror write queued so far has reached Redis.
    pub async fn flush(&self) {
        self.outbox.flush().await;
    }

    /// Routes a command to the node holding the connection it names.
    pub fn command(&self, node: NodeId, command: &NodeCommand) -> Result<(), OutboxFull> {
        self.outbox
            .publish(keys::node_channel(node), command.encode())
    }

    /// Tells every other node to deliver a group message to the members it holds.
    pub fn publish_to_group(&self, publish: &GroupPublish) -> Result<(), OutboxFull> {
        self.outbox
            .publish(keys::PUBLISH_CHANNEL.to_owned(), publish.encode())
    }
}
