//! Host side of `wsfn:function/connections`: what a guest can do to connections and groups.
//!
//! A function reaches only its own connections: an id that belongs to another function is
//! reported as not found, exactly like an id that never existed, so functions cannot probe
//! each other. Sends only queue frames, so these calls never wait on a peer.

use std::sync::Arc;

use bytes::Bytes;

use crate::connections::{Connection, ConnectionId, Outbound, QueueError};
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

impl InstanceState {
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
        Ok(self
            .find_open(&id)
            .and_then(|c| c.send(frame_of(message)).map_err(queue_error)))
    }

    fn send_many(&mut self, ids: Vec<String>, message: MessageResult) -> wasmtime::Result<u32> {
        if !self.take_sends(u32::try_from(ids.len()).unwrap_or(u32::MAX)) {
            return Ok(0);
        }
        let frame = frame_of(message);
        let mut delivered = 0;
        for id in &ids {
            if let Ok(connection) = self.find_open(id)
                && connection.send(frame.clone()).is_ok()
            {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    fn close(
        &mut self,
        id: String,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), ConnectionError>> {
        Ok(check_close(code, &reason).and_then(|()| {
            let connection = self.find_open(&id)?;
            connection.start_close(code, &reason);
            Ok(())
        }))
    }

    fn join(&mut self, id: String, group: String) -> wasmtime::Result<Result<(), ConnectionError>> {
        Ok(check_group(&group).and_then(|()| {
            let connection = self.find_open(&id)?;
            self.env.scope.groups.join(&connection, &group);
            Ok(())
        }))
    }

    fn leave(&mut self, id: String, group: String) -> wasmtime::Result<()> {
        if let Ok(connection) = self.find(&id) {
            self.env.scope.groups.leave(&connection, &group);
        }
        Ok(())
    }

    fn publish(
        &mut self,
        group: String,
        message: MessageResult,
        except: Option<String>,
    ) -> wasmtime::Result<u32> {
        if !self.take_sends(1) {
            return Ok(0);
        }
        let except = except.and_then(|id| id.parse::<ConnectionId>().ok());
        Ok(self
            .env
            .scope
            .groups
            .publish(&group, &frame_of(message), except))
    }

    fn group_members(&mut self, group: String) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .env
            .scope
            .groups
            .members(&group)
            .into_iter()
            .map(|id| id.to_string())
            .collect())
    }

    fn get_attachment(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, ConnectionError>> {
        Ok(self.find(&id).map(|c| c.attachment()))
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
        Ok(self.find(&id).map(|c| c.set_attachment(value)))
    }
}

impl crate::runtime::bindings::wsfn::function::types::Host for InstanceState {}
