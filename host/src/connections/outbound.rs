//! The outbound queue of one connection.
//!
//! Everything sent to a connection — by its own events, by other connections' events, by group
//! publishes, or as a control reply — goes through this queue, so frames leave in the order they
//! were sent. The queue is bounded in bytes: a client that stops reading cannot make the host
//! hold more than the bound for it. The connection drains the whole queue at once and writes it
//! with one syscall, so bursts (a pipelining client, many sends of one event) cost one write.
//!
//! A fan-out (a group publish) reaches thousands of connections at once. Queuing it would wake
//! every member's task only for each to make one write; instead, a member whose writer has
//! nothing pending gets the frame written straight to its socket by the publisher, under the
//! queue's lock, which the writer also takes before it writes anything. What the socket does
//! not take is queued (already encoded) and the writer finishes it, so the order holds.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use super::wire;

/// Frames up to this size (header included) are copied into one buffer for a direct write.
const SMALL_FRAME: usize = 512;

/// One frame waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The last frame a connection ever writes.
    Close {
        code: u16,
        reason: Bytes,
    },
    /// The rest of a frame whose beginning was written directly: written as it is.
    Encoded(Bytes),
}

impl Outbound {
    fn queued_bytes(&self) -> usize {
        match self {
            Outbound::Text(b)
            | Outbound::Binary(b)
            | Outbound::Ping(b)
            | Outbound::Pong(b)
            | Outbound::Encoded(b) => b.len(),
            Outbound::Close { reason, .. } => reason.len() + 2,
        }
    }

    /// The header and payload of a data frame, as written to the wire.
    fn data_frame(&self) -> Option<(([u8; wire::MAX_HEAD], usize), &Bytes)> {
        match self {
            Outbound::Text(b) => Some((wire::head(wire::OP_TEXT, b.len()), b)),
            Outbound::Binary(b) => Some((wire::head(wire::OP_BINARY, b.len()), b)),
            _ => None,
        }
    }
}

/// Writes a data frame to `socket` without waiting. Returns `None` when all of it was
/// written; else what is left to write: the frame itself if nothing was (the socket was full,
/// failed, or it is not a data frame), or the rest of its bytes. A failure is left for the
/// writer to meet on its own.
fn write_directly(socket: &TcpStream, frame: Outbound) -> Option<Outbound> {
    let Some(((head, used), payload)) = frame.data_frame() else {
        return Some(frame);
    };
    let total = used + payload.len();
    let written = if total <= SMALL_FRAME {
        // One contiguous write: cheaper for the kernel than a two-part one.
        let mut bytes = [0u8; SMALL_FRAME];
        bytes[..used].copy_from_slice(&head[..used]);
        bytes[used..total].copy_from_slice(payload);
        socket.try_write(&bytes[..total])
    } else {
        socket.try_write_vectored(&[IoSlice::new(&head[..used]), IoSlice::new(payload)])
    }
    .unwrap_or(0);
    if written == total {
        return None;
    }
    if written == 0 {
        return Some(frame);
    }
    let mut rest = Vec::with_capacity(total - written);
    rest.extend_from_slice(head[..used].get(written..).unwrap_or_default());
    rest.extend_from_slice(&payload[written.saturating_sub(used)..]);
    Some(Outbound::Encoded(Bytes::from(rest)))
}

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// A close frame is already queued or written; nothing may follow it.
    #[error("the connection is closing")]
    Closing,
    /// The bound in bytes would be exceeded.
    #[error("the connection's outbound queue is full")]
    Full,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Outbound>,
    bytes: usize,
    /// Set by the reader when the connection is gone; the writer stops.
    finished: bool,
    /// The socket, for direct writes; set when the session starts, dropped when it finishes.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// The writer has written everything it took and holds nothing: a frame may be written
    /// directly when nothing is queued either. Cleared when the writer takes frames.
    writer_idle: bool,
}

/// A bounded, ordered queue of frames for one connection.
#[derive(Debug)]
pub struct OutboundQueue {
    state: Mutex<State>,
    /// Set once a close frame has been queued. An atomic beside the lock because the session
    /// asks several times per message, and the answer never needs the queue itself.
    closing: AtomicBool,
    /// The writer, waiting for frames. There is one writer, so an atomic waker suffices and
    /// neither side takes a lock to wait or to wake.
    ready: AtomicWaker,
    max_bytes: usize,
}

impl OutboundQueue {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            closing: AtomicBool::new(false),
            ready: AtomicWaker::new(),
            max_bytes,
        }
    }

    /// Queues a data or control frame; a full queue refuses it.
    pub fn push(&self, frame: Outbound) -> Result<(), QueueError> {
        self.push_with(frame, false, false).map(|_| ())
    }

    /// Gives the queue the connection's socket, for direct writes; the writer starts idle.
    pub fn attach(&self, socket: Arc<OwnedWriteHalf>) {
        let mut state = self.state.lock();
        if !state.finished {
            state.socket = Some(socket);
            state.writer_idle = true;
        }
    }

    /// Sends one frame of a fan-out: written to the socket at once when nothing is pending
    /// for it (see the module's documentation), else queued like [`push`](Self::push), with
    /// the oldest frames dropped to make room if `drop_oldest`.
    pub fn push_fanout(&self, frame: Outbound, drop_oldest: bool) -> Result<usize, QueueError> {
        self.push_with(frame, drop_oldest, true)
    }

    /// Queues a frame, dropping the oldest data frames to make room if the queue is full.
    /// Returns how many frames were dropped.
    pub fn push_dropping_oldest(&self, frame: Outbound) -> Result<usize, QueueError> {
        self.push_with(frame, true, false)
    }

    /// Queues `frame`, or with `direct` first tries to write it to the socket while the writer
    /// holds nothing; returns how many frames were dropped to make room.
    fn push_with(
        &self,
        mut frame: Outbound,
        drop_oldest: bool,
        direct: bool,
    ) -> Result<usize, QueueError> {
        let mut dropped = 0;
        {
            let mut state = self.state.lock();
            if self.closing.load(Ordering::Relaxed) || state.finished {
                return Err(QueueError::Closing);
            }
            if direct
                && state.writer_idle
                && state.frames.is_empty()
                && let Some(socket) = &state.socket
            {
                match write_directly((**socket).as_ref(), frame) {
                    None => return Ok(0),
                    // Nothing written, or the rest of the frame: queued (the queue is empty,
                    // so it always fits) for the writer to finish.
                    Some(rest) => frame = rest,
                }
            }
            let size = frame.queued_bytes();
            // An empty queue always takes one frame, so a single message up to the message
            // size limit can be sent even when the queue bound is smaller than that.
            // The rest of a frame begun by a direct write cannot be dropped: the peer would
            // get half a frame.
            let keep = usize::from(matches!(state.frames.front(), Some(Outbound::Encoded(_))));
            while state.frames.len() > keep && state.bytes + size > self.max_bytes {
                if !drop_oldest {
                    return Err(QueueError::Full);
                }
                if let Some(oldest) = state.frames.remove(keep) {
                    state.bytes -= oldest.queued_bytes();
                    dropped += 1;
                }
            }
            state.bytes += size;
            state.frames.push_back(frame);
        }
        self.ready.wake();
        Ok(dropped)
    }

    /// Queues the close frame. Returns false if a close was already queued (the first one wins).
    /// The bound does not apply: a connection must always be able to say goodbye.
    pub fn push_close(&self, code: u16, reason: &str) -> bool {
        self.close_with(code, reason, false)
    }

    /// Like [`push_close`](Self::push_close) but drops every frame still waiting, for closes
    /// that must not wait behind a backlog the client is not reading (a slow consumer).
    pub fn push_close_now(&self, code: u16, reason: &str) -> bool {
        self.close_with(code, reason, true)
    }

    fn close_with(&self, code: u16, reason: &str, drop_queued: bool) -> bool {
        {
            let mut state = self.state.lock();
            if self.closing.load(Ordering::Relaxed) || state.finished {
                return false;
            }
            if drop_queued {
                // Except the rest of a frame begun by a direct write (see `push_with`).
                state
                    .frames
                    .retain(|frame| matches!(frame, Outbound::Encoded(_)));
                state.bytes = state.frames.iter().map(Outbound::queued_bytes).sum();
            }
            // Set under the lock, so no frame can be queued after the close frame.
            self.closing.store(true, Ordering::Release);
            state.frames.push_back(Outbound::Close {
                code,
                reason: Bytes::copy_from_slice(reason.as_bytes()),
            });
        }
        self.ready.wake();
        true
    }

    /// Whether a close frame has been queued.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Tells the writer to stop once it has written what is queued; no more direct writes.
    pub fn finish(&self) {
        let socket = {
            let mut state = self.state.lock();
            state.finished = true;
            state.socket.take()
        };
        // Released outside the lock: if it is the last reference, dropping it shuts the
        // socket down.
        drop(socket);
        self.ready.wake();
    }

    /// Moves every queued frame into `into`, without waiting. False if there was none, in
    /// which case the writer, holding nothing, is idle: frames may be written directly.
    pub fn take_now(&self, into: &mut VecDeque<Outbound>) -> bool {
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            state.writer_idle = true;
            return false;
        }
        std::mem::swap(&mut state.frames, into);
        state.bytes = 0;
        state.writer_idle = false;
        true
    }

    /// Waits until frames are queued (or the connection is finished).
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Ready once frames are queued (or the connection is finished). One waiter: the waker
    /// of the latest call is the one woken.
    pub fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let state = self.state.lock();
        if !state.frames.is_empty() || state.finished {
            return std::task::Poll::Ready(());
        }
        // Registered under the lock, so a frame pushed after this check wakes us.
        self.ready.register(cx.waker());
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Outbound {
        Outbound::Text(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn refuses_frames_beyond_the_bound() {
        let queue = OutboundQueue::new(8);
        assert_eq!(queue.push(text("12345")), Ok(()));
        assert_eq!(queue.push(text("123")), Ok(()));
        assert_eq!(queue.push(text("1")), Err(QueueError::Full));
    }

    #[test]
    fn an_empty_queue_takes_one_large_frame() {
        let queue = OutboundQueue::new(4);
        assert_eq!(queue.push(text("larger than the bound")), Ok(()));
    }

    #[test]
    fn drop_oldest_makes_room() {
        let queue = OutboundQueue::new(8);
        queue.push(text("1234")).unwrap();
        queue.push(text("5678")).unwrap();
        assert_eq!(queue.push_dropping_oldest(text("abcd")), Ok(1));
        assert_eq!(queue.push(text("x")), Err(QueueError::Full));
    }

    #[test]
    fn nothing_follows_a_close() {
        let queue = OutboundQueue::new(1024);
        assert!(queue.push_close(1000, "bye"));
        assert!(!queue.push_close(1001, "again"));
        assert_eq!(queue.push(text("late")), Err(QueueError::Closing));
    }

    #[tokio::test]
    async fn the_writer_gets_frames_in_order() {
        let queue = OutboundQueue::new(1024);
        queue.push(text("a")).unwrap();
        queue.push(text("b")).unwrap();
        queue.ready().await;
        let mut batch = VecDeque::new();
        assert!(queue.take_now(&mut batch));
        let texts: Vec<_> = batch
            .iter()
            .map(|f| match f {
                Outbound::Text(b) => b.clone(),
                _ => Bytes::new(),
            })
            .collect();
        assert_eq!(
            texts,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        queue.finish();
        batch.clear();
        queue.ready().await;
        assert!(!queue.take_now(&mut batch));
    }

    /// A queue attached to one end of a loopback TCP connection, and the other end.
    async fn attached_queue(max_bytes: usize) -> (OutboundQueue, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let queue = OutboundQueue::new(max_bytes);
        queue.attach(Arc::new(write));
        (queue, client)
    }

    async fn read_exactly(client: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut bytes = vec![0u8; n];
        client.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn a_fanout_frame_is_written_at_once_when_the_writer_is_idle() {
        let (queue, mut client) = attached_queue(1024).await;
        assert_eq!(queue.push_fanout(text("hi"), false), Ok(0));
        assert_eq!(read_exactly(&mut client, 4).await, [0x81, 2, b'h', b'i']);
        assert!(!queue.take_now(&mut VecDeque::new()), "nothing was queued");
    }

    #[tokio::test]
    async fn a_fanout_frame_waits_behind_frames_already_queued() {
        let (queue, _client) = attached_queue(1024).await;
        queue.push(text("first")).unwrap();
        queue.push_fanout(text("second"), false).unwrap();
        let mut batch = VecDeque::new();
        assert!(queue.take_now(&mut batch));
        assert_eq!(batch, [text("first"), text("second")]);
        // The writer now holds frames: nothing may be written past it.
        queue.push_fanout(text("third"), false).unwrap();
        let mut next = VecDeque::new();
        assert!(queue.take_now(&mut next));
        assert_eq!(next, [text("third")]);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_queued_and_survives_dropping() {
        let (queue, _client) = attached_queue(1 << 20).await;
        // Far more than loopback socket buffers hold, with the peer not reading.
        let big = Bytes::from(vec![7u8; 32 << 20]);
        queue
            .push_fanout(Outbound::Binary(big.clone()), true)
            .unwrap();
        let rest = queue.state.lock().frames.front().cloned();
        let Some(Outbound::Encoded(rest)) = rest else {
            panic!("expected the rest of the frame queued, got {rest:?}");
        };
        assert!(!rest.is_empty() && rest.len() < big.len());
        assert!(
            rest.iter().all(|&b| b == 7),
            "the rest is payload, header already written"
        );

        // Neither dropping the oldest nor a close that skips the queue may cut the frame.
        assert_eq!(queue.push_dropping_oldest(text("a")), Ok(0));
        assert_eq!(
            queue.push_dropping_oldest(text("b")),
            Ok(1),
            "`a` made room"
        );
        assert!(matches!(
            queue.state.lock().frames.front(),
            Some(Outbound::Encoded(_))
        ));
        assert!(queue.push_close_now(1008, "slow"));
        let mut batch = VecDeque::new();
        assert!(queue.take_now(&mut batch));
        assert!(matches!(batch.front(), Some(Outbound::Encoded(b)) if *b == rest));
        assert!(matches!(
            batch.back(),
            Some(Outbound::Close { code: 1008, .. })
        ));
        assert_eq!(
            batch.len(),
            2,
            "`b` was dropped, the rest of the frame kept"
        );
    }
}
