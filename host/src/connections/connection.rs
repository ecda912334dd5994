//! What the host keeps for one open connection.
//!
//! This record is all a connection costs while idle besides its socket: no guest instance is
//! held for it. Events of any instance, the admin API and group publishes reach the socket
//! through the record's outgoing side, which also holds the connection's state (see
//! `lifecycle`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use super::id::{ConnectionId, HexId};
use super::lifecycle::PhaseKind;
use super::outbound::{Outbound, Outgoing, Push, QueueError};
use super::session::Session;
use crate::config::SlowConsumerPolicy;
use crate::connections::FunctionScope;

/// One accepted WebSocket connection.
#[derive(Debug)]
pub struct Connection {
    pub id: ConnectionId,
    /// The id as text, rendered once so events can pass it to the guest without formatting.
    hex: HexId,
    /// The function the connection belongs to; its groups are that function's groups.
    pub scope: Arc<FunctionScope>,
    pub remote: SocketAddr,
    pub connected_at: SystemTime,
    /// The queue, the socket's write half and the connection's state.
    pub outgoing: Outgoing,
    slow_consumer: SlowConsumerPolicy,
    /// Groups this connection is in, so they can be left when it closes.
    memberships: Mutex<Vec<Box<str>>>,
    attachment: Mutex<Option<Vec<u8>>>,
    /// The resumable session this connection is, if its client asked for one.
    pub session: Option<Box<Session>>,
}

impl Connection {
    pub fn new(
        id: ConnectionId,
        scope: Arc<FunctionScope>,
        remote: SocketAddr,
        outbound_limit: usize,
        slow_consumer: SlowConsumerPolicy,
        attachment: Option<Vec<u8>>,
    ) -> Self {
        Self {
            id,
            hex: id.to_hex(),
            scope,
            remote,
            connected_at: SystemTime::now(),
            outgoing: Outgoing::new(outbound_limit),
            slow_consumer,
            memberships: Mutex::new(Vec::new()),
            attachment: Mutex::new(attachment),
            session: None,
        }
    }

    /// A connection that is a resumable session, holding at most `retention` bytes of
    /// messages for its client (see `outbound`), with the subprotocol on-connect chose.
    pub fn with_session(mut self, retention: usize, subprotocol: Option<&str>) -> Self {
        self.outgoing = Outgoing::for_session(self.outgoing.max_bytes(), retention);
        self.session = Some(Box::new(Session::new(subprotocol.map(Into::into))));
        self
    }

    /// The record of a connection that already ended elsewhere (on a node that died), for its
    /// on-close: it is never in the table and nothing can be sent to it.
    pub fn ended(
        id: ConnectionId,
        scope: Arc<FunctionScope>,
        remote: SocketAddr,
        attachment: Option<Vec<u8>>,
    ) -> Self {
        Self {
            outgoing: Outgoing::ended(),
            ..Self::new(id, scope, remote, 0, SlowConsumerPolicy::Close, attachment)
        }
    }

    pub fn id_str(&self) -> &str {
        self.hex.as_str()
    }

    /// Queues a frame. A full queue means the client is not reading: under the close policy
    /// the connection is closed with 1008 (policy violation) and the frame is refused; under
    /// drop-oldest the oldest queued frames make room.
    pub fn send(&self, frame: Outbound) -> Result<(), QueueError> {
        self.deliver(frame, false)
    }

    /// Sends one frame of a fan-out to many connections (a group publish): written to the
    /// socket at once when nothing is pending for this connection, else queued as by `send`.
    pub fn send_fanout(&self, frame: Outbound) -> Result<(), QueueError> {
        self.deliver(frame, true)
    }

    fn deliver(&self, frame: Outbound, direct: bool) -> Result<(), QueueError> {
        let metrics = &self.scope.metrics;
        let data_bytes = frame.data_len();
        let drop_oldest = self.slow_consumer == SlowConsumerPolicy::DropOldest;
        let pushed = self.outgoing.push(
            frame,
            Push {
                drop_oldest,
                direct,
            },
        );
        match pushed {
            Ok(dropped) => {
                if let Some(bytes) = data_bytes {
                    metrics.message_out(bytes);
                }
                if dropped > 0 {
                    metrics.dropped_frames.inc_by(dropped as u64);
                }
                Ok(())
            }
            Err(QueueError::Full) => {
                if self.start_close_now(1008, "outbound queue full") {
                    metrics.slow_consumer_closes.inc();
                    tracing::warn!(connection = %self.id, function = %self.scope.name, "outbound queue full: closing a slow consumer with 1008");
                }
                Err(QueueError::Full)
            }
            Err(other) => Err(other),
        }
    }

    /// Starts the close handshake: a close frame after what is already queued. Returns
    /// false if a close had already started.
    pub fn start_close(&self, code: u16, reason: &str) -> bool {
        self.outgoing.start_close(code, reason, true, false)
    }

    /// Starts a close that skips the frames still queued.
    pub fn start_close_now(&self, code: u16, reason: &str) -> bool {
        self.outgoing.start_close(code, reason, true, true)
    }

    /// Whether frames can still be sent to this connection (no close has started).
    pub fn is_open(&self) -> bool {
        self.outgoing.kind() == PhaseKind::Open
    }

    pub fn attachment(&self) -> Option<Vec<u8>> {
        self.attachment.lock().clone()
    }

    pub fn set_attachment(&self, value: Option<Vec<u8>>) {
        *self.attachment.lock() = value;
    }

    /// Adds the group to this connection's memberships; false if it was already there.
    pub(super) fn note_joined(&self, group: &str) -> bool {
        let mut memberships = self.memberships.lock();
        if memberships.iter().any(|g| &**g == group) {
            return false;
        }
        memberships.push(group.into());
        true
    }

    pub(super) fn note_left(&self, group: &str) {
        self.memberships.lock().retain(|g| &**g != group);
    }

    pub(super) fn take_memberships(&self) -> Vec<Box<str>> {
        std::mem::take(&mut *self.memberships.lock())
    }

    pub fn memberships(&self) -> Vec<String> {
        self.memberships
            .lock()
            .iter()
            .map(|g| g.to_string())
            .collect()
    }
}
