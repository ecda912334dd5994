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

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

use super::lifecycle::{HostClose, Phase, PhaseKind};
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
}

impl Outbound {
    fn opcode_and_payload(&self) -> (Opcode, &Bytes) {
        match self {
            Outbound::Text(b) => (Opcode::Text, b),
            Outbound::Binary(b) => (Opcode::Binary, b),
            Outbound::Ping(b) => (Opcode::Ping, b),
            Outbound::Pong(b) => (Opcode::Pong, b),
        }
    }

    /// The payload's size if this is a data frame (what the message counters count).
    pub fn data_len(&self) -> Option<usize> {
        match self {
            Outbound::Text(b) | Outbound::Binary(b) => Some(b.len()),
            Outbound::Ping(_) | Outbound::Pong(_) => None,
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
}

impl State {
    fn has_pending(&self) -> bool {
        self.written < self.pending.len()
    }

    /// Encodes every queued frame behind what is pending.
    fn commit_queued(&mut self) {
        for frame in self.frames.drain(..) {
            let (opcode, payload) = frame.opcode_and_payload();
            write_frame(&mut self.pending, opcode, payload);
        }
        self.bytes = 0;
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
        Self::in_phase(Phase::Open, max_bytes)
    }

    /// The outgoing side of a connection that has already ended (one closed on behalf of
    /// another node, which this host never held): nothing can be sent to it.
    pub fn ended() -> Self {
        Self::in_phase(Phase::Ended { by_host: None }, 0)
    }

    fn in_phase(phase: Phase, max_bytes: usize) -> Self {
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
            }),
            wake: AtomicWaker::new(),
            max_bytes,
        }
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

    /// Gives the connection its socket once the upgrade completed.
    pub fn attach(&self, socket: OwnedWriteHalf) {
        let mut state = self.state.lock();
        if state.phase.kind() != PhaseKind::Ended {
            state.socket = Some(socket);
        }
        drop(state);
        self.wake.wake();
    }

    /// Queues a frame (see [`Push`]); returns how many frames were dropped to make room.
    pub fn push(&self, mut frame: Outbound, how: Push) -> Result<usize, QueueError> {
        let mut state = self.state.lock();
        if !state.phase.kind().accepts_frames() || state.failed {
            return Err(QueueError::Closing);
        }
        if how.direct && state.frames.is_empty() && !state.has_pending() {
            match write_directly(state.socket.as_ref(), frame) {
                Direct::Written => return Ok(0),
                Direct::NotWritten(unwritten) => frame = unwritten,
                Direct::Partly(rest) => {
                    // The rest is committed like a flush's pending bytes: the session waits
                    // for the socket and finishes it before anything else.
                    state.pending.clear();
                    state.written = 0;
                    state.pending.extend_from_slice(&rest);
                    drop(state);
                    self.wake.wake();
                    return Ok(0);
                }
            }
        }
        let size = frame.queued_bytes();
        let mut dropped = 0;
        // An empty queue always takes one frame, so a single message up to the message size
        // limit can be sent even when the bound is smaller than that.
        while !state.frames.is_empty() && state.bytes + size > self.max_bytes {
            if !how.drop_oldest {
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
        if skip_queued {
            state.frames.clear();
            state.bytes = 0;
        } else {
            state.commit_queued();
        }
        if !state.has_pending() {
            state.pending.clear();
            state.written = 0;
        }
        write_close_frame(&mut state.pending, code, reason);
        drop(state);
        self.wake.wake();
        true
    }

    /// The session is over: nothing more is accepted, and what is committed drains.
    pub fn end(&self) {
        let mut state = self.state.lock();
        self.set_phase(&mut state, Phase::end);
        drop(state);
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
                return if state.phase.kind() == PhaseKind::Open {
                    Flushed::All
                } else {
                    Flushed::Done
                };
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
        state.frames.clear();
        state.bytes = 0;
        self.set_phase(&mut state, Phase::end);
        Flushed::Failed
    }

    /// Ready when the session has something to do here: frames to write, committed bytes the
    /// socket can now take, or a phase change. Only the latest caller's waker is woken.
    pub fn poll_progress(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered first, so a push or close after the checks below wakes this caller.
        self.wake.register(cx.waker());
        let state = self.state.lock();
        if state.failed || !state.frames.is_empty() {
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
    Written,
    /// Nothing was written (no socket, the socket was full or failed, or not a data frame):
    /// the frame is queued as usual. A failure is left for the session to meet on its own.
    NotWritten(Outbound),
    /// The socket took the beginning: these bytes must follow before anything else.
    Partly(Vec<u8>),
}

fn write_directly(socket: Option<&OwnedWriteHalf>, frame: Outbound) -> Direct {
    let Some(socket) = socket else {
        return Direct::NotWritten(frame);
    };
    let socket: &TcpStream = socket.as_ref();
    let (opcode, payload) = frame.opcode_and_payload();
    if opcode.is_control() {
        return Direct::NotWritten(frame);
    }
    let header = ServerHeader::new(opcode, payload.len());
    let head = header.as_bytes();
    let total = head.len() + payload.len();
    let written = if total <= SMALL_FRAME {
        // One contiguous write: cheaper for the kernel than a two-part one.
        let mut bytes = [0u8; SMALL_FRAME];
        bytes[..head.len()].copy_from_slice(head);
        bytes[head.len()..total].copy_from_slice(payload);
        socket.try_write(&bytes[..total])
    } else {
        socket.try_write_vectored(&[IoSlice::new(head), IoSlice::new(payload)])
    }
    .unwrap_or(0);
    if written == total {
        return Direct::Written;
    }
    if written == 0 {
        return Direct::NotWritten(frame);
    }
    let mut rest = Vec::with_capacity(total - written);
    rest.extend_from_slice(head.get(written..).unwrap_or_default());
    rest.extend_from_slice(&payload[written.saturating_sub(head.len())..]);
    Direct::Partly(rest)
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
        outgoing.attach(write);
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
}
