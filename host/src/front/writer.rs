//! The writing half of a connection: encodes queued frames and writes them without blocking.
//!
//! It belongs to the connection's session task rather than running as a task of its own: a
//! reply produced by an event is written right after the event, with no hand-off between
//! tasks, and an idle connection costs one task, not two. Everything queued since the last
//! write goes out in one `write`, so a burst of sends costs one syscall. When the socket does
//! not take everything, the rest waits in the buffer and the session waits for the socket to
//! become writable (while still reading). Server frames are never masked, so encoding is only
//! a header in front of the payload.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use tokio::net::tcp::OwnedWriteHalf;

use crate::connections::wire::{OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, head};
use crate::connections::{Outbound, OutboundQueue};

/// A buffer that grew beyond this is released once written, so idle connections stay small.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Where a flush left things.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued has been written.
    All,
    /// The socket took only part; wait for [`Outgoing::writable`] and flush again.
    Blocked,
    /// The close frame has been written: nothing more will be.
    Closed,
    /// The socket failed; nothing more will be written.
    Failed,
}

pub struct Outgoing {
    /// Shared with the connection's queue, which writes a fan-out frame directly while this
    /// writer has nothing pending (see `OutboundQueue::push_fanout`).
    socket: Arc<OwnedWriteHalf>,
    /// Encoded bytes not yet written, from `written` on.
    buffer: Vec<u8>,
    written: usize,
    frames: VecDeque<Outbound>,
    /// A close frame is in `buffer`: take no more frames.
    close_encoded: bool,
    finished: Option<Flushed>,
}

impl Outgoing {
    pub fn new(socket: Arc<OwnedWriteHalf>) -> Self {
        Self {
            socket,
            buffer: Vec::new(),
            written: 0,
            frames: VecDeque::new(),
            close_encoded: false,
            finished: None,
        }
    }

    /// Whether bytes are waiting for the socket to become writable.
    pub fn is_blocked(&self) -> bool {
        self.finished.is_none() && self.written < self.buffer.len()
    }

    /// Whether nothing more will ever be written.
    pub fn is_done(&self) -> bool {
        self.finished.is_some()
    }

    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for room in the socket's send buffer (only the latest caller's waker is woken).
    pub fn poll_writable(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let socket: &tokio::net::TcpStream = (*self.socket).as_ref();
        socket.poll_write_ready(cx)
    }

    /// Writes what is queued, as far as the socket takes it without waiting.
    pub fn flush(&mut self, queue: &OutboundQueue) -> Flushed {
        if let Some(finished) = &self.finished {
            return match finished {
                Flushed::Closed => Flushed::Closed,
                _ => Flushed::Failed,
            };
        }
        loop {
            if self.written == self.buffer.len() {
                self.buffer.clear();
                self.written = 0;
                if self.buffer.capacity() > KEEP_CAPACITY {
                    self.buffer = Vec::new();
                }
                if self.close_encoded {
                    self.finished = Some(Flushed::Closed);
                    return Flushed::Closed;
                }
                if !queue.take_now(&mut self.frames) {
                    return Flushed::All;
                }
                self.encode();
            }
            match self.socket.try_write(&self.buffer[self.written..]) {
                Ok(0) => return self.fail(queue),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(_) => return self.fail(queue),
            }
        }
    }

    /// The peer is gone: refuse further sends; the reader sees the broken socket and ends the
    /// connection.
    fn fail(&mut self, queue: &OutboundQueue) -> Flushed {
        queue.finish();
        self.finished = Some(Flushed::Failed);
        self.buffer = Vec::new();
        Flushed::Failed
    }

    /// Encodes the taken frames, up to and including a close frame.
    fn encode(&mut self) {
        for frame in self.frames.drain(..) {
            if self.close_encoded {
                break;
            }
            let buffer = &mut self.buffer;
            match &frame {
                Outbound::Text(b) => push_frame(buffer, OP_TEXT, b),
                Outbound::Binary(b) => push_frame(buffer, OP_BINARY, b),
                Outbound::Ping(b) => push_frame(buffer, OP_PING, b),
                Outbound::Pong(b) => push_frame(buffer, OP_PONG, b),
                Outbound::Encoded(b) => buffer.extend_from_slice(b),
                // 1005 means "no code": the close frame then carries no payload at all.
                Outbound::Close { code: 1005, .. } => {
                    push_head(buffer, OP_CLOSE, 0);
                    self.close_encoded = true;
                }
                Outbound::Close { code, reason } => {
                    let reason = close_reason(reason);
                    push_head(buffer, OP_CLOSE, reason.len() + 2);
                    buffer.extend_from_slice(&code.to_be_bytes());
                    buffer.extend_from_slice(reason);
                    self.close_encoded = true;
                }
            }
        }
        self.frames.clear();
    }
}

fn push_frame(buffer: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    push_head(buffer, opcode, payload.len());
    buffer.extend_from_slice(payload);
}

/// A close reason cut to the 123 bytes a control frame has room for (RFC 6455 §5.5), at a
/// character boundary, so the host never writes an invalid close frame whatever it was given.
fn close_reason(reason: &[u8]) -> &[u8] {
    let mut end = reason.len().min(123);
    while end > 0 && std::str::from_utf8(&reason[..end]).is_err() {
        end -= 1;
    }
    &reason[..end]
}

/// Appends an unmasked frame header.
fn push_head(buffer: &mut Vec<u8>, opcode: u8, len: usize) {
    let (bytes, used) = head(opcode, len);
    buffer.extend_from_slice(&bytes[..used]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason(b"bye"), b"bye");
        assert_eq!(close_reason(&[b'r'; 200]).len(), 123);
        // 61 two-byte characters and one more: the cut falls between characters.
        let text = "é".repeat(62);
        assert_eq!(close_reason(text.as_bytes()), "é".repeat(61).as_bytes());
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        let mut b = Vec::new();
        push_head(&mut b, OP_TEXT, 5);
        assert_eq!(b, [0x81, 5]);
        b.clear();
        push_head(&mut b, OP_BINARY, 300);
        assert_eq!(b, [0x82, 126, 1, 44]);
        b.clear();
        push_head(&mut b, OP_BINARY, 70_000);
        assert_eq!(b, [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
