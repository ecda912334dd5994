//! The reading half of a connection: client frames, decoded and checked against RFC 6455.
//!
//! Our own decoder rather than the WebSocket library's, for three reasons:
//! - every rule a server must enforce is checked where the header is parsed — frames must be
//!   masked (§5.1), reserved bits and opcodes are refused (§5.2), control frames are at most 125
//!   bytes and never fragmented (§5.5) — before any reply is made to the frame;
//! - an idle connection holds no read buffer: the reader waits for the socket to become
//!   readable and only then allocates, and gives the buffer back when the socket runs dry;
//! - it is cancel-safe: a frame is only taken out of the buffer once it is complete, so a read
//!   that is abandoned (to send a ping, or at shutdown) loses nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::io::poll_read_buf;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One decoded, unmasked frame.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: BytesMut,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer broke a rule of the protocol; close with 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A frame is larger than the host accepts; close with 1009.
    #[error("frame larger than {0} bytes")]
    TooLarge(usize),
    /// The peer closed the TCP connection without a close frame.
    #[error("connection closed by the peer without a close frame")]
    Eof,
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Bytes read at a time when the buffer has to grow for a new frame.
const READ_CHUNK: usize = 4096;
/// Largest header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// Decodes frames from the read half of a connection.
pub struct FrameReader {
    socket: OwnedReadHalf,
    buffer: BytesMut,
    max_frame: usize,
}

impl FrameReader {
    /// `already_read` holds bytes the HTTP layer read past the handshake, if any. They are
    /// copied and the view dropped here: it points into the HTTP layer's whole read buffer,
    /// which would otherwise stay allocated for the life of the connection.
    pub fn new(socket: OwnedReadHalf, already_read: Bytes, max_frame: usize) -> Self {
        Self {
            socket,
            buffer: BytesMut::from(&already_read[..]),
            max_frame,
        }
    }

    /// Polls for the next frame. Only the waker of the latest call is woken when the socket
    /// has more to read. Polling keeps no state outside the reader, so a session waiting on
    /// several things at once needs no future per thing (each would sit in every idle
    /// connection's task).
    pub fn poll_next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, ReadError>> {
        loop {
            if let Some(frame) = decode(&mut self.buffer, self.max_frame)? {
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

/// Takes one complete frame off the front of `buffer`, or returns `None` (having reserved
/// room for the rest) when it is not all there yet.
fn decode(buffer: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, ReadError> {
    let [first, second, ..] = buffer[..] else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(ReadError::Protocol(
            "reserved bits set without a negotiated extension",
        ));
    }
    let opcode = Opcode::from_bits(first & 0x0F).ok_or(ReadError::Protocol("reserved opcode"))?;
    let fin = first & 0x80 != 0;
    if second & 0x80 == 0 {
        return Err(ReadError::Protocol("client frames must be masked"));
    }
    let (length_bytes, short_length) = match second & 0x7F {
        126 => (2, None),
        127 => (8, None),
        length => (0, Some(length as u64)),
    };
    let header = 2 + length_bytes + 4;
    if buffer.len() < 2 + length_bytes {
        return Ok(None);
    }
    let length = match short_length {
        Some(length) => length,
        None if length_bytes == 2 => u64::from(u16::from_be_bytes([buffer[2], buffer[3]])),
        None => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buffer[2..10]);
            let length = u64::from_be_bytes(bytes);
            if length >> 63 != 0 {
                return Err(ReadError::Protocol(
                    "frame length with the most significant bit set",
                ));
            }
            length
        }
    };
    if opcode.is_control() {
        if !fin {
            return Err(ReadError::Protocol("fragmented control frame"));
        }
        if length > 125 {
            return Err(ReadError::Protocol("control frame payload over 125 bytes"));
        }
    }
    let length = usize::try_from(length).map_err(|_| ReadError::TooLarge(max_frame))?;
    if length > max_frame {
        return Err(ReadError::TooLarge(max_frame));
    }
    if buffer.len() < header + length {
        // Room for the rest of this frame and the next header, so it arrives in few reads.
        buffer.reserve(header + length + MAX_HEADER - buffer.len());
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buffer[header - 4..header]);
    buffer.advance(header);
    let mut payload = buffer.split_to(length);
    unmask(&mut payload, mask);
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// XORs the payload with the masking key, eight bytes at a time where it can.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the key lines up with its first byte again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![first];
        match payload.len() {
            n if n < 126 => bytes.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&MASK);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        bytes
    }

    fn decode_all(bytes: &[u8], max: usize) -> Result<Option<Frame>, ReadError> {
        decode(&mut BytesMut::from(bytes), max)
    }

    #[test]
    fn decodes_every_length_form() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = decode_all(&masked(0x82, &payload), 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!((frame.fin, frame.opcode), (true, Opcode::Binary));
            assert_eq!(&frame.payload[..], &payload[..], "length {len}");
        }
    }

    #[test]
    fn waits_for_the_rest_of_a_frame_byte_by_byte() {
        let bytes = masked(0x81, b"hello there");
        let mut buffer = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buffer.extend_from_slice(&[*byte]);
            let frame = decode(&mut buffer, 1024).unwrap();
            assert_eq!(frame.is_some(), i == bytes.len() - 1);
            if let Some(frame) = frame {
                assert_eq!(&frame.payload[..], b"hello there");
            }
        }
        assert!(buffer.is_empty());
    }

    #[test]
    fn refuses_what_a_client_must_not_send() {
        let cases: [(Vec<u8>, &str); 6] = [
            (vec![0x81, 0x02, b'h', b'i'], "client frames must be masked"),
            (
                masked(0xC1, b"x"),
                "reserved bits set without a negotiated extension",
            ),
            (masked(0x83, b"x"), "reserved opcode"),
            (masked(0x09, b""), "fragmented control frame"),
            (
                masked(0x8A, &[0; 126]),
                "control frame payload over 125 bytes",
            ),
            (
                masked(0x88, &[0; 126]),
                "control frame payload over 125 bytes",
            ),
        ];
        for (bytes, reason) in cases {
            match decode_all(&bytes, 1024) {
                Err(ReadError::Protocol(got)) => assert_eq!(got, reason),
                other => panic!("expected a protocol error ({reason}), got {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_frames_over_the_limit_from_the_header_alone() {
        let header = &masked(0x82, &[0; 2000])[..8];
        assert!(matches!(
            decode_all(header, 1000),
            Err(ReadError::TooLarge(1000))
        ));
    }

    #[test]
    fn unmasks_payloads_of_any_length() {
        for len in 0..40 {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut data: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            unmask(&mut data, MASK);
            assert_eq!(data, payload);
        }
    }
}
