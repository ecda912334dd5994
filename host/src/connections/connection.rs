//! What the host keeps for one open connection.
//!
//! This record is all a connection costs while idle besides its socket: no guest instance is
//! held for it. Events of any instance, the admin API and group publishes reach the socket
//! through the record's outbound queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use atomic_waker::AtomicWaker;
use parking_lot::Mutex;

use super::id::{ConnectionId, HexId};
use super::outbound::{Outbound, OutboundQueue, QueueError};
use crate::config::SlowConsumerPolicy;
use crate::scope::FunctionScope;

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
    pub outbound: OutboundQueue,
    slow_consumer: SlowConsumerPolicy,
    /// Groups this connection is in, so they can be left when it closes.
    memberships: Mutex<Vec<Box<str>>>,
    attachment: Mutex<Option<Vec<u8>>>,
    /// The close the host started (by the function, the operator, a fault or shutdown).
    initiated_close: Mutex<Option<(u16, String)>>,
    /// Wakes the connection's reader when a close has been started from elsewhere.
    close_started: AtomicWaker,
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
            outbound: OutboundQueue::new(outbound_limit),
            slow_consumer,
            memberships: Mutex::new(Vec::new()),
            attachment: Mutex::new(attachment),
            initiated_close: Mutex::new(None),
            close_started: AtomicWaker::new(),
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

    fn deliver(&self, frame: Outbound, fanout: bool) -> Result<(), QueueError> {
        let metrics = &self.scope.metrics;
        let data_bytes = match &frame {
            Outbound::Text(b) | Outbound::Binary(b) => Some(b.len()),
            _ => None,
        };
        let drop_oldest = self.slow_consumer == SlowConsumerPolicy::DropOldest;
        let pushed = if fanout {
            self.outbound.push_fanout(frame, drop_oldest)
        } else if drop_oldest {
            self.outbound.push_dropping_oldest(frame)
        } else {
            self.outbound.push(frame).map(|()| 0)
        };
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

    /// Starts the close handshake: queues a close frame after what is already queued. Returns
    /// false if a close had already started.
    pub fn start_close(&self, code: u16, reason: &str) -> bool {
        self.record_close(code, reason, self.outbound.push_close(code, reason))
    }

    /// Starts a close that skips the frames still queued.
    pub fn start_close_now(&self, code: u16, reason: &str) -> bool {
        self.record_close(code, reason, self.outbound.push_close_now(code, reason))
    }

    fn record_close(&self, code: u16, reason: &str, started: bool) -> bool {
        if started {
            *self.initiated_close.lock() = Some((code, reason.to_owned()));
            self.close_started.wake();
        }
        started
    }

    /// Ready once a close has been started (by anyone but the peer). Only the connection's
    /// reader waits on it: a single waiter, so an atomic waker suffices and waiting costs no lock.
    pub fn poll_closing(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.is_closing() {
            return std::task::Poll::Ready(());
        }
        self.close_started.register(cx.waker());
        if self.is_closing() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }

    /// The close the host started, if it did.
    pub fn initiated_close(&self) -> Option<(u16, String)> {
        self.initiated_close.lock().clone()
    }

    pub fn is_closing(&self) -> bool {
        self.outbound.is_closing()
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
