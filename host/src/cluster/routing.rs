//! What a node does for the rest of the cluster: commands for the connections it holds,
//! other nodes' group publishes, and on-close for the connections of a node that died.

use std::sync::Arc;

use super::{GroupPublish, NodeCommand, Orphan};
use crate::connections::{Connection, ConnectionId};
use crate::host::Host;

impl Host {
    /// Runs on-close for a connection of a dead node, on this node.
    pub async fn close_orphan(&self, orphan: Orphan) {
        let Some(slot) = self.function(&orphan.record.function) else {
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
        // Never in the table and never open: sends to it fail and on-close sees its attachment.
        let ghost = Arc::new(Connection::new(
            id,
            slot.scope.clone(),
            remote,
            0,
            self.limits.slow_consumer,
            orphan.attachment,
        ));
        let _ = Box::pin(slot.current().on_close(
            &ghost,
            1006,
            "the node holding the connection stopped",
        ))
        .await;
    }

    /// A connection this node holds, if it is open and (when given) of `function`.
    fn local_connection(
        &self,
        function: Option<&str>,
        id: ConnectionId,
    ) -> Option<Arc<Connection>> {
        let connection = self.connections.get(id)?;
        if function.is_some_and(|f| *connection.scope.name != *f) || connection.is_closing() {
            return None;
        }
        Some(connection)
    }

    /// Carries out a command another node sent for a connection this node holds.
    pub fn apply_command(&self, command: NodeCommand) {
        let cluster = self.cluster.as_deref();
        match command {
            NodeCommand::Send {
                function,
                id,
                frame,
            } => {
                if let Some(connection) = self.local_connection(function.as_deref(), id) {
                    let _ = connection.send(frame);
                }
            }
            NodeCommand::Close {
                function,
                id,
                code,
                reason,
            } => {
                if let Some(connection) = self.local_connection(function.as_deref(), id) {
                    connection.start_close(code, &reason);
                }
            }
            NodeCommand::Join {
                function,
                id,
                group,
            } => {
                if let Some(connection) = self.local_connection(Some(&function), id) {
                    connection.scope.groups.join(&connection, &group);
                    if let Some(cluster) = cluster {
                        let _ = cluster.joined(&function, id, &group);
                    }
                }
            }
            NodeCommand::Leave {
                function,
                id,
                group,
            } => {
                if let Some(connection) = self.local_connection(Some(&function), id) {
                    connection.scope.groups.leave(&connection, &group);
                    if let Some(cluster) = cluster {
                        let _ = cluster.left(&function, id, &group);
                    }
                }
            }
            NodeCommand::SetAttachment {
                function,
                id,
                value,
            } => {
                if let Some(connection) = self.connections.get(id)
                    && *connection.scope.name == *function
                {
                    if let Some(cluster) = cluster {
                        let _ = cluster.attachment_set(&function, id, value.as_deref());
                    }
                    connection.set_attachment(value);
                }
            }
        }
    }

    /// Delivers another node's group publish to the members this node holds.
    pub fn deliver_publish(&self, publish: &GroupPublish) {
        if let Some(slot) = self.function(&publish.function) {
            slot.scope
                .groups
                .publish(&publish.group, &publish.frame, publish.except);
        }
    }
}
