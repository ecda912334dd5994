//! Server frames on the wire (RFC 6455 §5.2): opcodes and the header in front of a payload.
//! Server frames are never masked, so a header is all there is to encoding one.

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The longest header: two bytes and a 64-bit length.
pub const MAX_HEAD: usize = 10;

/// The header of a final, unmasked frame, in the shortest length form: the bytes and how many
/// of them are used.
pub fn head(opcode: u8, len: usize) -> ([u8; MAX_HEAD], usize) {
    let mut bytes = [0u8; MAX_HEAD];
    bytes[0] = 0x80 | opcode;
    if len < 126 {
        bytes[1] = len as u8;
        (bytes, 2)
    } else if let Ok(len) = u16::try_from(len) {
        bytes[1] = 126;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        (bytes, 4)
    } else {
        bytes[1] = 127;
        bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (bytes, 10)
    }
}
