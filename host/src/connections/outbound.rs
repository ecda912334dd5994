//! The outgoing side of one connection: its queue of frames, its socket's write half and its
//! state (see `lifecycle`), behind one lock.
//!
//! Everything sent to a connection — by its own events, by other connections' events, by group
//! publishes, by the operator, or as a control reply — goes through here, so frames leave in
//! the order they were sent. The queue is bounded in bytes: a client that stops reading cannot
//! make the host hold more than the bound for it.
//!
//! The one rule that keeps the order: **bytes reach the socket only under this lock, and only
//! from the front of what is committed.** Two paths write:
//! - the connection's session flushes: it encodes every queued frame into `pending` and
//!   writes as much of it as the socket takes, so a burst of sends costs one system call;
//! - a fan-out (a group publish to thousands of members) writes its frame straight to the
//!   socket when nothing is queued or pending, so publishing does not wake every member's task
//!   only for each to make one write. What the socket does not take of that frame becomes
//!   `pending`, and the session finishes it.
//!
//! Closing commits the close frame behind everything queued (or, for a slow consumer, behind
//! only what is already pending), so no frame can follow it.
//!
//! A resumable session's messages are written with their type byte and kept, numbered, from
//! the moment they are committed until the client acknowledges them; when its socket is lost
//! the connection detaches and keeps queuing, and a resume writes every kept message again
//! before anything new. Holding them is bounded by the session's retention limit: what does
//! not fit ends the connection, never leaves a hole in what the client receives.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

use super::lifecycle::{HostClose, Phase, PhaseKind};
use crate::protocol::deflate::deflate;
use crate::protocol::session::MESSAGE;
use crate::protocol::{Opcode, ServerHeader, write_close_frame, write_frame};

/// Frames up to this size (header included) are copied into one buffer for a direct write.
const SMALL_FRAME: usize = 512;
/// A pending buffer that grew beyond this is released once written, so idle connections
/// stay small.
const KEEP_CAPACITY: usize = 64 * 1024;

/// One frame waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// A session's control message (a text frame, written as it is): never counted as a
    /// message, numbered or kept for a resume.
    Control(Bytes),
    /// One message going to many connections (a group publish): compressed at most once
    /// for all the members that negotiated the same compression.
    Shared(Arc<SharedMessage>),
}

/// A message of a fan-out, with its compressed forms made on first use.
#[derive(Debug)]
pub struct SharedMessage {
    pub binary: bool,
    pub raw: Bytes,
    /// Compressed with the usual 32 KiB window: as it is, and with a session's type byte.
    deflated: [OnceLock<Vec<u8>>; 2],
}

impl PartialEq for SharedMessage {
    fn eq(&self, other: &Self) -> bool {
        self.binary == other.binary && self.raw == other.raw
    }
}

impl Eq for SharedMessage {}

/// How a connection's socket compresses its messages (permessage-deflate, negotiated in its
/// handshake): with which window, and from which size on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    pub window_bits: u8,
    /// Messages smaller than this go uncompressed (RSV1 clear).
    pub threshold: usize,
}

impl Outbound {
    fn opcode_and_payload(&self) -> (Opcode, &Bytes) {
        match self {
            Outbound::Text(b) | Outbound::Control(b) => (Opcode::Text, b),
            Outbound::Binary(b) => (Opcode::Binary, b),
            Outbound::Ping(b) => (Opcode::Ping, b),
            Outbound::Pong(b) => (Opcode::Pong, b),
            Outbound::Shared(message) if message.binary => (Opcode::Binary, &message.raw),
            Outbound::Shared(message) => (Opcode::Text, &message.raw),
        }
    }

    /// The payload's size if this is a message (what the message counters count).
    pub fn data_len(&self) -> Option<usize> {
        match self {
            Outbound::Text(b) | Outbound::Binary(b) => Some(b.len()),
            Outbound::Shared(message) => Some(message.raw.len()),
            Outbound::Ping(_) | Outbound::Pong(_) | Outbound::Control(_) => None,
        }
    }

    /// The same message as one of a fan-out (see [`SharedMessage`]); other frames as they
    /// are.
    pub fn shared(self) -> Outbound {
        let (binary, raw) = match self {
            Outbound::Text(raw) => (false, raw),
            Outbound::Binary(raw) => (true, raw),
            other => return other,
        };
        Outbound::Shared(Arc::new(SharedMessage {
            binary,
            raw,
            deflated: [OnceLock::new(), OnceLock::new()],
        }))
    }

    /// The message compressed with `window_bits` (with a session's type byte in front when
    /// `session`): made once for all members of a fan-out with the usual window, else now.
    fn deflated(&self, session: bool, window_bits: u8) -> Cow<'_, [u8]> {
        let compress = |payload: &[u8]| {
            if session {
                deflate(&[&[MESSAGE], payload], window_bits)
            } else {
                deflate(&[payload], window_bits)
            }
        };
        match self {
            Outbound::Shared(message) if window_bits == 15 => Cow::Borrowed(
                message.deflated[usize::from(session)].get_or_init(|| compress(&message.raw)),
            ),
            other => Cow::Owned(compress(other.opcode_and_payload().1)),
        }
    }

    fn queued_bytes(&self) -> usize {
        self.opcode_and_payload().1.len()
    }
}

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The connection is closing or gone; nothing may be sent to it any more.
    #[error("the connection is closing")]
    Closing,
    /// The bound in bytes would be exceeded.
    #[error("the connection's outbound queue is full")]
    Full,
}

/// An acknowledgement or resume that does not fit what was sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResumeError {
    #[error("acknowledges {received} messages, but {sent} were sent")]
    BeyondSent { received: u64, sent: u64 },
    #[error("received only {received} messages, but those up to {acknowledged} were acknowledged")]
    Behind { received: u64, acknowledged: u64 },
    #[error("not a detached session")]
    NotDetached,
}

/// A session's messages committed and not yet acknowledged.
#[derive(Debug)]
struct Retained {
    /// Numbered from `first`, in the order they were committed.
    messages: VecDeque<Outbound>,
    first: u64,
    /// Payload bytes in `messages`.
    bytes: usize,
    /// Most payload bytes the session may hold, queued and kept together.
    limit: usize,
}

impl Retained {
    /// How many messages were committed in all.
    fn sent(&self) -> u64 {
        self.first - 1 + self.messages.len() as u64
    }

    /// Drops what a client that has received `received` messages in all no longer needs;
    /// returns the payload bytes released. An acknowledgement older than one already seen
    /// changes nothing.
    fn acknowledge(&mut self, received: u64) -> Result<usize, ResumeError> {
        let sent = self.sent();
        if received > sent {
            return Err(ResumeError::BeyondSent { received, sent });
        }
        let mut freed = 0;
        while self.first <= received {
            let Some(message) = self.messages.pop_front() else {
                break;
            };
            freed += message.queued_bytes();
            self.first += 1;
        }
        self.bytes -= freed;
        Ok(freed)
    }
}

/// How a frame is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Push {
    /// When the queue is full, drop the oldest queued frames to make room instead of refusing.
    pub drop_oldest: bool,
    /// Write the frame straight to the socket when nothing is queued or pending (fan-out).
    pub direct: bool,
}

/// Where a flush left things.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued has been written; more may come.
    All,
    /// The socket took only part; wait for [`Outgoing::poll_progress`] and flush again.
    Blocked,
    /// Everything the connection will ever write has been written (its close frame, if any).
    Done,
    /// The socket failed; nothing more will be written.
    Failed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    frames: VecDeque<Outbound>,
    /// Payload bytes in `frames`.
    bytes: usize,
    /// The socket; set when the session starts, released when it has drained.
    socket: Option<OwnedWriteHalf>,
    /// Encoded bytes committed to the socket, not yet taken by it, from `written` on.
    pending: Vec<u8>,
    written: usize,
    /// A write failed: the socket is gone.
    failed: bool,
    /// A resumable session's kept messages; `None` for a plain connection.
    retained: Option<Box<Retained>>,
    /// permessage-deflate as negotiated with the current socket.
    compression: Option<Compression>,
}

impl State {
    fn has_pending(&self) -> bool {
        self.written < self.pending.len()
    }

    /// Encodes every queued frame behind what is pending (keeping a session's messages).
    fn commit_queued(&mut self) {
        for frame in self.frames.drain(..) {
            commit(
                &mut self.pending,
                self.retained.as_deref_mut(),
                self.compression,
                frame,
            );
        }
        self.bytes = 0;
    }

    /// Starts the pending buffer afresh when it holds nothing unwritten.
    fn reset_pending_if_written(&mut self) {
        if !self.has_pending() {
            self.pending.clear();
            self.written = 0;
        }
    }
}

/// Encodes one frame into `pending`; a session's message gets its type byte and is kept.
fn commit(
    pending: &mut Vec<u8>,
    retained: Option<&mut Retained>,
    compression: Option<Compression>,
    frame: Outbound,
) {
    let (opcode, payload) = frame.opcode_and_payload();
    if frame.data_len().is_none() {
        write_frame(pending, opcode, payload);
        return;
    }
    write_message(pending, &frame, retained.is_some(), compression);
    if let Some(retained) = retained {
        retained.bytes += payload.len();
        retained.messages.push_back(frame);
    }
}

/// Appends a message's frame: compressed (RSV1) when the socket negotiated it and the message
/// is large enough, and with a session's type byte.
fn write_message(
    pending: &mut Vec<u8>,
    message: &Outbound,
    session: bool,
    compression: Option<Compression>,
) {
    let (opcode, payload) = message.opcode_and_payload();
    match compression.filter(|c| payload.len() >= c.threshold) {
        Some(compression) => {
            let body = message.deflated(session, compression.window_bits);
            pending.extend_from_slice(ServerHeader::with_rsv1(opcode, body.len(), true).as_bytes());
            pending.extend_from_slice(&body);
        }
        None if session => {
            pending.extend_from_slice(ServerHeader::new(opcode, payload.len() + 1).as_bytes());
            pending.push(MESSAGE);
            pending.extend_from_slice(payload);
        }
        None => write_frame(pending, opcode, payload),
    }
}

/// The outgoing side of one connection (see the module's documentation).
#[derive(Debug)]
pub struct Outgoing {
    state: Mutex<State>,
    /// The phase's kind, for questions asked on every message without the lock. Written only
    /// under the lock.
    kind: AtomicU8,
    /// The session, waiting for frames to write or for a close to start. There is one waiter,
    /// so an atomic waker suffices and neither side takes a lock to wait or to wake.
    wake: AtomicWaker,
    max_bytes: usize,
}

impl Outgoing {
    /// An open connection's outgoing side, bounded to `max_bytes` of queued payload.
    pub fn new(max_bytes: usize) -> Self {
        Self::in_phase(Phase::Open, max_bytes, None)
    }

    /// The outgoing side of a resumable session, which may hold at most `retention` payload
    /// bytes queued and unacknowledged together.
    pub fn for_session(max_bytes: usize, retention: usize) -> Self {
        let retained = Retained {
            messages: VecDeque::new(),
            first: 1,
            bytes: 0,
            limit: retention,
        };
        Self::in_phase(Phase::Open, max_bytes, Some(Box::new(retained)))
    }

    /// The outgoing side of a session taken over from another node: detached (its task
    /// resumes it on the socket that claimed it), numbering its messages from `first`.
    pub fn taken_over(max_bytes: usize, retention: usize, first: u64) -> Self {
        let retained = Retained {
            messages: VecDeque::new(),
            first,
            bytes: 0,
            limit: retention,
        };
        let phase = Phase::Detached {
            since: Instant::now(),
        };
        Self::in_phase(phase, max_bytes, Some(Box::new(retained)))
    }

    /// The outgoing side of a connection that has already ended (one closed on behalf of
    /// another node, which this host never held): nothing can be sent to it.
    pub fn ended() -> Self {
        Self::in_phase(Phase::Ended { by_host: None }, 0, None)
    }

    fn in_phase(phase: Phase, max_bytes: usize, retained: Option<Box<Retained>>) -> Self {
        Self {
            kind: AtomicU8::new(phase.kind() as u8),
            state: Mutex::new(State {
                phase,
                frames: VecDeque::new(),
                bytes: 0,
                socket: None,
                pending: Vec::new(),
                written: 0,
                failed: false,
                retained,
                compression: None,
            }),
            wake: AtomicWaker::new(),
            max_bytes,
        }
    }

    /// The bound on queued payload bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The compression negotiated with the current socket, if any.
    pub fn compression(&self) -> Option<Compression> {
        self.state.lock().compression
    }

    /// The connection's phase, without the lock.
    pub fn kind(&self) -> PhaseKind {
        PhaseKind::from_u8(self.kind.load(Ordering::Acquire))
    }

    /// The connection's phase in full.
    pub fn phase(&self) -> Phase {
        self.state.lock().phase.clone()
    }

    fn set_phase(&self, state: &mut MutexGuard<'_, State>, change: impl FnOnce(&mut Phase)) {
        change(&mut state.phase);
        self.kind.store(state.phase.kind() as u8, Ordering::Release);
    }

    /// Gives the connection its socket once the upgrade completed, with the compression
    /// negotiated in its handshake.
    pub fn attach(&self, socket: OwnedWriteHalf, compression: Option<Compression>) {
        let mut state = self.state.lock();
        if state.phase.kind() != PhaseKind::Ended {
            state.socket = Some(socket);
            state.compression = compression;
        }
        drop(state);
        self.wake.wake();
    }

    /// Queues a frame (see [`Push`]); returns how many frames were dropped to make room.
    pub fn push(&self, mut frame: Outbound, how: Push) -> Result<usize, QueueError> {
        let mut state = self.state.lock();
        if !state.phase.kind().accepts_frames() || (state.failed && state.retained.is_none()) {
            return Err(QueueError::Closing);
        }
        let size = frame.queued_bytes();
        if let Some(retained) = state.retained.as_deref() {
            // A session never drops a message: it would leave a hole in what its client gets.
            // Checked before a direct write too, which keeps what it writes.
            let held = state.bytes + retained.bytes;
            if held > 0 && held + size > retained.limit {
                return Err(QueueError::Full);
            }
        }
        if how.direct && state.frames.is_empty() && !state.has_pending() && !state.failed {
            let session = state.retained.is_some();
            match write_directly(state.socket.as_ref(), frame, session, state.compression) {
                Direct::Written(frame) => {
                    if let Some(retained) = state.retained.as_deref_mut() {
                        commit_kept(retained, frame);
                    }
                    return Ok(0);
                }
                Direct::NotWritten(unwritten) => frame = unwritten,
                Direct::Partly(frame, rest) => {
                    // The rest is committed like a flush's pending bytes: the session waits
                    // for the socket and finishes it before anything else.
                    state.pending.clear();
                    state.written = 0;
                    state.pending.extend_from_slice(&rest);
                    if let Some(retained) = state.retained.as_deref_mut() {
                        commit_kept(retained, frame);
                    }
                    drop(state);
                    self.wake.wake();
                    return Ok(0);
                }
            }
        }
        let mut dropped = 0;
        // An empty queue always takes one frame, so a single message up to the message size
        // limit can be sent even when the bound is smaller than that.
        while !state.frames.is_empty() && state.bytes + size > self.max_bytes {
            if !how.drop_oldest || state.retained.is_some() {
                return Err(QueueError::Full);
            }
            if let Some(oldest) = state.frames.pop_front() {
                state.bytes -= oldest.queued_bytes();
                dropped += 1;
            }
        }
        state.bytes += size;
        state.frames.push_back(frame);
        drop(state);
        self.wake.wake();
        Ok(dropped)
    }

    /// Starts a close: commits a close frame with `code` and `reason` behind everything
    /// queued, or, with `skip_queued` (for a slow consumer, whose backlog it would wait
    /// behind), behind only what is already pending. `by_host` says the host started it (else
    /// it answers the peer's). The bound does not apply: a connection can always say goodbye.
    /// Returns false if a close had already started (the first one wins) or the connection
    /// has ended.
    pub fn start_close(&self, code: u16, reason: &str, by_host: bool, skip_queued: bool) -> bool {
        let mut state = self.state.lock();
        let by_host = by_host.then(|| HostClose {
            code,
            reason: reason.into(),
        });
        let mut started = false;
        self.set_phase(&mut state, |phase| {
            started = phase.start_close(by_host, Instant::now());
        });
        if !started {
            return false;
        }
        if state.phase.kind() == PhaseKind::Ended {
            // A detached session closed by the host: there is no socket to say goodbye on.
            drop(state);
            self.wake.wake();
            return true;
        }
        state.reset_pending_if_written();
        if skip_queued {
            state.frames.clear();
            state.bytes = 0;
        } else {
            state.commit_queued();
        }
        write_close_frame(&mut state.pending, code, reason);
        drop(state);
        self.wake.wake();
        true
    }

    /// Says goodbye on the current socket only, without closing the connection: a session
    /// whose socket is going away (the peer's 1001, or a resume that took over) stays open.
    pub fn close_socket(&self, code: u16, reason: &str) {
        let mut state = self.state.lock();
        if state.socket.is_some() && !state.failed {
            state.reset_pending_if_written();
            write_close_frame(&mut state.pending, code, reason);
        }
    }

    /// A session's socket is lost: the connection detaches, keeping what it queued and kept
    /// for a resume. Whatever the old socket had not taken is dropped: the kept messages are
    /// written again on resume, and the rest was for that socket alone. False unless open.
    pub fn detach(&self) -> bool {
        let mut state = self.state.lock();
        let mut detached = false;
        self.set_phase(&mut state, |phase| detached = phase.detach(Instant::now()));
        if !detached {
            return false;
        }
        let socket = state.socket.take();
        state.pending = Vec::new();
        state.written = 0;
        state.failed = false;
        // Pings, pongs and control messages still queued were for the lost socket (an
        // acknowledgement among them would come after the resume's own, counting backwards).
        state.frames.retain(|frame| frame.data_len().is_some());
        state.bytes = state.frames.iter().map(Outbound::queued_bytes).sum();
        drop(state);
        drop(socket);
        self.wake.wake();
        true
    }

    /// A detached session has a socket again. The client has received `received` of the
    /// host's messages: what it acknowledges is dropped, `hello` (the resumed message) goes
    /// first, then every kept message after `received`, in order, then anything queued.
    /// Returns how many messages are written again and the payload bytes released; on
    /// error, the socket back, to be told why.
    #[allow(clippy::result_large_err)]
    pub fn resume(
        &self,
        socket: OwnedWriteHalf,
        compression: Option<Compression>,
        received: u64,
        hello: Outbound,
    ) -> Result<(usize, usize), (ResumeError, OwnedWriteHalf)> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let retained = match state.retained.as_deref_mut() {
            Some(retained) if state.phase.kind() == PhaseKind::Detached => retained,
            _ => return Err((ResumeError::NotDetached, socket)),
        };
        if received + 1 < retained.first {
            let behind = ResumeError::Behind {
                received,
                acknowledged: retained.first - 1,
            };
            return Err((behind, socket));
        }
        let freed = match retained.acknowledge(received) {
            Ok(freed) => freed,
            Err(error) => return Err((error, socket)),
        };
        state.pending.clear();
        state.written = 0;
        commit(&mut state.pending, None, None, hello);
        for message in &retained.messages {
            write_message(&mut state.pending, message, true, compression);
        }
        let replayed = retained.messages.len();
        state.socket = Some(socket);
        state.compression = compression;
        state.phase.resume();
        self.kind.store(state.phase.kind() as u8, Ordering::Release);
        self.wake.wake();
        Ok((replayed, freed))
    }

    /// The client has received `received` of the host's messages in all; returns the payload
    /// bytes no longer kept. A plain connection has nothing to acknowledge.
    pub fn acknowledge(&self, received: u64) -> Result<usize, ResumeError> {
        match self.state.lock().retained.as_deref_mut() {
            Some(retained) => retained.acknowledge(received),
            None => Ok(0),
        }
    }

    /// Payload bytes a session holds for its client (queued and kept); 0 for a plain
    /// connection.
    pub fn held_bytes(&self) -> usize {
        let state = self.state.lock();
        state
            .retained
            .as_deref()
            .map_or(0, |retained| retained.bytes + state.bytes)
    }

    /// The connection is over: nothing more is accepted, and what is committed drains.
    /// Returns the payload bytes a session held for its client, now released.
    pub fn end(&self) -> usize {
        let mut state = self.state.lock();
        self.set_phase(&mut state, Phase::end);
        let queued = state.bytes;
        let held = match state.retained.as_deref_mut() {
            Some(retained) => {
                retained.messages = VecDeque::new();
                std::mem::take(&mut retained.bytes) + queued
            }
            None => 0,
        };
        drop(state);
        self.wake.wake();
        held
    }

    /// Wakes the session task, to look at its connection again (a resume handed it a socket).
    pub fn nudge(&self) {
        self.wake.wake();
    }

    /// Releases the socket once the session has drained what it could; closing it tells the
    /// peer the connection is over.
    pub fn release(&self) {
        let socket = self.state.lock().socket.take();
        // Dropped outside the lock: shutting the socket down is a system call.
        drop(socket);
    }

    /// Writes what is committed and queued, as far as the socket takes it without waiting.
    pub fn flush(&self) -> Flushed {
        let mut state = self.state.lock();
        loop {
            if state.failed {
                return Flushed::Failed;
            }
            if state.has_pending() {
                let result = match &state.socket {
                    Some(socket) => socket.try_write(&state.pending[state.written..]),
                    // Never attached (the upgrade failed): nothing can be written any more.
                    None if state.phase.kind() == PhaseKind::Ended => return Flushed::Failed,
                    // Not attached yet: the bytes wait for the socket.
                    None => return Flushed::Blocked,
                };
                match result {
                    Ok(0) => return self.fail(state),
                    Ok(n) => state.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                    Err(_) => return self.fail(state),
                }
                continue;
            }
            state.pending.clear();
            state.written = 0;
            if state.pending.capacity() > KEEP_CAPACITY {
                state.pending = Vec::new();
            }
            if state.frames.is_empty() {
                return match state.phase.kind() {
                    PhaseKind::Open | PhaseKind::Detached => Flushed::All,
                    PhaseKind::Closing | PhaseKind::Ended => Flushed::Done,
                };
            }
            if state.socket.is_none() && state.phase.kind() != PhaseKind::Ended {
                // Nothing to write to (a detached session, or before the socket is attached):
                // the frames wait in the queue, which is what a resume or an attach starts from.
                return Flushed::Blocked;
            }
            state.commit_queued();
        }
    }

    /// The peer is gone: nothing more is written or accepted; the session's reader meets the
    /// broken socket and ends the connection.
    fn fail(&self, mut state: MutexGuard<'_, State>) -> Flushed {
        state.failed = true;
        state.pending = Vec::new();
        state.written = 0;
        // A session keeps its queue and kept messages for a resume on another socket.
        if state.retained.is_none() {
            state.frames.clear();
            state.bytes = 0;
            self.set_phase(&mut state, Phase::end);
        }
        Flushed::Failed
    }

    /// Ready when the session has something to do here: frames to write, committed bytes the
    /// socket can now take, or a phase change. Only the latest caller's waker is woken.
    pub fn poll_progress(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered first, so a push or close after the checks below wakes this caller.
        self.wake.register(cx.waker());
        let state = self.state.lock();
        if state.failed {
            // Nothing to do until the session meets the broken socket on its reading side.
            return Poll::Pending;
        }
        if !state.frames.is_empty() && state.socket.is_some() {
            return Poll::Ready(());
        }
        if state.has_pending() {
            return match &state.socket {
                Some(socket) => {
                    let socket: &TcpStream = socket.as_ref();
                    socket.poll_write_ready(cx).map(|_| ())
                }
                None => Poll::Pending,
            };
        }
        Poll::Pending
    }

    /// Waits until the socket can take more of what is committed.
    pub async fn writable(&self) {
        std::future::poll_fn(|cx| self.poll_progress(cx)).await
    }
}

/// What a direct write did with a frame.
enum Direct {
    /// All of it went out; the frame is given back for a session to keep.
    Written(Outbound),
    /// Nothing was written (no socket, the socket was full or failed, or not a data frame):
    /// the frame is queued as usual. A failure is left for the session to meet on its own.
    NotWritten(Outbound),
    /// The socket took the beginning of the frame: these bytes must follow before anything
    /// else.
    Partly(Outbound, Vec<u8>),
}

/// Keeps a session's message written directly, as a commit would have.
fn commit_kept(retained: &mut Retained, frame: Outbound) {
    retained.bytes += frame.queued_bytes();
    retained.messages.push_back(frame);
}

/// Writes a message (compressed and with a session's type byte as `write_message` would)
/// without waiting.
fn write_directly(
    socket: Option<&OwnedWriteHalf>,
    frame: Outbound,
    session: bool,
    compression: Option<Compression>,
) -> Direct {
    let Some(socket) = socket else {
        return Direct::NotWritten(frame);
    };
    let socket: &TcpStream = socket.as_ref();
    if frame.data_len().is_none() {
        return Direct::NotWritten(frame);
    }
    let (opcode, payload) = frame.opcode_and_payload();
    let compressed = compression
        .filter(|c| payload.len() >= c.threshold)
        .map(|c| frame.deflated(session, c.window_bits));
    let (type_byte, body): (&[u8], &[u8]) = match &compressed {
        Some(body) => (&[], body),
        None if session => (&[MESSAGE], payload),
        None => (&[], payload),
    };
    let header =
        ServerHeader::with_rsv1(opcode, type_byte.len() + body.len(), compressed.is_some());
    let mut head = [0u8; crate::protocol::MAX_SERVER_HEADER + 1];
    let used = header.as_bytes().len();
    head[..used].copy_from_slice(header.as_bytes());
    head[used..used + type_byte.len()].copy_from_slice(type_byte);
    let head = &head[..used + type_byte.len()];
    let total = head.len() + body.len();
    let written = if total <= SMALL_FRAME {
        // One contiguous write: cheaper for the kernel than a two-part one.
        let mut bytes = [0u8; SMALL_FRAME];
        bytes[..head.len()].copy_from_slice(head);
        bytes[head.len()..total].copy_from_slice(body);
        socket.try_write(&bytes[..total])
    } else {
        socket.try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
    }
    .unwrap_or(0);
    if written == total {
        return Direct::Written(frame);
    }
    if written == 0 {
        return Direct::NotWritten(frame);
    }
    let mut rest = Vec::with_capacity(total - written);
    rest.extend_from_slice(head.get(written..).unwrap_or_default());
    rest.extend_from_slice(&body[written.saturating_sub(head.len())..]);
    Direct::Partly(frame, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const QUEUE: Push = Push {
        drop_oldest: false,
        direct: false,
    };
    const DROP_OLDEST: Push = Push {
        drop_oldest: true,
        direct: false,
    };
    const FANOUT: Push = Push {
        drop_oldest: false,
        direct: true,
    };

    fn text(s: &'static str) -> Outbound {
        Outbound::Text(Bytes::from_static(s.as_bytes()))
    }

    /// An open connection's outgoing side attached to one end of a loopback TCP connection,
    /// and the other end.
    async fn attached(max_bytes: usize) -> (Outgoing, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let outgoing = Outgoing::new(max_bytes);
        outgoing.attach(write, None);
        (outgoing, client)
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        client.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    fn queued(outgoing: &Outgoing) -> Vec<Outbound> {
        outgoing.state.lock().frames.iter().cloned().collect()
    }

    #[test]
    fn refuses_frames_beyond_the_bound() {
        let outgoing = Outgoing::new(8);
        assert_eq!(outgoing.push(text("12345"), QUEUE), Ok(0));
        assert_eq!(outgoing.push(text("123"), QUEUE), Ok(0));
        assert_eq!(outgoing.push(text("1"), QUEUE), Err(QueueError::Full));
    }

    #[test]
    fn an_empty_queue_takes_one_large_frame() {
        let outgoing = Outgoing::new(4);
        assert_eq!(outgoing.push(text("larger than the bound"), QUEUE), Ok(0));
    }

    #[test]
    fn drop_oldest_makes_room() {
        let outgoing = Outgoing::new(8);
        outgoing.push(text("1234"), QUEUE).unwrap();
        outgoing.push(text("5678"), QUEUE).unwrap();
        assert_eq!(outgoing.push(text("abcd"), DROP_OLDEST), Ok(1));
        assert_eq!(queued(&outgoing), [text("5678"), text("abcd")]);
        assert_eq!(outgoing.push(text("x"), QUEUE), Err(QueueError::Full));
    }

    #[test]
    fn nothing_follows_a_close() {
        let outgoing = Outgoing::new(1024);
        assert!(outgoing.start_close(1000, "bye", true, false));
        assert!(!outgoing.start_close(1001, "again", true, false));
        assert_eq!(outgoing.push(text("late"), QUEUE), Err(QueueError::Closing));
        assert_eq!(outgoing.kind(), PhaseKind::Closing);
        assert_eq!(outgoing.phase().host_close().map(|c| c.code), Some(1000));
    }

    #[tokio::test]
    async fn frames_leave_in_order_and_the_close_frame_last() {
        let (outgoing, mut client) = attached(1024).await;
        outgoing.push(text("a"), QUEUE).unwrap();
        outgoing.push(text("b"), QUEUE).unwrap();
        assert!(outgoing.start_close(4000, "x", true, false));
        assert_eq!(outgoing.flush(), Flushed::Done);
        let bytes = read_exactly(&mut client, 3 + 3 + 5).await;
        assert_eq!(
            bytes,
            [0x81, 1, b'a', 0x81, 1, b'b', 0x88, 3, 0x0F, 0xA0, b'x']
        );
    }

    #[tokio::test]
    async fn a_close_for_a_slow_consumer_skips_the_queue() {
        let (outgoing, mut client) = attached(1024).await;
        outgoing.push(text("backlog"), QUEUE).unwrap();
        assert!(outgoing.start_close(1008, "", true, true));
        assert_eq!(outgoing.flush(), Flushed::Done);
        assert_eq!(read_exactly(&mut client, 4).await, [0x88, 2, 0x03, 0xF0]);
    }

    #[tokio::test]
    async fn a_fanout_frame_is_written_at_once_when_nothing_is_pending() {
        let (outgoing, mut client) = attached(1024).await;
        assert_eq!(outgoing.push(text("hi"), FANOUT), Ok(0));
        assert_eq!(read_exactly(&mut client, 4).await, [0x81, 2, b'h', b'i']);
        assert!(queued(&outgoing).is_empty(), "nothing was queued");
        assert_eq!(outgoing.flush(), Flushed::All);
    }

    #[tokio::test]
    async fn a_fanout_frame_waits_behind_frames_already_queued() {
        let (outgoing, mut client) = attached(1024).await;
        outgoing.push(text("first"), QUEUE).unwrap();
        outgoing.push(text("second"), FANOUT).unwrap();
        assert_eq!(queued(&outgoing), [text("first"), text("second")]);
        assert_eq!(outgoing.flush(), Flushed::All);
        let mut expected = vec![0x81, 5];
        expected.extend_from_slice(b"first");
        expected.extend_from_slice(&[0x81, 6]);
        expected.extend_from_slice(b"second");
        assert_eq!(read_exactly(&mut client, expected.len()).await, expected);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_finished_first_and_never_dropped() {
        let (outgoing, _client) = attached(1 << 20).await;
        // Far more than loopback socket buffers hold, with the peer not reading.
        let big = Bytes::from(vec![7u8; 32 << 20]);
        outgoing
            .push(
                Outbound::Binary(big.clone()),
                Push {
                    drop_oldest: true,
                    direct: true,
                },
            )
            .unwrap();
        let rest = {
            let state = outgoing.state.lock();
            state.pending[state.written..].to_vec()
        };
        assert!(!rest.is_empty() && rest.len() < big.len());
        assert!(
            rest.iter().all(|&b| b == 7),
            "the rest is payload, the header already written"
        );
        // Nothing may be written past it: a fan-out frame now queues.
        outgoing.push(text("a"), FANOUT).unwrap();
        assert_eq!(queued(&outgoing), [text("a")]);
        // Neither dropping the oldest nor a close that skips the queue may cut the frame.
        assert_eq!(outgoing.push(text("b"), DROP_OLDEST), Ok(0));
        assert!(outgoing.start_close(1008, "slow", true, true));
        let state = outgoing.state.lock();
        let pending = &state.pending[state.written..];
        assert_eq!(&pending[..rest.len()], &rest[..], "the rest is still first");
        assert_eq!(
            &pending[rest.len()..rest.len() + 2],
            [0x88, 6],
            "then the close"
        );
        assert_eq!(pending.len(), rest.len() + 8, "`a` and `b` were skipped");
    }

    #[tokio::test]
    async fn a_failed_socket_refuses_everything_after() {
        let (outgoing, client) = attached(1024).await;
        drop(client);
        // The first writes may still be taken by the kernel; keep writing until it fails.
        let mut failed = false;
        for _ in 0..100 {
            if outgoing.push(text("x"), QUEUE).is_err() {
                break;
            }
            if outgoing.flush() == Flushed::Failed {
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(failed, "writing to a closed peer fails");
        assert_eq!(outgoing.kind(), PhaseKind::Ended);
        assert_eq!(outgoing.push(text("late"), QUEUE), Err(QueueError::Closing));
    }

    /// A session's outgoing side attached to a loopback socket, and the client end.
    async fn session(retention: usize) -> (Outgoing, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let outgoing = Outgoing::for_session(1 << 20, retention);
        outgoing.attach(write, None);
        (outgoing, client)
    }

    async fn fresh_socket() -> (OwnedWriteHalf, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server.into_split().1, client)
    }

    #[tokio::test]
    async fn a_session_s_messages_carry_their_type_and_are_kept_until_acknowledged() {
        let (outgoing, mut client) = session(1024).await;
        outgoing.push(text("one"), QUEUE).unwrap();
        outgoing
            .push(Outbound::Control(Bytes::from_static(b"a1")), QUEUE)
            .unwrap();
        outgoing.push(text("two"), FANOUT).unwrap();
        assert_eq!(outgoing.flush(), Flushed::All);
        assert_eq!(
            read_exactly(&mut client, 6 + 4 + 6).await,
            [
                0x81, 4, b'm', b'o', b'n', b'e', 0x81, 2, b'a', b'1', 0x81, 4, b'm', b't', b'w',
                b'o'
            ]
        );
        assert_eq!(
            outgoing.held_bytes(),
            6,
            "both messages kept, not the control"
        );
        assert_eq!(outgoing.acknowledge(1), Ok(3));
        assert_eq!(outgoing.held_bytes(), 3);
        assert_eq!(
            outgoing.acknowledge(3),
            Err(ResumeError::BeyondSent {
                received: 3,
                sent: 2
            })
        );
        assert_eq!(
            outgoing.acknowledge(1),
            Ok(0),
            "an old acknowledgement changes nothing"
        );
    }

    #[tokio::test]
    async fn a_resume_writes_again_what_the_client_missed_then_what_was_queued() {
        let (outgoing, _lost) = session(1024).await;
        for message in ["1", "2", "3"] {
            outgoing
                .push(Outbound::Text(Bytes::from(message)), QUEUE)
                .unwrap();
        }
        outgoing.flush();
        assert!(outgoing.detach());
        assert_eq!(outgoing.kind(), PhaseKind::Detached);
        outgoing.push(text("4"), FANOUT).unwrap();
        assert_eq!(outgoing.flush(), Flushed::Blocked, "no socket to write to");

        let (socket, mut client) = fresh_socket().await;
        let hello = Outbound::Control(Bytes::from_static(b"r0"));
        let (replayed, freed) = outgoing
            .resume(socket, None, 1, hello)
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!((replayed, freed), (2, 1), "2 and 3 again; 1 was received");
        assert_eq!(outgoing.kind(), PhaseKind::Open);
        assert_eq!(outgoing.flush(), Flushed::All);
        let frames: Vec<u8> = [
            &[0x81, 2, b'r', b'0'][..],
            &[0x81, 2, b'm', b'2'],
            &[0x81, 2, b'm', b'3'],
            &[0x81, 2, b'm', b'4'],
        ]
        .concat();
        assert_eq!(read_exactly(&mut client, frames.len()).await, frames);
    }

    #[tokio::test]
    async fn control_frames_queued_for_a_lost_socket_are_not_written_after_a_resume() {
        let (outgoing, _lost) = session(1024).await;
        outgoing.push(text("1"), QUEUE).unwrap();
        outgoing
            .push(Outbound::Control(Bytes::from_static(b"a5")), QUEUE)
            .unwrap();
        outgoing.push(Outbound::Ping(Bytes::new()), QUEUE).unwrap();
        // Never flushed: the socket was lost with all of it still queued.
        assert!(outgoing.detach());
        let (socket, mut client) = fresh_socket().await;
        let hello = Outbound::Control(Bytes::from_static(b"r9"));
        outgoing
            .resume(socket, None, 0, hello)
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!(outgoing.flush(), Flushed::All);
        let frames: Vec<u8> = [&[0x81, 2, b'r', b'9'][..], &[0x81, 2, b'm', b'1']].concat();
        assert_eq!(read_exactly(&mut client, frames.len()).await, frames);
        assert!(
            queued(&outgoing).is_empty(),
            "the old ack and ping are gone"
        );
    }

    #[tokio::test]
    async fn a_resume_that_does_not_fit_what_was_sent_is_refused() {
        let (outgoing, _lost) = session(1024).await;
        outgoing.push(text("a"), QUEUE).unwrap();
        outgoing.push(text("b"), QUEUE).unwrap();
        outgoing.flush();
        outgoing.acknowledge(1).unwrap();
        outgoing.detach();
        let hello = || Outbound::Control(Bytes::from_static(b"r0"));
        let (socket, _client) = fresh_socket().await;
        let (error, socket) = outgoing.resume(socket, None, 3, hello()).unwrap_err();
        assert_eq!(
            error,
            ResumeError::BeyondSent {
                received: 3,
                sent: 2
            }
        );
        let (error, _) = outgoing.resume(socket, None, 0, hello()).unwrap_err();
        assert_eq!(
            error,
            ResumeError::Behind {
                received: 0,
                acknowledged: 1
            }
        );
        assert_eq!(outgoing.kind(), PhaseKind::Detached, "still waiting");
    }

    #[tokio::test]
    async fn a_direct_write_to_a_session_keeps_to_the_retention_limit() {
        // Found by the session_retention fuzz target: a fan-out's direct write was kept
        // without the limit being checked, so a client that read but never acknowledged
        // made the session hold without bound.
        let (outgoing, _client) = session(255).await;
        let message = |len| Outbound::Binary(Bytes::from(vec![b'.'; len]));
        assert_eq!(outgoing.push(message(248), FANOUT), Ok(0));
        assert_eq!(outgoing.push(message(199), FANOUT), Err(QueueError::Full));
        assert_eq!(outgoing.held_bytes(), 248);
    }

    #[tokio::test]
    async fn a_session_refuses_what_it_cannot_hold_and_never_drops() {
        let (outgoing, _client) = session(8).await;
        outgoing.push(text("12345"), QUEUE).unwrap();
        outgoing.flush();
        outgoing.detach();
        outgoing.push(text("678"), DROP_OLDEST).unwrap();
        assert_eq!(outgoing.push(text("9"), DROP_OLDEST), Err(QueueError::Full));
        assert_eq!(outgoing.held_bytes(), 8);
        // Closed by the host while detached: there is no socket to say goodbye on.
        assert!(outgoing.start_close(1008, "full", true, true));
        assert_eq!(outgoing.kind(), PhaseKind::Ended);
        assert_eq!(outgoing.end(), 8, "everything held is released");
    }
}
