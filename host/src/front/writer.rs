//! The writing half of a connection: drains the outbound queue onto the socket.
//!
//! Everything queued since the last write goes out in one `write`, so a burst of sends costs
//! one syscall. Server frames are never masked, so encoding is only a header in front of the
//! payload; large payloads are written from their own buffer instead of being copied.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::connections::{Batch, Connection, Outbound};

/// Payloads at least this large are written directly rather than copied into the batch.
const COPY_LIMIT: usize = 16 * 1024;
/// A batch buffer that grew beyond this is released after use, so idle connections stay small.
const KEEP_CAPACITY: usize = 64 * 1024;

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Writes frames until the connection's close frame is written or the connection is finished.
pub async fn write_frames<W: AsyncWrite + Unpin>(connection: Arc<Connection>, mut socket: W) {
    let mut frames = VecDeque::new();
    let mut buffer = Vec::new();
    loop {
        if let Batch::Finished = connection.outbound.take_all(&mut frames).await {
            break;
        }
        let mut wrote_close = false;
        let mut result = Ok(());
        for frame in frames.drain(..) {
            if result.is_err() {
                continue;
            }
            let (opcode, payload, close_code) = match &frame {
                Outbound::Text(b) => (OP_TEXT, b.as_ref(), None),
                Outbound::Binary(b) => (OP_BINARY, b.as_ref(), None),
                Outbound::Ping(b) => (OP_PING, b.as_ref(), None),
                Outbound::Pong(b) => (OP_PONG, b.as_ref(), None),
                Outbound::Close { code, reason } => (OP_CLOSE, reason.as_ref(), Some(*code)),
            };
            match close_code {
                // 1005 means "no code": the close frame then carries no payload at all.
                Some(1005) => push_head(&mut buffer, OP_CLOSE, 0),
                Some(code) => {
                    let reason = close_reason(payload);
                    push_head(&mut buffer, OP_CLOSE, reason.len() + 2);
                    buffer.extend_from_slice(&code.to_be_bytes());
                    buffer.extend_from_slice(reason);
                }
                None if payload.len() >= COPY_LIMIT => {
                    push_head(&mut buffer, opcode, payload.len());
                    result = socket.write_all(&buffer).await;
                    buffer.clear();
                    if result.is_ok() {
                        result = socket.write_all(payload).await;
                    }
                }
                None => {
                    push_head(&mut buffer, opcode, payload.len());
                    buffer.extend_from_slice(payload);
                }
            }
            if close_code.is_some() {
                wrote_close = true;
                break;
            }
        }
        frames.clear();
        if result.is_ok() && !buffer.is_empty() {
            result = socket.write_all(&buffer).await;
        }
        if result.is_ok() {
            result = socket.flush().await;
        }
        buffer.clear();
        if buffer.capacity() > KEEP_CAPACITY {
            buffer = Vec::new();
        }
        if result.is_err() {
            // The peer is gone; refuse further sends. The reader sees the broken socket and
            // ends the connection.
            connection.outbound.finish();
            break;
        }
        if wrote_close {
            break;
        }
    }
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
    buffer.push(0x80 | opcode);
    if len < 126 {
        buffer.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buffer.push(126);
        buffer.extend_from_slice(&len.to_be_bytes());
    } else {
        buffer.push(127);
        buffer.extend_from_slice(&(len as u64).to_be_bytes());
    }
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
