//! The reading half of a connection: client frames from the socket, decoded and checked by
//! the protocol's rules (see `crate::protocol`).
//!
//! Two properties matter for a host with many idle connections:
//! - an idle connection holds no read buffer: the reader waits for the socket to become
//!   readable and only then allocates, and gives the buffer back when the socket runs dry;
//! - it is cancel-safe: a frame is only taken out of the buffer once it is complete, so a read
//!   that is abandoned (to send a ping, or at shutdown) loses nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::io::poll_read_buf;

use crate::protocol::{Frame, FrameError, decode_client_frame};

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer broke a rule of the protocol or sent a frame over the limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer closed the TCP connection without a close frame.
    #[error("connection closed by the peer without a close frame")]
    Eof,
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Bytes read at a time when the buffer has to grow for a new frame.
const READ_CHUNK: usize = 4096;

/// Decodes frames from the read half of a connection.
pub struct FrameReader {
    socket: OwnedReadHalf,
    buffer: BytesMut,
    max_frame: usize,
    /// permessage-deflate was negotiated: RSV1 may mark a compressed message.
    compression: bool,
}

impl FrameReader {
    /// `already_read` holds bytes the HTTP layer read past the handshake, if any. They are
    /// copied and the view dropped here: it points into the HTTP layer's whole read buffer,
    /// which would otherwise stay allocated for the life of the connection.
    pub fn new(
        socket: OwnedReadHalf,
        already_read: Bytes,
        max_frame: usize,
        compression: bool,
    ) -> Self {
        Self {
            socket,
            buffer: BytesMut::from(&already_read[..]),
            max_frame,
            compression,
        }
    }

    /// Gives the socket back with what was read past the last frame taken.
    pub fn into_parts(self) -> (OwnedReadHalf, BytesMut) {
        (self.socket, self.buffer)
    }

    /// Waits for the next frame.
    pub async fn next_frame(&mut self) -> Result<Frame, ReadError> {
        std::future::poll_fn(|cx| self.poll_next_frame(cx)).await
    }

    /// Polls for the next frame. Only the waker of the latest call is woken when the socket
    /// has more to read. Polling keeps no state outside the reader, so a session waiting on
    /// several things at once needs no future per thing (each would sit in every idle
    /// connection's task).
    pub fn poll_next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, ReadError>> {
        loop {
            if let Some(frame) =
                decode_client_frame(&mut self.buffer, self.max_frame, self.compression)?
            {
                return Poll::Ready(Ok(frame));
            }
            if self.buffer.is_empty() {
                // Between frames: give the buffer back and wait for the peer without one.
                // Readiness is tracked by the runtime: after a read that did not fill the
                // buffer it knows the socket is drained, so this waits without a syscall.
                self.buffer = BytesMut::new();
                ready!(self.socket.as_ref().poll_read_ready(cx))?;
                self.buffer.reserve(READ_CHUNK);
            } else if self.buffer.capacity() == self.buffer.len() {
                // Inside a frame: `decode` reserved room for the rest of it; this is a guard.
                self.buffer.reserve(READ_CHUNK);
            }
            // Through the stream's own read, which tells the runtime the socket is drained
            // when it returns less than there was room for: the next wait then costs no
            // system call (`try_read` would learn it only from an EWOULDBLOCK).
            match poll_read_buf(Pin::new(&mut self.socket), cx, &mut self.buffer) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(ReadError::Eof)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                // The readiness was stale (as after a handshake the HTTP layer did not read
                // to the end): wait without the buffer if it holds nothing.
                Poll::Pending => {
                    if self.buffer.is_empty() {
                        self.buffer = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
