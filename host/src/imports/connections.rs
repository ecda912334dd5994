//! Host side of `wsfn:function/connections`: what a guest can do to connections and groups.
//!
//! Connections are found by the one rule of [`crate::reach`]: a function reaches only its own
//! connections, and one of another function is reported as not found, exactly like an id
//! that never existed, so functions cannot probe each other. Sends only queue frames, so
//! these calls never wait on a peer.
//!
//! In a cluster, an id held by another live node is reached by routing a command to that node
//! (see [`crate::cluster`]): such a send reports success once the command is queued, and a
//! connection that closed meanwhile simply does not get it, as with any send that races a
//! close. Group publishes reach every node's members; `group-members` and reading another
//! node's attachment ask Redis.

use std::sync::Arc;

use bytes::Bytes;

use crate::cluster::NodeCommand;
use crate::connections::rules::{self, RuleError};
use crate::connections::{Connection, ConnectionId, NodeId, Outbound, QueueError};
use crate::reach::{Asker, Reach, Resolver};
use crate::runtime::bindings::wsfn::function::connections::Host;
use crate::runtime::bindings::wsfn::function::types::{ConnectionError, MessageResult};
use crate::runtime::{ConnectionFailure, InstanceState};

type ConnectionResult<T> = Result<T, ConnectionFailure>;

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

fn invalid(error: RuleError) -> ConnectionError {
    ConnectionError::Invalid(error.to_string())
}

fn backed_up(error: impl std::fmt::Display) -> ConnectionError {
    ConnectionError::LimitExceeded(error.to_string())
}

/// A connection a guest may act on: open and held here, or held by another node.
enum Target {
    Local(Arc<Connection>),
    Remote(ConnectionId, NodeId),
}

impl InstanceState {
    fn resolver(&self) -> Resolver<'_> {
        Resolver::new(
            &self.env.connections,
            self.env.cluster.as_deref(),
            Asker::Function(&self.env.scope.name),
        )
        .with_current(self.connection.as_ref())
    }

    /// Where `id` is, for operations that need the connection open (send, close, join).
    fn open_target(&self, id: &str) -> Result<Target, ConnectionError> {
        match self.resolver().resolve(id) {
            Reach::Here(connection) if connection.is_open() => Ok(Target::Local(connection)),
            Reach::Remote { id, node } => Ok(Target::Remote(id, node)),
            Reach::Here(_) | Reach::Gone => Err(ConnectionError::NotFound),
        }
    }

    fn function_name(&self) -> String {
        self.env.scope.name.to_string()
    }

    /// Routes a command to the node holding the connection it names.
    fn route(&self, node: NodeId, command: NodeCommand) -> Result<(), ConnectionError> {
        match &self.env.cluster {
            Some(cluster) => cluster.command(node, &command).map_err(backed_up),
            None => Err(ConnectionError::NotFound),
        }
    }

    fn sends_exhausted(&self) -> ConnectionError {
        ConnectionError::LimitExceeded(format!(
            "this event has used its {} sends",
            self.env.limits.sends_per_event
        ))
    }

    /// Sends `frame` to `id` wherever it is held.
    fn send_to(&self, id: &str, frame: Outbound) -> Result<(), ConnectionError> {
        match self.open_target(id)? {
            Target::Local(connection) => connection.send(frame).map_err(queue_error),
            Target::Remote(id, node) => self.route(
                node,
                NodeCommand::Send {
                    function: Some(self.function_name()),
                    id,
                    frame,
                },
            ),
        }
    }
}

impl Host for InstanceState {
    fn reply(&mut self, message: MessageResult) -> wasmtime::Result<()> {
        let Some(connection) = self.connection.clone() else {
            return Ok(());
        };
        // Nothing can reach a connection that is closing (or during its on-close).
        if !connection.is_open() || !self.take_sends(1) {
            return Ok(());
        }
        // A refused reply means the connection is closing (or was just closed for being
        // slow); the guest has nothing useful to do about it.
        let _ = connection.send(frame_of(message));
        Ok(())
    }

    fn send(&mut self, id: String, message: MessageResult) -> ConnectionResult<()> {
        if !self.take_sends(1) {
            return Err(self.sends_exhausted().into());
        }
        Ok(self.send_to(&id, frame_of(message))?)
    }

    fn send_many(&mut self, ids: Vec<String>, message: MessageResult) -> wasmtime::Result<u32> {
        if !self.take_sends(u32::try_from(ids.len()).unwrap_or(u32::MAX)) {
            return Ok(0);
        }
        let frame = frame_of(message);
        let delivered = ids
            .iter()
            .filter(|id| self.send_to(id, frame.clone()).is_ok())
            .count();
        Ok(u32::try_from(delivered).unwrap_or(u32::MAX))
    }

    fn close(&mut self, id: String, code: u16, reason: String) -> ConnectionResult<()> {
        rules::check_close(code, &reason).map_err(invalid)?;
        match self.open_target(&id)? {
            Target::Local(connection) => {
                connection.start_close(code, &reason);
                Ok(())
            }
            Target::Remote(id, node) => Ok(self.route(
                node,
                NodeCommand::Close {
                    function: Some(self.function_name()),
                    id,
                    code,
                    reason,
                },
            )?),
        }
    }

    fn join(&mut self, id: String, group: String) -> ConnectionResult<()> {
        rules::check_group(&group).map_err(invalid)?;
        match self.open_target(&id)? {
            Target::Local(connection) => {
                self.env.scope.groups.join(&connection, &group);
                if let Some(cluster) = &self.env.cluster {
                    cluster.joined(&connection, &group).map_err(backed_up)?;
                }
                Ok(())
            }
            Target::Remote(id, node) => {
                let function = self.function_name();
                Ok(self.route(
                    node,
                    NodeCommand::Join {
                        function,
                        id,
                        group,
                    },
                )?)
            }
        }
    }

    fn leave(&mut self, id: String, group: String) -> wasmtime::Result<()> {
        match self.resolver().resolve(&id) {
            Reach::Here(connection) => {
                self.env.scope.groups.leave(&connection, &group);
                if let Some(cluster) = &self.env.cluster {
                    let _ = cluster.left(&connection, &group);
                }
            }
            Reach::Remote { id, node } => {
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
            Reach::Gone => {}
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

    async fn get_attachment(&mut self, id: String) -> ConnectionResult<Option<Vec<u8>>> {
        let reach = self.resolver().resolve(&id);
        match (reach, &self.env.cluster) {
            (Reach::Here(connection), _) => Ok(connection.attachment()),
            (Reach::Remote { id, .. }, Some(cluster)) => {
                match cluster.attachment(&self.env.scope.name, id).await {
                    Ok(Some(attachment)) => Ok(attachment),
                    Ok(None) => Err(ConnectionError::NotFound.into()),
                    Err(error) => Err(backed_up(error).into()),
                }
            }
            _ => Err(ConnectionError::NotFound.into()),
        }
    }

    fn set_attachment(&mut self, id: String, value: Option<Vec<u8>>) -> ConnectionResult<()> {
        if let Some(value) = &value {
            rules::check_attachment(value).map_err(invalid)?;
        }
        match self.resolver().resolve(&id) {
            Reach::Here(connection) => {
                if let Some(cluster) = &self.env.cluster {
                    cluster
                        .attachment_set(&self.env.scope.name, connection.id, value.as_deref())
                        .map_err(backed_up)?;
                }
                connection.set_attachment(value);
                Ok(())
            }
            Reach::Remote { id, node } => {
                let function = self.function_name();
                Ok(self.route(
                    node,
                    NodeCommand::SetAttachment {
                        function,
                        id,
                        value,
                    },
                )?)
            }
            Reach::Gone => Err(ConnectionError::NotFound.into()),
        }
    }
}

impl crate::runtime::bindings::wsfn::function::types::Host for InstanceState {
    fn convert_connection_error(
        &mut self,
        error: ConnectionFailure,
    ) -> wasmtime::Result<ConnectionError> {
        error.into_guest()
    }
}
