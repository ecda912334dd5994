//! What a frame is (RFC 6455 §5.2): the opcodes a peer may send and the host writes.

/// The opcode of a frame. Reserved opcodes have no value: a frame carrying one is refused
/// when its header is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    /// The opcode in the low four bits of a frame's first byte, if it is not reserved.
    pub fn from_bits(bits: u8) -> Option<Self> {
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

    /// The four bits written in a frame's first byte.
    pub fn bits(self) -> u8 {
        self as u8
    }

    /// Control frames are at most 125 bytes and never fragmented (§5.5).
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

#[cfg(test)]
mod tests {
    use super::Opcode;

    #[test]
    fn every_opcode_round_trips_and_reserved_ones_have_none() {
        for bits in 0..16u8 {
            match Opcode::from_bits(bits) {
                Some(opcode) => assert_eq!(opcode.bits(), bits),
                None => assert!(matches!(bits, 0x3..=0x7 | 0xB..=0xF), "{bits:#x}"),
            }
        }
    }
}
