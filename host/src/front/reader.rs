//! The reading half of a connection: client frames from the socket, decoded and checked by
//! the protocol's rules (see `crate::protocol`).
//!
//! Two properties matter for a host with many idle connections:
//! - an idle connection holds no read buffer: the reader waits for the socket to become
//!   readable and only then allocates, and gives the buffer back when the socket runs dry;
//! - it is cancel-safe: a frame is only taken out of the buffer once it is complete, so a read
//!   that is abandoned (to send a ping, or at shutdown) loses nothing.
//!
//! Text is checked as it arrives: the part of a text frame received so far is unmasked in
//! place and must be UTF-8 up to a character the next bytes may finish, so a client that sends
//! invalid text in a large frame is refused at once, not when the frame is complete.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::io::poll_read_buf;

use crate::protocol::{
    Frame, FrameError, Header, MAX_CLIENT_HEADER, Opcode, decode_header, take_frame, unmask_from,
};

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer broke a rule of the protocol or sent a frame over the limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The text received so far cannot be UTF-8; close with 1007.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
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
    /// Of the frame being received: payload bytes already unmasked in place, and of those,
    /// the ones known to be UTF-8 (for a text frame).
    unmasked: usize,
    checked: usize,
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
            unmasked: 0,
            checked: 0,
        }
    }

    /// Gives the socket back with what was read past the last frame taken.
    pub fn into_parts(self) -> (OwnedReadHalf, BytesMut) {
        (self.socket, self.buffer)
    }

    /// Waits for the next frame.
    pub async fn next_frame(&mut self) -> Result<Frame, ReadError> {
        std::future::poll_fn(|cx| self.poll_next_frame(cx, false)).await
    }

    /// Polls for the next frame. Only the waker of the latest call is woken when the socket
    /// has more to read. Polling keeps no state outside the reader, so a session waiting on
    /// several things at once needs no future per thing (each would sit in every idle
    /// connection's task).
    ///
    /// `in_text` says a continuation frame would continue a text message (uncompressed), so
    /// its bytes are checked as they arrive.
    pub fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
        in_text: bool,
    ) -> Poll<Result<Frame, ReadError>> {
        loop {
            if let Some(header) = decode_header(&self.buffer, self.max_frame, self.compression)? {
                let total = header.len + header.payload_len;
                if self.buffer.len() >= total {
                    let frame = take_frame(&mut self.buffer, &header, self.unmasked);
                    (self.unmasked, self.checked) = (0, 0);
                    return Poll::Ready(Ok(frame));
                }
                // Room for the rest of this frame and the next header, so it arrives in few
                // reads.
                self.buffer
                    .reserve(total + MAX_CLIENT_HEADER - self.buffer.len());
                let text = header.opcode == Opcode::Text
                    || (header.opcode == Opcode::Continuation && in_text);
                if text && !header.compressed {
                    self.check_partial_text(&header)?;
                }
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

    /// Unmasks what has arrived of a text frame and checks it is UTF-8 so far. A
    /// continuation may begin with the last bytes of a character its previous fragment began:
    /// those are left to the assembler, which sees both.
    fn check_partial_text(&mut self, header: &Header) -> Result<(), ReadError> {
        let payload = &mut self.buffer[header.len..];
        unmask_from(&mut payload[self.unmasked..], header.mask, self.unmasked);
        self.unmasked = payload.len();
        if self.checked == 0 && header.opcode == Opcode::Continuation {
            self.checked = payload
                .iter()
                .take(3)
                .take_while(|&&b| (0x80..0xC0).contains(&b))
                .count();
        }
        match std::str::from_utf8(&payload[self.checked..]) {
            Ok(_) => self.checked = payload.len(),
            Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
            Err(_) => return Err(ReadError::InvalidUtf8),
        }
        Ok(())
    }
}
