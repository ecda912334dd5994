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
use super::journal::{PublishMark, Ready, SessionJournal};
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

    /// A session in a cluster: its messages go through `journal` (see `journal`).
    pub fn journaled(mut self, journal: Arc<dyn SessionJournal>) -> Self {
        self.session = self
            .session
            .map(|session| Box::new(session.journaled(journal)));
        self
    }

    /// A session taken over from another node, detached until its task gives it the resuming
    /// socket: its outgoing side numbers messages from `first`.
    pub fn taken_over(mut self, session: Session, retention: usize, first: u64) -> Self {
        self.outgoing = Outgoing::taken_over(self.outgoing.max_bytes(), retention, first);
        self.session = Some(Box::new(session));
        self
    }

    /// The journal this connection's messages go through, for a session in a cluster.
    pub fn journal(&self) -> Option<&Arc<dyn SessionJournal>> {
        self.session.as_deref().and_then(Session::journal)
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

    /// Sends one frame of a group publish: for a journaled session, appended with the mark
    /// that lets it be taken once; for anything else as by `send_fanout`.
    pub fn send_published(
        &self,
        frame: Outbound,
        group: &str,
        mark: Option<PublishMark>,
    ) -> Result<(), QueueError> {
        match (self.session.as_deref(), self.journal(), mark) {
            (Some(session), Some(journal), Some(mark)) if frame.data_len().is_some() => {
                if !self.outgoing.kind().accepts_frames() {
                    return Err(QueueError::Closing);
                }
                session.publish_through(group, mark, frame, |frame| {
                    journal.append(self.id, frame, Some((group, mark)))
                })
            }
            _ => self.deliver(frame, true),
        }
    }

    /// Delivers the journal's message at `position`, in order with the others (see
    /// `journal::Sequencer`). Returns positions that are missing and must be read from the
    /// journal, if any.
    pub fn deliver_journaled(&self, position: u64, frame: Outbound) -> Option<(u64, u64)> {
        let sequencer = self.session.as_deref()?.sequencer()?;
        let mut sequencer = sequencer.lock();
        let ready = sequencer.offer(position, frame);
        self.deliver_ready(ready)
    }

    /// Starts delivering the journal's messages from `next` (a session taken over), with the
    /// messages the claim gave back; returns positions still missing, if any.
    pub fn start_journaled(&self, next: u64, replay: Vec<(u64, Outbound)>) -> Option<(u64, u64)> {
        let sequencer = self.session.as_deref()?.sequencer()?;
        let mut sequencer = sequencer.lock();
        let mut missing = self.deliver_ready(sequencer.start_at(next));
        for (position, frame) in replay {
            missing = self.deliver_ready(sequencer.offer(position, frame));
        }
        missing
    }

    /// Hands what the sequencer released to the outgoing side; called with its lock held,
    /// so two deliveries cannot interleave.
    fn deliver_ready(&self, ready: Ready) -> Option<(u64, u64)> {
        if ready.overflowed {
            self.start_close_now(1011, "the session fell behind its journal");
            return None;
        }
        for frame in ready.frames {
            let _ = self.queue(frame, false);
        }
        ready.missing
    }

    fn deliver(&self, frame: Outbound, direct: bool) -> Result<(), QueueError> {
        // A journaled session's messages are numbered by its journal and come back through
        // `deliver_journaled`; its control frames are for the socket at hand.
        if let Some(journal) = self.journal()
            && frame.data_len().is_some()
        {
            if !self.outgoing.kind().accepts_frames() {
                return Err(QueueError::Closing);
            }
            return journal.append(self.id, &frame, None);
        }
        self.queue(frame, direct)
    }

    fn queue(&self, frame: Outbound, direct: bool) -> Result<(), QueueError> {
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
