//! Host side of `wsfn:function/connections`: what a guest can do to connections and groups.
//!
//! A function reaches only its own connections: an id that belongs to another function is
//! reported as not found, exactly like an id that never existed, so functions cannot probe
//! each other. Sends only queue frames, so these calls never wait on a peer.
//!
//! In a cluster, an id held by another live node is reached by routing a command to that node
//! (see [`crate::cluster`]): such a send reports success once the command is queued, and a
//! connection that closed meanwhile simply does not get it, as with any send that races a
//! close. Group publishes reach every node's members; `group-members` and reading another
//! node's attachment ask Redis.

use std::sync::Arc;

use bytes::Bytes;

use crate::cluster::{NodeCommand, OutboxFull};
use crate::connections::{Connection, ConnectionId, NodeId, Outbound, QueueError};
use crate::runtime::InstanceState;
use crate::runtime::bindings::wsfn::function::connections::Host;
use crate::runtime::bindings::wsfn::function::types::{ConnectionError, MessageResult};

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 128;
/// Largest attachment, in bytes.
pub const MAX_ATTACHMENT: usize = 64 * 1024;
/// Longest close reason the WebSocket protocol allows in a close frame, in bytes.
pub const MAX_CLOSE_REASON: usize = 123;

/// Turns a guest message into a frame without copying its bytes.
pub fn frame_of(message: MessageResult) -> Outbound {
    match message {
        MessageResult::Text(text) => Outbound::Text(Bytes::from(text.into_bytes())),
        MessageResult::Binary(bytes) => Outbound::Binary(Bytes::from(bytes)),
    }
}

fn queue_error(error: QueueError) -> ConnectionError {
    match error {
        QueueError::Closing => ConnectionError::NotFound,
        QueueError::Full => {
            ConnectionError::LimitExceeded("the connection's outbound queue is full".into())
        }
    }
}

fn check_group(group: &str) -> Result<(), ConnectionError> {
    if group.is_empty() || group.len() > MAX_GROUP_NAME {
        return Err(ConnectionError::Invalid(format!(
            "group names must be 1 to {MAX_GROUP_NAME} bytes long"
        )));
    }
    Ok(())
}

/// Close codes a function may send: 1000 (normal) and the ranges for libraries (3000-3999)
/// and applications (4000-4999). The others describe protocol events only the host reports.
pub fn check_close(code: u16, reason: &str) -> Result<(), ConnectionError> {
    if code != 1000 && !(3000..=4999).contains(&code) {
        return Err(ConnectionError::Invalid(format!(
            "close code {code} is not allowed: use 1000 or 3000-4999"
        )));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(ConnectionError::Invalid(format!(
            "close reasons are at most {MAX_CLOSE_REASON} bytes"
        )));
    }
    Ok(())
}

fn backed_up(error: OutboxFull) -> ConnectionError {
    ConnectionError::LimitExceeded(error.to_string())
}

/// A connection as a guest can reach it: held here, or by another node of the cluster.
enum Target {
    Local(Arc<Connection>),
    Remote(ConnectionId, NodeId),
}

impl InstanceState {
    /// Finds a connection here or, in a cluster, on the live node its id names.
    fn target(&self, id: &str) -> Result<Target, ConnectionError> {
        match self.find_open(id) {
            Ok(connection) => Ok(Target::Local(connection)),
            Err(error) => {
                let Some(cluster) = &self.env.cluster else {
                    return Err(error);
                };
                let id: ConnectionId = id.parse().map_err(|_| ConnectionError::NotFound)?;
                let node = id.node();
                if node != cluster.node && cluster.is_live(node) {
                    Ok(Target::Remote(id, node))
                } else {
                    Err(error)
                }
            }
        }
    }

    fn function_name(&self) -> String {
        self.env.scope.name.to_string()
    }

    /// Routes a command to another node.
    fn route(&self, node: NodeId, command: NodeCommand) -> Result<(), ConnectionError> {
        match &self.env.cluster {
            Some(cluster) => cluster.command(node, &command).map_err(backed_up),
            None => Err(ConnectionError::NotFound),
        }
    }

    /// Finds one of this function's connections. The connection of the running event is found
    /// even during its on-close, so its attachment can still be read.
    fn find(&self, id: &str) -> Result<Arc<Connection>, ConnectionError> {
        if let Some(current) = &self.connection
            && current.id_str() == id
        {
            return Ok(current.clone());
        }
        let id: ConnectionId = id.parse().map_err(|_| ConnectionError::NotFound)?;
        match self.env.connections.get(id) {
            Some(connection) if Arc::ptr_eq(&connection.scope, &self.env.scope) => Ok(connection),
            _ => Err(ConnectionError::NotFound),
        }
    }

    fn sends_exhausted(&self) -> ConnectionError {
        ConnectionError::LimitExceeded(format!(
            "this event has used its {} sends",
            self.env.limits.sends_per_event
        ))
    }

    /// Like [`find`](Self::find), for operations that need the connection to be open.
    fn find_open(&self, id: &str) -> Result<Arc<Connection>, ConnectionError> {
        let connection = self.find(id)?;
        let ending = self.closing_event
            && self
                .connection
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &connection));
        if ending || connection.is_closing() {
            return Err(ConnectionError::NotFound);
        }
        Ok(connection)
    }
}

impl Host for InstanceState {
    fn reply(&mut self, message: MessageResult) -> wasmtime::Result<()> {
        if self.closing_event || !self.take_sends(1) {
            return Ok(());
        }
        if let Some(connection) = &self.connection {
            // A refused reply means the connection is closing (or was just closed for being
            // slow); the guest has nothing useful to do about it.
            let _ = connection.send(frame_of(message));
        }
        Ok(())
    }

    fn send(
        &mut self,
        id: String,
        message: MessageResult,
    ) -> wasmtime::Result<Result<(), ConnectionError>> {
        if !self.take_sends(1) {
            return Ok(Err(self.sends_exhausted()));
        }
        Ok(self.target(&id).and_then(|target| match target {
            Target::Local(c) => c.send(frame_of(message)).map_err(queue_error),
            Target::Remote(id, node) => self.route(
                node,
                NodeCommand::Send {
                    function: Some(self.function_name()),
                    id,
                    frame: frame_of(message),
                },
            ),
        }))
    }

    fn send_many(&mut self, ids: Vec<String>, message: MessageResult) -> wasmtime::Result<u32> {
        if !self.take_sends(u32::try_from(ids.len()).unwrap_or(u32::MAX)) {
            return Ok(0);
        }
        let frame = frame_of(message);
        let mut delivered = 0;
        for id in &ids {
            let sent = match self.target(id) {
                Ok(Target::Local(connection)) => connection.send(frame.clone()).is_ok(),
                Ok(Target::Remote(id, node)) => self
                    .route(
                        node,
                        NodeCommand::Send {
                            function: Some(self.function_name()),
                            id,
                            frame: frame.clone(),
                        },
                    )
                    .is_ok(),
                Err(_) => false,
            };
            delivered += u32::from(sent);
        }
        Ok(delivered)
    }

    fn close(
        &mut self,
        id: String,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), ConnectionError>> {
        Ok(
            check_close(code, &reason).and_then(|()| match self.target(&id)? {
                Target::Local(connection) => {
                    connection.start_close(code, &reason);
                    Ok(())
                }
                Target::Remote(id, node) => self.route(
                    node,
                    NodeCommand::Close {
                        function: Some(self.function_name()),
                        id,
                        code,
                        reason,
                    },
                ),
            }),
        )
    }

    fn join(&mut self, id: String, group: String) -> wasmtime::Result<Result<(), ConnectionError>> {
        Ok(check_group(&group).and_then(|()| match self.target(&id)? {
            Target::Local(connection) => {
                self.env.scope.groups.join(&connection, &group);
                match &self.env.cluster {
                    Some(cluster) => cluster
                        .joined(&self.env.scope.name, connection.id, &group)
                        .map_err(backed_up),
                    None => Ok(()),
                }
            }
            Target::Remote(id, node) => self.route(
                node,
                NodeCommand::Join {
                    function: self.function_name(),
                    id,
                    group,
                },
            ),
        }))
    }

    fn leave(&mut self, id: String, group: String) -> wasmtime::Result<()> {
        if let Ok(connection) = self.find(&id) {
            self.env.scope.groups.leave(&connection, &group);
            if let Some(cluster) = &self.env.cluster {
                let _ = cluster.left(&self.env.scope.name, connection.id, &group);
            }
        } else if let Ok(Target::Remote(id, node)) = self.target(&id) {
            let function = self.function_name();
            let _ = self.route(
                node,
                NodeCommand::Leave {
                    function,
                    id,
                    group,
                },
            );
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        group: String,
        message: MessageResult,
        except: Option<String>,
    ) -> wasmtime::Result<u32> {
        if !self.take_sends(1) {
            return Ok(0);
        }
        let except = except.and_then(|id| id.parse::<ConnectionId>().ok());
        Ok(crate::cluster::publish(
            &self.env.scope,
            self.env.cluster.as_deref(),
            &group,
            frame_of(message),
            except,
        )
        .await)
    }

    async fn group_members(&mut self, group: String) -> wasmtime::Result<Vec<String>> {
        if let Some(cluster) = &self.env.cluster {
            match cluster.group_members(&self.env.scope.name, &group).await {
                Ok(members) => return Ok(members),
                Err(error) => {
                    tracing::warn!(function = %self.env.scope.name, "group members of this node only: {error}");
                }
            }
        }
        Ok(self
            .env
            .scope
            .groups
            .members(&group)
            .into_iter()
            .map(|id| id.to_string())
            .collect())
    }

    async fn get_attachment(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, ConnectionError>> {
        let local = self.find(&id).map(|c| c.attachment());
        let (Err(_), Some(cluster)) = (&local, &self.env.cluster) else {
            return Ok(local);
        };
        let Ok(id) = id.parse::<ConnectionId>() else {
            return Ok(local);
        };
        if id.node() == cluster.node {
            return Ok(local);
        }
        Ok(match cluster.attachment(&self.env.scope.name, id).await {
            Ok(Some(attachment)) => Ok(attachment),
            Ok(None) => Err(ConnectionError::NotFound),
            Err(error) => Err(ConnectionError::LimitExceeded(error.to_string())),
        })
    }

    fn set_attachment(
        &mut self,
        id: String,
        value: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<(), ConnectionError>> {
        if value.as_ref().is_some_and(|v| v.len() > MAX_ATTACHMENT) {
            return Ok(Err(ConnectionError::Invalid(format!(
                "attachments are at most {MAX_ATTACHMENT} bytes"
            ))));
        }
        if let Ok(connection) = self.find(&id) {
            if let Some(cluster) = &self.env.cluster
                && let Err(error) =
                    cluster.attachment_set(&self.env.scope.name, connection.id, value.as_deref())
            {
                return Ok(Err(backed_up(error)));
            }
            connection.set_attachment(value);
            return Ok(Ok(()));
        }
        Ok(self.target(&id).and_then(|target| match target {
            // Found above when local; only a remote id gets here.
            Target::Local(_) => Err(ConnectionError::NotFound),
            Target::Remote(id, node) => self.route(
                node,
                NodeCommand::SetAttachment {
                    function: self.function_name(),
                    id,
                    value,
                },
            ),
        }))
    }
}

impl crate::runtime::bindings::wsfn::function::types::Host for InstanceState {}
