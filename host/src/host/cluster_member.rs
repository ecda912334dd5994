//! This node's part in the cluster (see [`crate::cluster::Member`]): commands for the
//! connections it holds are found by the one rule of [`crate::reach`], as the function that
//! sent them (or the operator) would find them here.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Host;
use crate::cluster::{ClusterLink, GroupPublish, Member, NodeCommand, Orphan, SessionNotice};
use crate::connections::{Connection, ConnectionId, PhaseKind, PublishMark};
use crate::reach::{Asker, Reach};

impl Host {
    /// The connection `id` held here, as `function` (or, without one, the operator) reaches it.
    fn held_here(&self, function: Option<&str>, id: ConnectionId) -> Option<Arc<Connection>> {
        let asker = function.map_or(Asker::Operator, Asker::Function);
        match self.resolver(asker).resolve_id(id) {
            Reach::Here(connection) => Some(connection),
            Reach::Remote { .. } | Reach::Gone => None,
        }
    }
}

impl Host {
    /// Reads from its journal what a journaled session here has not had yet (appended before
    /// this node listened to its channel).
    pub async fn catch_up_session(&self, connection: &Arc<Connection>) {
        let next = connection
            .session
            .as_deref()
            .and_then(|session| session.sequencer())
            .and_then(|sequencer| sequencer.lock().next());
        if let (Some(next), Some(cluster)) = (next, &self.cluster) {
            read_journal(cluster, connection, next, None).await;
        }
    }

    /// Reads what a journaled session here missed from its journal, in the background.
    fn fill_gap(&self, connection: Arc<Connection>, (from, to): (u64, u64)) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        tokio::spawn(async move { read_journal(&cluster, &connection, from, Some(to)).await });
    }
}

/// Delivers the journal's messages of `connection` from `from` (to `to`, or all).
async fn read_journal(
    cluster: &ClusterLink,
    connection: &Arc<Connection>,
    from: u64,
    to: Option<u64>,
) {
    {
        match cluster.read_session_log(connection.id, from, to).await {
            Ok(messages) => {
                for (position, frame) in messages {
                    let _ = connection.deliver_journaled(position, frame);
                }
            }
            Err(error) => {
                tracing::warn!(connection = %connection.id, "cannot read a session's journal: {error}");
            }
        }
        if let Some(sequencer) = connection.session.as_deref().and_then(|s| s.sequencer()) {
            sequencer.lock().filled();
        }
    }
}

#[async_trait::async_trait]
impl Member for Host {
    fn apply_command(&self, command: NodeCommand) {
        let cluster = self.cluster.as_deref();
        match command {
            NodeCommand::Send {
                function,
                id,
                frame,
            } => {
                if let Some(connection) = self.held_here(function.as_deref(), id) {
                    let _ = connection.send(frame);
                }
            }
            NodeCommand::Close {
                function,
                id,
                code,
                reason,
            } => {
                if let Some(connection) = self.held_here(function.as_deref(), id) {
                    connection.start_close(code, &reason);
                }
            }
            NodeCommand::Join {
                function,
                id,
                group,
            } => {
                if let Some(connection) = self.held_here(Some(&function), id)
                    && connection.is_open()
                {
                    connection.scope.groups.join(&connection, &group);
                    if let Some(cluster) = cluster {
                        let _ = cluster.joined(&connection, &group);
                    }
                }
            }
            NodeCommand::Leave {
                function,
                id,
                group,
            } => {
                if let Some(connection) = self.held_here(Some(&function), id) {
                    connection.scope.groups.leave(&connection, &group);
                    if let Some(cluster) = cluster {
                        let _ = cluster.left(&connection, &group);
                    }
                }
            }
            NodeCommand::SetAttachment {
                function,
                id,
                value,
            } => {
                if let Some(connection) = self.held_here(Some(&function), id) {
                    if let Some(cluster) = cluster {
                        let _ = cluster.attachment_set(&function, id, value.as_deref());
                    }
                    connection.set_attachment(value);
                }
            }
        }
    }

    fn deliver_publish(&self, publish: &GroupPublish, mark: PublishMark, journaled_only: bool) {
        if !journaled_only {
            self.metrics.cluster().publishes_received.inc();
        }
        if let Some(slot) = self.functions.get(&publish.function) {
            let groups = &slot.scope.groups;
            let (group, frame, except) = (&publish.group, &publish.frame, publish.except);
            if journaled_only {
                groups.publish_journaled(group, frame, except, mark);
            } else {
                groups.publish(group, frame, except, Some(mark));
            }
        }
    }

    fn serves_session(&self, id: ConnectionId) -> bool {
        self.connections.get(id).is_some_and(|connection| {
            connection.outgoing.kind() != PhaseKind::Ended
                && connection
                    .session
                    .as_deref()
                    .is_some_and(|session| session.journal().is_some() && !session.has_moved())
        })
    }

    fn session_notice(&self, id: ConnectionId, notice: SessionNotice) {
        let Some(connection) = self.connections.get(id) else {
            return;
        };
        let Some(session) = connection.session.as_deref() else {
            return;
        };
        match notice {
            SessionNotice::Message { position, frame } => {
                if let Some(missing) = connection.deliver_journaled(position, frame) {
                    self.fill_gap(connection.clone(), missing);
                }
            }
            SessionNotice::Moved { to, claim } => {
                if self.cluster.as_ref().is_some_and(|c| c.node != to) {
                    session.move_away(claim);
                    connection.outgoing.nudge();
                }
            }
            SessionNotice::Overflowed => {
                connection
                    .start_close_now(1008, "the session's messages exceeded its retention limit");
            }
            SessionNotice::Released { handled, claim } => session.note_released(handled, claim),
            SessionNotice::Command(command) => self.apply_command(command),
        }
    }

    async fn catch_up_sessions(&self) {
        for connection in self.connections.all() {
            self.catch_up_session(&connection).await;
        }
    }

    async fn close_orphan(&self, orphan: Orphan) {
        let Some(slot) = self.functions.get(&orphan.record.function) else {
            return;
        };
        let Ok(id) = orphan.record.id.parse::<ConnectionId>() else {
            return;
        };
        let remote = orphan
            .record
            .remote
            .parse()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        // Never in the table and already ended: sends to it fail and on-close sees its
        // attachment.
        let ghost = Arc::new(Connection::ended(
            id,
            slot.scope.clone(),
            remote,
            orphan.attachment,
        ));
        let _ = Box::pin(slot.current().on_close(&ghost, 1006, orphan.reason)).await;
    }

    async fn sync_function(&self, function: &str) {
        self.functions.sync_function(function).await;
    }

    async fn sync_all(&self) {
        self.functions.sync_all().await;
    }

    async fn offer_functions(&self) {
        if let Err(error) = self.functions.offer_to_cluster().await {
            tracing::warn!("could not offer this node's functions to the cluster again: {error}");
        }
    }

    fn connections(&self) -> Vec<Arc<Connection>> {
        self.connections.all()
    }

    fn leaving(&self) -> &CancellationToken {
        &self.cluster_stop
    }
}
