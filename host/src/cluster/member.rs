//! What a node does for the rest of the cluster, as the cluster's listeners ask it: carry out
//! commands for the connections it holds, deliver other nodes' group publishes to its
//! members, run on-close for the connections of a node that died, and follow function changes.
//!
//! The host implements it; the cluster only calls it, so nothing here depends on the host.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{GroupPublish, NodeCommand, Orphan, SessionNotice};
use crate::connections::{Connection, ConnectionId, PublishMark};

#[async_trait::async_trait]
pub trait Member: Send + Sync + 'static {
    /// Carries out a command another node sent for a connection this node holds.
    fn apply_command(&self, command: NodeCommand);

    /// Delivers a group publish (with its id in the group's history) to the members this
    /// node holds: to its journaled sessions only, for a publish this node made.
    fn deliver_publish(&self, publish: &GroupPublish, mark: PublishMark, journaled_only: bool);

    /// Whether this node serves the journaled session `id` (so listens to its channel).
    fn serves_session(&self, id: ConnectionId) -> bool;

    /// Acts on what was heard on the channel of the journaled session `id`.
    fn session_notice(&self, id: ConnectionId, notice: SessionNotice);

    /// Reads from their journals what the journaled sessions here missed while the
    /// subscription was away.
    async fn catch_up_sessions(&self);

    /// Runs on-close for a connection of a dead node.
    async fn close_orphan(&self, orphan: Orphan);

    /// Serves what the cluster now says `function` is (another node changed it).
    async fn sync_function(&self, function: &str);

    /// Brings every function in line with the cluster (after a gap in what this node heard).
    async fn sync_all(&self);

    /// Offers this node's functions to a cluster that lacks them (after Redis lost its data).
    async fn offer_functions(&self);

    /// Every connection this node holds.
    fn connections(&self) -> Vec<Arc<Connection>>;

    /// Cancelled when the node stops taking part in the cluster (once its connections have
    /// drained at shutdown).
    fn leaving(&self) -> &CancellationToken;
}
