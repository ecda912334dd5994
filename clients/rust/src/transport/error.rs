//! How reading a socket fails: the peer ended it, the network failed, or the server sent what
//! RFC 6455 or RFC 7692 forbids, which fails the connection with a close code saying which.

use std::io;

/// Something the server sent that the RFCs forbid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Violation {
    #[error("a frame with the reserved opcode {0:#x}")]
    Opcode(u8),
    #[error("a frame with a reserved bit set")]
    ReservedBits,
    #[error("a masked frame from the server")]
    MaskedByServer,
    #[error("a fragmented control frame, or one over 125 bytes")]
    Control,
    #[error("a frame length of 2^63 bytes or more")]
    Length,
    #[error("a continuation frame with no message to continue")]
    StrayContinuation,
    #[error("a new message before the previous one ended")]
    Interleaved,
    #[error("a message over the {0}-byte limit")]
    TooBig(usize),
    #[error("a text message that is not UTF-8")]
    Utf8,
    #[error("a malformed close frame: {0}")]
    Close(&'static str),
    #[error("compressed data that does not inflate: {0}")]
    Inflate(String),
}

impl Violation {
    /// The close code that fails the connection for it (RFC 6455 §7.4.1).
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::TooBig(_) => 1009,
            Self::Utf8 => 1007,
            _ => 1002,
        }
    }
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The TCP connection ended.
    #[error("the socket ended")]
    Ended,
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server broke the protocol; a close frame with the violation's code is queued.
    #[error("the host broke the WebSocket protocol: {0}")]
    Violation(Violation),
}
