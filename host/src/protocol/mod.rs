//! The WebSocket protocol (RFC 6455) as the host speaks it, in one place: opcodes, frame
//! headers (decoding what clients send, encoding what the host sends), close codes with the
//! rules for who may send which, and the text limits of control frames.
//!
//! Nothing here touches a socket or a connection: the front reads and writes sockets with
//! these rules, the connection table encodes outgoing frames with them, and the imports and
//! admin API check close codes against them. Keeping the rules apart from I/O is also what
//! lets them be tested (and fuzzed) on bytes alone.

mod assembler;
mod close;
pub mod deflate;
mod frame;
mod opcode;
pub mod session;
mod text;

pub use assembler::{AssembleError, Assembled, Assembler, Message};
pub use close::{
    CloseCode, CloseFrameError, CloseRuleError, MAX_CLOSE_REASON, parse_close_payload,
    write_close_frame,
};
pub use frame::{
    Frame, FrameError, Header, MAX_CLIENT_HEADER, MAX_SERVER_HEADER, ServerHeader,
    decode_client_frame, decode_header, take_frame, unmask, unmask_from, write_frame,
};
pub use opcode::Opcode;
pub use text::truncate_utf8;
