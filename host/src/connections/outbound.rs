//! The outbound queue of one connection.
//!
//! Everything sent to a connection — by its own events, by other connections' events, by group
//! publishes, or as a control reply — goes through this queue, so frames leave in the order they
//! were sent. The queue is bounded in bytes: a client that stops reading cannot make the host
//! hold more than the bound for it. The connection drains the whole queue at once and writes it
//! with one syscall, so bursts (a broadcast, a pipelining client) cost one write, not one each.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::Mutex;

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
}

impl Outbound {
    fn queued_bytes(&self) -> usize {
        match self {
            Outbound::Text(b) | Outbound::Binary(b) | Outbound::Ping(b) | Outbound::Pong(b) => {
                b.len()
            }
            Outbound::Close { reason, .. } => reason.len() + 2,
        }
    }
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
        self.push_with(frame, false).map(|_| ())
    }

    /// Queues a frame, dropping the oldest data frames to make room if the queue is full.
    /// Returns how many frames were dropped.
    pub fn push_dropping_oldest(&self, frame: Outbound) -> Result<usize, QueueError> {
        self.push_with(frame, true)
    }

    fn push_with(&self, frame: Outbound, drop_oldest: bool) -> Result<usize, QueueError> {
        let size = frame.queued_bytes();
        let mut dropped = 0;
        {
            let mut state = self.state.lock();
            if self.closing.load(Ordering::Relaxed) || state.finished {
                return Err(QueueError::Closing);
            }
            // An empty queue always takes one frame, so a single message up to the message
            // size limit can be sent even when the queue bound is smaller than that.
            while !state.frames.is_empty() && state.bytes + size > self.max_bytes {
                if !drop_oldest {
                    return Err(QueueError::Full);
                }
                if let Some(oldest) = state.frames.pop_front() {
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
                state.frames.clear();
                state.bytes = 0;
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

    /// Tells the writer to stop once it has written what is queued.
    pub fn finish(&self) {
        self.state.lock().finished = true;
        self.ready.wake();
    }

    /// Moves every queued frame into `into`, without waiting. False if there was none.
    pub fn take_now(&self, into: &mut VecDeque<Outbound>) -> bool {
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            return false;
        }
        std::mem::swap(&mut state.frames, into);
        state.bytes = 0;
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
}
