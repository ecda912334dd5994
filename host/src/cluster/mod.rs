//! Many `wsfn-host` nodes on one Redis (a server, a Redis Cluster, or a Sentinel-watched
//! primary, see [`crate::backplane`]) acting as one host.
//!
//! Every node serves its own sockets. Connection ids name the node that holds them, so a send
//! or close for a connection elsewhere is routed to that node's channel; a group publish goes
//! to the group's channel, which only the nodes holding members of the group listen to, and
//! each delivers it to the members it holds. Which
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
mod journal;
mod keys;
mod liveness;
mod member;
mod outbox;
mod publish;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

pub use codec::{DecodeError, FunctionChanged, GroupPublish, NodeCommand};
pub use directory::{ConnectionRecord, Orphan};
pub use inbox::{Subscription, run as run_inbox, subscribe};
pub use journal::{AckRefusal, Appended, ClaimRefusal, Claimed, SessionNotice, SessionStart};
pub use liveness::run as run_liveness;
pub use member::Member;
pub use outbox::OutboxFull;
pub use publish::publish;

use crate::backplane::{ConnectError, RedisConnection};
use crate::connections::{ConnectionId, FunctionScope, NodeId};
use crate::observe::ClusterMetrics;
use outbox::Outbox;

/// Most departed nodes remembered.
const MAX_GONE_NODES: usize = 10_000;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
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
    /// How long a session whose node died waits for a resume on another (the resume window).
    pub session_window: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            outbox_capacity: 65_536,
            session_window: Duration::from_secs(120),
        }
    }
}

/// This node's connection to the cluster.
pub struct ClusterLink {
    pub node: NodeId,
    redis: RedisConnection,
    outbox: Outbox,
    /// Groups whose membership on this node changed since the inbox last looked, by channel:
    /// it subscribes to their channels or leaves them (see [`ClusterLink::watch_group`]). A
    /// group changed many times while Redis was away is one entry.
    interests: Mutex<HashMap<String, Interest>>,
    /// Wakes the inbox when `interests` gained an entry.
    interests_changed: Notify,
    /// Group channels the subscription is confirmed for, kept by the inbox.
    listening: RwLock<HashSet<String>>,
    /// Wakes those waiting for a group's channel (see [`ClusterLink::await_listening`]).
    listening_changed: Notify,
    /// The node's series about this link (failures, the subscription's health).
    metrics: ClusterMetrics,
    /// Nodes whose heartbeat was seen at the last check.
    live_nodes: RwLock<HashSet<NodeId>>,
    /// Nodes seen alive once and gone since: routing to them fails fast. A node not seen at
    /// all may have joined since the last check, so it is routed to.
    gone_nodes: RwLock<HashSet<NodeId>>,
    pub settings: ClusterSettings,
    /// Recent member counts of groups, by their directory key (see `group_size`).
    group_sizes: dashmap::DashMap<String, (std::time::Instant, usize)>,
    /// Joins of journaled sessions whose start in the group's history is still to be marked
    /// (see `stamp_join`), once this node listens to the group.
    stamps: Mutex<Vec<Stamp>>,
    /// When this node last marked each group as having journaled sessions, by marker key.
    histories_kept: Mutex<HashMap<String, std::time::Instant>>,
}

/// A journaled session's join whose start in the group's history is to be marked.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub id: ConnectionId,
    pub function: String,
    pub group: String,
}

impl ClusterLink {
    /// Connects to the Redis that `url` names (see [`crate::backplane::Address`]) as node
    /// `node`.
    pub async fn connect(
        url: &str,
        node: NodeId,
        settings: ClusterSettings,
        metrics: ClusterMetrics,
    ) -> Result<Self, ClusterError> {
        let redis = RedisConnection::open(url).await?;
        let outbox = Outbox::start(
            redis.clone(),
            settings.outbox_capacity,
            metrics.redis_failures.clone(),
        );
        let mut live_nodes = HashSet::new();
        live_nodes.insert(node);
        Ok(Self {
            node,
            redis,
            outbox,
            interests: Mutex::new(HashMap::new()),
            interests_changed: Notify::new(),
            listening: RwLock::new(HashSet::new()),
            listening_changed: Notify::new(),
            metrics,
            live_nodes: RwLock::new(live_nodes),
            gone_nodes: RwLock::new(HashSet::new()),
            settings,
            group_sizes: dashmap::DashMap::new(),
            stamps: Mutex::new(Vec::new()),
            histories_kept: Mutex::new(HashMap::new()),
        })
    }

    /// A connection for one request; cheap (clones share their sockets).
    fn redis(&self) -> RedisConnection {
        self.redis.clone()
    }

    /// Asks the inbox to listen to `group`'s channel while this node holds members of it, and
    /// to stop when it holds none. The inbox reads the member count when it gets to the
    /// request, so it ends in the right state however the changes raced.
    pub fn watch_group(&self, scope: &Arc<FunctionScope>, group: &str) {
        let channel = keys::group_channel(&scope.name, group);
        let interest = Interest::Group {
            scope: scope.clone(),
            group: group.to_owned(),
        };
        self.interests.lock().insert(channel, interest);
        self.interests_changed.notify_one();
    }

    /// Asks the inbox to listen to session `id`'s channel while this node serves it, and to
    /// stop when it does not (see [`crate::cluster::Member::serves_session`]).
    pub fn watch_session(&self, id: ConnectionId) {
        let channel = keys::session_channel(id);
        self.interests.lock().insert(channel, Interest::Session(id));
        self.interests_changed.notify_one();
    }

    /// Waits (at most the request timeout) until this node listens to session `id`'s
    /// channel and to `groups`' channels.
    pub async fn await_session_listening(
        &self,
        id: ConnectionId,
        function: &str,
        groups: &[String],
    ) {
        let mut channels: Vec<String> = groups
            .iter()
            .map(|group| keys::group_channel(function, group))
            .collect();
        channels.push(keys::session_channel(id));
        self.await_channels(function, channels).await;
    }

    /// Waits (at most the request timeout) until this node listens to the channels of
    /// `groups`, so a publish made after a connection's handshake completes reaches it. Only
    /// a group's first member here waits for anything: one Redis round trip.
    pub async fn await_listening(&self, function: &str, groups: &[String]) {
        let channels: Vec<String> = groups
            .iter()
            .map(|group| keys::group_channel(function, group))
            .collect();
        self.await_channels(function, channels).await;
    }

    async fn await_channels(&self, function: &str, channels: Vec<String>) {
        let waited = tokio::time::timeout(self.settings.request_timeout, async {
            loop {
                let changed = self.listening_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if channels.iter().all(|c| self.listening.read().contains(c)) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(%function, "not yet listening to a group's channel (Redis is slow or unreachable); publishes from other nodes may miss a new member");
        }
    }

    /// Records what the subscription now confirms, and wakes those waiting for it.
    fn set_listening(&self, channel: &str, listening: bool) {
        let mut set = self.listening.write();
        if listening {
            set.insert(channel.to_owned());
        } else {
            set.remove(channel);
        }
        drop(set);
        self.listening_changed.notify_waiters();
    }

    /// The groups whose membership changed since the last call, by channel.
    fn take_interests(&self) -> HashMap<String, Interest> {
        std::mem::take(&mut *self.interests.lock())
    }

    /// Runs one Redis request, bounded by the request timeout.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        let result = tokio::time::timeout(self.settings.request_timeout, request)
            .await
            .map_err(|_| ClusterError::Timeout(self.settings.request_timeout))
            .and_then(|answer| answer.map_err(ClusterError::from));
        if result.is_err() {
            self.metrics.redis_failures.inc();
        }
        result
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

    /// Routes a command to the node holding the connection it names; for a journaled
    /// session, through its journal (a message) or its channel (anything else), which reach
    /// it on whichever node serves it now.
    pub fn command(&self, node: NodeId, command: &NodeCommand) -> Result<(), OutboxFull> {
        let id = command.id();
        if !id.is_journaled() {
            return self
                .outbox
                .publish(keys::node_channel(node), command.encode());
        }
        match command {
            NodeCommand::Send {
                function,
                id,
                frame,
            } => self.queue_append(*id, frame, None, function.as_deref()),
            other => self.queue_session_command(id, other),
        }
    }

    /// Queues a group publish: kept in the group's history for as long as a session may wait
    /// for a resume, and sent to the nodes with members of the group (this one included, for
    /// its journaled sessions), with its id in the history.
    pub fn publish_to_group(&self, publish: &GroupPublish) -> Result<(), OutboxFull> {
        let window = self.settings.session_window.as_millis() as u64;
        let command = redis::cmd("EVAL")
            .arg(PUBLISH_TO_GROUP)
            .arg(2)
            .arg(keys::group_history(&publish.function, &publish.group))
            .arg(keys::group_sessions(&publish.function, &publish.group))
            .arg(self.redis.publish_command())
            .arg(keys::group_channel(&publish.function, &publish.group))
            .arg(publish.encode())
            .arg(window.max(1))
            .clone();
        self.outbox.commands(vec![command])
    }
}

/// KEYS: the group's history, its sessions marker. ARGV: publish command, channel, the
/// encoded publish, how long to keep it (ms). Publishes `<history id> <encoded publish>`.
/// Only a group with journaled sessions among its members keeps a history (and ids that
/// order its publishes); any other's publishes go out with the id `0-0`. The history expires
/// with its last publish's window, so a group that falls quiet leaves nothing behind.
const PUBLISH_TO_GROUP: &str = r"
local id = '0-0'
if redis.call('EXISTS', KEYS[2]) == 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  id = redis.call('XADD', KEYS[1], 'MINID', '~', now - tonumber(ARGV[4]), '*', 'p', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
end
redis.call(ARGV[1], ARGV[2], id .. ' ' .. ARGV[3])
return id
";

/// A channel whose wanted state on this node changed.
pub(crate) enum Interest {
    /// A group whose members on this node changed.
    Group {
        scope: Arc<FunctionScope>,
        group: String,
    },
    /// A journaled session this node started or stopped serving.
    Session(ConnectionId),
}
