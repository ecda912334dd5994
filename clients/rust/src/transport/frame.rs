//! The frame header of RFC 6455 §5.2, read from what the server sends and written in front of
//! what the client sends, and the rules a single header must follow on its own (RFC 6455
//! §5.1–§5.5). Rules that span frames (fragments, message sizes) belong to the connection.
//!
//! Pure functions over byte slices: the header is the part of the protocol with the most bit
//! twiddling, so it is kept where it can be tested byte by byte.

use super::error::Violation;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The header of a frame from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed.
    pub(crate) compressed: bool,
    pub(crate) opcode: OpCode,
    /// How many bytes the header took.
    pub(crate) header_len: usize,
    pub(crate) payload_len: u64,
}

/// The most a control frame may carry (RFC 6455 §5.5).
pub(crate) const CONTROL_MAX: usize = 125;

/// The longest header the client writes: 2 bytes, an 8-byte length, a 4-byte mask.
pub(crate) const MAX_HEADER: usize = 14;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2_RSV3: u8 = 0x30;
const MASKED: u8 = 0x80;

/// Reads a server frame's header from the front of `bytes`: `None` until all of it is there.
/// `rsv1_allowed` says whether permessage-deflate was negotiated.
pub(crate) fn read_header(bytes: &[u8], rsv1_allowed: bool) -> Result<Option<Header>, Violation> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    let opcode = OpCode::from_bits(first & 0x0F).ok_or(Violation::Opcode(first & 0x0F))?;
    let fin = first & FIN != 0;
    let compressed = first & RSV1 != 0;
    if first & RSV2_RSV3 != 0 || (compressed && !rsv1_allowed) {
        return Err(Violation::ReservedBits);
    }
    // Only a data message's first frame may say it is compressed (RFC 7692 §6.1).
    if compressed && (opcode.is_control() || opcode == OpCode::Continuation) {
        return Err(Violation::ReservedBits);
    }
    if second & MASKED != 0 {
        return Err(Violation::MaskedByServer);
    }
    let (header_len, payload_len) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[high, low]) => (4, u64::from(u16::from_be_bytes([high, low]))),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(length) => (10, u64::from_be_bytes(length)),
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    if payload_len >> 63 != 0 {
        return Err(Violation::Length);
    }
    if opcode.is_control() && (!fin || payload_len > CONTROL_MAX as u64) {
        return Err(Violation::Control);
    }
    Ok(Some(Header {
        fin,
        compressed,
        opcode,
        header_len,
        payload_len,
    }))
}

/// Appends the header of a client frame (masked, with `mask`) carrying `payload_len` bytes.
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    opcode: OpCode,
    compressed: bool,
    payload_len: usize,
    mask: [u8; 4],
) {
    let mut first = FIN | opcode.bits();
    if compressed {
        first |= RSV1;
    }
    out.push(first);
    match payload_len {
        0..=125 => out.push(MASKED | payload_len as u8),
        126..=0xFFFF => {
            out.push(MASKED | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(MASKED | 127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> Header {
        read_header(bytes, true).unwrap().unwrap()
    }

    #[test]
    fn reads_each_length_encoding() {
        let short = header(&[0x81, 5, b'h']);
        assert_eq!(
            (short.opcode, short.fin, short.header_len),
            (OpCode::Text, true, 2)
        );
        assert_eq!(short.payload_len, 5);
        let medium = header(&[0x02, 126, 0x01, 0x00]);
        assert_eq!((medium.opcode, medium.fin), (OpCode::Binary, false));
        assert_eq!((medium.header_len, medium.payload_len), (4, 256));
        let long = header(&[0x80, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((long.opcode, long.header_len), (OpCode::Continuation, 10));
        assert_eq!(long.payload_len, 65_536);
        assert!(header(&[0xC1, 3]).compressed);
    }

    #[test]
    fn waits_for_the_whole_header() {
        for partial in [
            &[][..],
            &[0x81],
            &[0x82, 126, 1],
            &[0x82, 127, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(read_header(partial, true), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn refuses_headers_the_rfcs_forbid() {
        let refused = |bytes: &[u8], deflate: bool| read_header(bytes, deflate).unwrap_err();
        assert_eq!(refused(&[0x83, 0], true), Violation::Opcode(3));
        assert_eq!(refused(&[0x8B, 0], true), Violation::Opcode(0xB));
        assert_eq!(refused(&[0xA1, 0], true), Violation::ReservedBits, "RSV2");
        assert_eq!(refused(&[0x91, 0], true), Violation::ReservedBits, "RSV3");
        assert_eq!(
            refused(&[0xC1, 0], false),
            Violation::ReservedBits,
            "RSV1 without deflate"
        );
        assert_eq!(
            refused(&[0xC9, 0], true),
            Violation::ReservedBits,
            "a compressed ping"
        );
        assert_eq!(
            refused(&[0xC0, 0], true),
            Violation::ReservedBits,
            "a compressed continuation"
        );
        assert_eq!(
            refused(&[0x81, 0x81, 1, 2, 3, 4], true),
            Violation::MaskedByServer
        );
        assert_eq!(
            refused(&[0x09, 0], true),
            Violation::Control,
            "a fragmented ping"
        );
        assert_eq!(
            refused(&[0x89, 126, 0, 126], true),
            Violation::Control,
            "a long ping"
        );
        let huge = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(refused(&huge, true), Violation::Length);
    }

    #[test]
    fn writes_masked_headers_with_the_shortest_length() {
        let mask = [1, 2, 3, 4];
        let written = |opcode, compressed, len| {
            let mut out = Vec::new();
            write_header(&mut out, opcode, compressed, len, mask);
            out
        };
        assert_eq!(written(OpCode::Text, false, 5), [0x81, 0x85, 1, 2, 3, 4]);
        assert_eq!(written(OpCode::Binary, true, 125), [0xC2, 0xFD, 1, 2, 3, 4]);
        assert_eq!(
            written(OpCode::Text, false, 126),
            [0x81, 0xFE, 0, 126, 1, 2, 3, 4]
        );
        assert_eq!(
            written(OpCode::Close, false, 65_536),
            [0x88, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]
        );
        assert!(written(OpCode::Ping, false, 0).len() <= MAX_HEADER);
    }
}
