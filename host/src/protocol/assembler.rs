//! Reassembles fragmented messages (RFC 6455 §5.4), enforcing the message size limit and UTF-8 as it goes.
//!
//! A fragmented text message is checked fragment by fragment, so an invalid byte sequence ends
//! the connection as soon as it arrives instead of after the whole message was buffered, and
//! the size limit applies to the whole message, not to each frame.

use super::close::CloseCode;
use super::deflate::{InflateError, Inflater};
use super::frame::Frame;
use super::opcode::Opcode;

/// A complete message, borrowed from the frame or from the reassembly buffer.
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Why a data frame ends the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssembleError {
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new message started before the previous one was finished")]
    UnfinishedMessage,
    #[error("compressed message is not valid deflate data")]
    BadCompression,
}

impl AssembleError {
    /// The close code that reports this error to the peer.
    pub fn close_code(&self) -> u16 {
        match self {
            AssembleError::TooLarge(_) => CloseCode::TOO_BIG.0,
            AssembleError::InvalidUtf8 | AssembleError::BadCompression => CloseCode::INVALID_DATA.0,
            AssembleError::UnexpectedContinuation | AssembleError::UnfinishedMessage => {
                CloseCode::PROTOCOL_ERROR.0
            }
        }
    }
}

/// Collects the fragments of one message at a time.
pub struct Assembler {
    max_size: usize,
    /// Opcode of the message being reassembled, if one is.
    pending: Option<Opcode>,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already known to be valid UTF-8.
    checked: usize,
    /// The message being reassembled is compressed: its fragments are inflated into
    /// `buffer` as they arrive.
    compressed: bool,
    inflater: Inflater,
}

/// What a data frame produced.
pub enum Assembled<'a> {
    /// A whole message, ready for the function.
    Complete(Message<'a>),
    /// A fragment was stored; more are expected.
    Partial,
}

impl Assembler {
    pub fn new(max_size: usize) -> Self {
        Self {
            max_size,
            pending: None,
            buffer: Vec::new(),
            checked: 0,
            compressed: false,
            inflater: Inflater::default(),
        }
    }

    /// Feeds one data frame (text, binary or continuation).
    pub fn push<'a>(&'a mut self, frame: &'a Frame) -> Result<Assembled<'a>, AssembleError> {
        let payload: &[u8] = &frame.payload;
        match (frame.opcode, self.pending) {
            (Opcode::Text | Opcode::Binary, Some(_)) => Err(AssembleError::UnfinishedMessage),
            (Opcode::Continuation, None) => Err(AssembleError::UnexpectedContinuation),
            (opcode @ (Opcode::Text | Opcode::Binary), None) => {
                if frame.fin && !frame.compressed {
                    if payload.len() > self.max_size {
                        return Err(AssembleError::TooLarge(self.max_size));
                    }
                    return whole(opcode, payload);
                }
                self.pending = Some(opcode);
                self.compressed = frame.compressed;
                self.buffer.clear();
                self.checked = 0;
                self.add(payload)?;
                self.end_if(frame.fin)
            }
            // Control frames never reach the assembler; the session handles them.
            (Opcode::Close | Opcode::Ping | Opcode::Pong, _) => Ok(Assembled::Partial),
            (Opcode::Continuation, Some(_)) => {
                self.add(payload)?;
                self.end_if(frame.fin)
            }
        }
    }

    /// After the message's last fragment (`fin`), the whole message.
    fn end_if(&mut self, fin: bool) -> Result<Assembled<'_>, AssembleError> {
        if !fin {
            return Ok(Assembled::Partial);
        }
        if self.compressed {
            self.inflater
                .finish(&mut self.buffer, self.max_size)
                .map_err(|e| self.inflate_error(e))?;
            self.check_utf8()?;
        }
        let opcode = self.pending.take();
        self.checked = 0;
        self.compressed = false;
        Ok(Assembled::Complete(match opcode {
            Some(Opcode::Text) => Message::Text(
                std::str::from_utf8(&self.buffer).map_err(|_| AssembleError::InvalidUtf8)?,
            ),
            _ => Message::Binary(&self.buffer),
        }))
    }

    fn inflate_error(&self, error: InflateError) -> AssembleError {
        match error {
            InflateError::TooLarge(_) => AssembleError::TooLarge(self.max_size),
            InflateError::Corrupt => AssembleError::BadCompression,
        }
    }

    /// A continuation frame would continue a text message that is not compressed (its bytes
    /// can be checked as they arrive).
    pub fn continues_text(&self) -> bool {
        self.pending == Some(Opcode::Text) && !self.compressed
    }

    /// Clears what the previous message left, releasing a large buffer so an idle connection
    /// does not keep the memory of its biggest message.
    pub fn reset(&mut self) {
        self.inflater.release();
        self.buffer.clear();
        if self.buffer.capacity() > 64 * 1024 {
            self.buffer = Vec::new();
        }
    }

    /// Adds a fragment's payload to the message: as it is, or inflated when compressed
    /// (counting the inflated size against the limit as it grows).
    fn add(&mut self, payload: &[u8]) -> Result<(), AssembleError> {
        if self.compressed {
            self.inflater
                .inflate(payload, &mut self.buffer, self.max_size)
                .map_err(|e| self.inflate_error(e))?;
        } else {
            if self.buffer.len() + payload.len() > self.max_size {
                return Err(AssembleError::TooLarge(self.max_size));
            }
            self.buffer.extend_from_slice(payload);
        }
        self.check_utf8()
    }

    /// A text message fails as soon as what it holds so far cannot be UTF-8: everything up
    /// to a sequence cut by the fragment boundary must be valid already.
    fn check_utf8(&mut self) -> Result<(), AssembleError> {
        if self.pending == Some(Opcode::Text) {
            match std::str::from_utf8(&self.buffer[self.checked..]) {
                Ok(_) => self.checked = self.buffer.len(),
                Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
                Err(_) => return Err(AssembleError::InvalidUtf8),
            }
        }
        Ok(())
    }
}

fn whole<'a>(opcode: Opcode, payload: &'a [u8]) -> Result<Assembled<'a>, AssembleError> {
    Ok(Assembled::Complete(match opcode {
        Opcode::Text => {
            Message::Text(std::str::from_utf8(payload).map_err(|_| AssembleError::InvalidUtf8)?)
        }
        _ => Message::Binary(payload),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn frame(fin: bool, opcode: Opcode, data: &[u8]) -> Frame {
        Frame {
            fin,
            opcode,
            compressed: false,
            payload: BytesMut::from(data),
        }
    }

    fn compressed(fin: bool, opcode: Opcode, data: &[u8]) -> Frame {
        Frame {
            compressed: true,
            ..frame(fin, opcode, data)
        }
    }

    #[test]
    fn a_compressed_message_is_inflated_whole_or_in_fragments() {
        let text = "héllo ".repeat(100);
        let deflated = crate::protocol::deflate::deflate(&[text.as_bytes()], 15);
        let mut assembler = Assembler::new(1024);
        assert_eq!(
            text_of(assembler.push(&compressed(true, Opcode::Text, &deflated))),
            text
        );
        assembler.reset();
        let (head, tail) = deflated.split_at(deflated.len() / 2);
        assert!(matches!(
            assembler.push(&compressed(false, Opcode::Text, head)),
            Ok(Assembled::Partial)
        ));
        let last = frame(true, Opcode::Continuation, tail);
        assert_eq!(text_of(assembler.push(&last)), text);
    }

    #[test]
    fn an_inflated_message_counts_against_the_limit() {
        let deflated = crate::protocol::deflate::deflate(&[&[b'a'; 5000]], 15);
        let mut assembler = Assembler::new(4096);
        assert_eq!(
            assembler
                .push(&compressed(true, Opcode::Binary, &deflated))
                .err(),
            Some(AssembleError::TooLarge(4096))
        );
        let mut assembler = Assembler::new(4096);
        let invalid = crate::protocol::deflate::deflate(&[b"ok\xff"], 15);
        assert_eq!(
            assembler
                .push(&compressed(true, Opcode::Text, &invalid))
                .err(),
            Some(AssembleError::InvalidUtf8)
        );
    }

    fn text_of(result: Result<Assembled<'_>, AssembleError>) -> String {
        match result {
            Ok(Assembled::Complete(Message::Text(t))) => t.to_owned(),
            _ => panic!("expected a complete text message"),
        }
    }

    #[test]
    fn joins_fragments_split_inside_a_character() {
        let mut assembler = Assembler::new(1024);
        let bytes = "héllo".as_bytes();
        let first = frame(false, Opcode::Text, &bytes[..2]);
        assert!(matches!(assembler.push(&first), Ok(Assembled::Partial)));
        let last = frame(true, Opcode::Continuation, &bytes[2..]);
        assert_eq!(text_of(assembler.push(&last)), "héllo");
    }

    #[test]
    fn fails_fast_on_invalid_utf8_in_a_fragment() {
        let mut assembler = Assembler::new(1024);
        let first = frame(false, Opcode::Text, b"ok\xff");
        assert_eq!(
            assembler.push(&first).err(),
            Some(AssembleError::InvalidUtf8)
        );
    }

    #[test]
    fn limits_the_whole_message_not_each_frame() {
        let mut assembler = Assembler::new(10);
        let first = frame(false, Opcode::Binary, &[0; 6]);
        assert!(assembler.push(&first).is_ok());
        let second = frame(true, Opcode::Continuation, &[0; 6]);
        assert_eq!(
            assembler.push(&second).err(),
            Some(AssembleError::TooLarge(10))
        );
    }

    #[test]
    fn refuses_continuation_without_a_start() {
        let mut assembler = Assembler::new(10);
        let orphan = frame(true, Opcode::Continuation, b"x");
        assert_eq!(
            assembler.push(&orphan).err(),
            Some(AssembleError::UnexpectedContinuation)
        );
    }
}
