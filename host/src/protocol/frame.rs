//! Frames on the wire (RFC 6455 §5.2): decoding the frames a client sends, and the header in
//! front of a frame the host sends.
//!
//! Decoding enforces every rule a server must check on a header before it replies to the
//! frame: client frames are masked (§5.1), reserved bits and opcodes are refused (§5.2),
//! control frames are at most 125 bytes and never fragmented (§5.5), and a frame over the
//! host's limit is refused from its header alone, before its payload is buffered. Server
//! frames are never masked, so encoding one is a header in front of the payload.

use bytes::{Buf, BytesMut};

use super::opcode::Opcode;

/// The longest header a client sends: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_CLIENT_HEADER: usize = 14;
/// The longest header the host writes: 2 bytes and a 64-bit length.
pub const MAX_SERVER_HEADER: usize = 10;

/// One decoded, unmasked client frame.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    /// RSV1: the message this frame begins is compressed (permessage-deflate).
    pub compressed: bool,
    pub payload: BytesMut,
}

/// Why a client's frame ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer broke a rule of the protocol; close with 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A frame is larger than the host accepts; close with 1009.
    #[error("frame larger than {0} bytes")]
    TooLarge(usize),
}

/// A client frame's header, decoded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    /// RSV1: the message this frame begins is compressed (permessage-deflate).
    pub compressed: bool,
    /// Bytes of the header, mask included.
    pub len: usize,
    pub payload_len: usize,
    pub mask: [u8; 4],
}

/// Decodes and checks the header at the front of `buffer`, or returns `None` when it is not
/// all there yet. With `compression` (permessage-deflate negotiated), RSV1 may mark the first
/// frame of a data message as compressed (RFC 7692 §6); the other reserved bits are always
/// refused. A frame over `max_frame` is refused from its header alone.
pub fn decode_header(
    buffer: &[u8],
    max_frame: usize,
    compression: bool,
) -> Result<Option<Header>, FrameError> {
    let [first, second, ..] = buffer[..] else {
        return Ok(None);
    };
    let compressed = first & 0x40 != 0;
    if first & 0x30 != 0 || (compressed && !compression) {
        return Err(FrameError::Protocol(
            "reserved bits set without a negotiated extension",
        ));
    }
    let opcode = Opcode::from_bits(first & 0x0F).ok_or(FrameError::Protocol("reserved opcode"))?;
    if compressed && opcode.is_control() {
        return Err(FrameError::Protocol("a compressed control frame"));
    }
    if compressed && opcode == Opcode::Continuation {
        return Err(FrameError::Protocol("RSV1 set on a continuation frame"));
    }
    let fin = first & 0x80 != 0;
    if second & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let (length_bytes, short_length) = match second & 0x7F {
        126 => (2, None),
        127 => (8, None),
        length => (0, Some(u64::from(length))),
    };
    let len = 2 + length_bytes + 4;
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
                return Err(FrameError::Protocol(
                    "frame length with the most significant bit set",
                ));
            }
            length
        }
    };
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if length > 125 {
            return Err(FrameError::Protocol("control frame payload over 125 bytes"));
        }
    }
    let payload_len = usize::try_from(length).map_err(|_| FrameError::TooLarge(max_frame))?;
    if payload_len > max_frame {
        return Err(FrameError::TooLarge(max_frame));
    }
    if buffer.len() < len {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buffer[len - 4..len]);
    Ok(Some(Header {
        fin,
        opcode,
        compressed,
        len,
        payload_len,
        mask,
    }))
}

/// Takes the frame `header` describes off the front of `buffer`, which holds all of it; the
/// first `unmasked` payload bytes were unmasked in place already.
pub fn take_frame(buffer: &mut BytesMut, header: &Header, unmasked: usize) -> Frame {
    buffer.advance(header.len);
    let mut payload = buffer.split_to(header.payload_len);
    let unmasked = unmasked.min(payload.len());
    unmask_from(&mut payload[unmasked..], header.mask, unmasked);
    Frame {
        fin: header.fin,
        opcode: header.opcode,
        compressed: header.compressed,
        payload,
    }
}

/// Takes one complete frame off the front of `buffer`, or returns `None` (having reserved
/// room for the rest) when it is not all there yet. Nothing is taken until the whole frame
/// is there, so a caller may stop reading at any point without losing a frame.
pub fn decode_client_frame(
    buffer: &mut BytesMut,
    max_frame: usize,
    compression: bool,
) -> Result<Option<Frame>, FrameError> {
    let Some(header) = decode_header(buffer, max_frame, compression)? else {
        return Ok(None);
    };
    let total = header.len + header.payload_len;
    if buffer.len() < total {
        // Room for the rest of this frame and the next header, so it arrives in few reads.
        buffer.reserve(total + MAX_CLIENT_HEADER - buffer.len());
        return Ok(None);
    }
    Ok(Some(take_frame(buffer, &header, 0)))
}

/// Unmasks payload bytes that start `offset` bytes into the payload.
pub fn unmask_from(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let rotated = [
        mask[offset % 4],
        mask[(offset + 1) % 4],
        mask[(offset + 2) % 4],
        mask[(offset + 3) % 4],
    ];
    unmask(payload, rotated);
}

/// XORs the payload with the masking key, eight bytes at a time where it can.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
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

/// The header of a final, unmasked frame the host sends, in the shortest length form.
#[derive(Debug, Clone, Copy)]
pub struct ServerHeader {
    bytes: [u8; MAX_SERVER_HEADER],
    used: usize,
}

impl ServerHeader {
    pub fn new(opcode: Opcode, len: usize) -> Self {
        Self::with_rsv1(opcode, len, false)
    }

    /// The header of a message compressed with permessage-deflate (RSV1 set) when
    /// `compressed`.
    pub fn with_rsv1(opcode: Opcode, len: usize, compressed: bool) -> Self {
        let mut bytes = [0u8; MAX_SERVER_HEADER];
        bytes[0] = 0x80 | if compressed { 0x40 } else { 0 } | opcode.bits();
        let used = if len < 126 {
            bytes[1] = len as u8;
            2
        } else if let Ok(len) = u16::try_from(len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&len.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        Self { bytes, used }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.used]
    }
}

/// Appends a whole server frame: header and payload.
pub fn write_frame(buffer: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    buffer.extend_from_slice(ServerHeader::new(opcode, payload.len()).as_bytes());
    buffer.extend_from_slice(payload);
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

    fn decode_all(bytes: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
        decode_client_frame(&mut BytesMut::from(bytes), max, false)
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
            let frame = decode_client_frame(&mut buffer, 1024, false).unwrap();
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
                Err(FrameError::Protocol(got)) => assert_eq!(got, reason),
                other => panic!("expected a protocol error ({reason}), got {other:?}"),
            }
        }
    }

    #[test]
    fn rsv1_marks_a_compressed_message_only_where_negotiated_and_allowed() {
        let decode = |first: u8, compression: bool| {
            decode_client_frame(
                &mut BytesMut::from(&masked(first, b"x")[..]),
                64,
                compression,
            )
        };
        let frame = decode(0xC1, true).unwrap().unwrap();
        assert!(frame.compressed && frame.opcode == Opcode::Text);
        assert!(!decode(0x81, true).unwrap().unwrap().compressed);
        let refused = |first: u8, compression: bool| match decode(first, compression) {
            Err(FrameError::Protocol(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            refused(0xC1, false),
            "reserved bits set without a negotiated extension"
        );
        assert_eq!(
            refused(0xA1, true),
            "reserved bits set without a negotiated extension"
        );
        assert_eq!(
            refused(0x91, true),
            "reserved bits set without a negotiated extension"
        );
        assert_eq!(refused(0xC9, true), "a compressed control frame");
        assert_eq!(refused(0xC0, true), "RSV1 set on a continuation frame");
    }

    #[test]
    fn refuses_frames_over_the_limit_from_the_header_alone() {
        let header = &masked(0x82, &[0; 2000])[..8];
        assert_eq!(
            decode_all(header, 1000).err(),
            Some(FrameError::TooLarge(1000))
        );
    }

    #[test]
    fn a_payload_unmasked_in_pieces_is_the_payload() {
        let payload: Vec<u8> = (0..100).map(|i| i as u8).collect();
        let mut data: Vec<u8> = masked(0x82, &payload)[6..].to_vec();
        let (head, tail) = data.split_at_mut(37);
        unmask_from(head, MASK, 0);
        unmask_from(tail, MASK, 37);
        assert_eq!(data, payload);
        let bytes = masked(0x82, &payload);
        let mut buffer = BytesMut::from(&bytes[..]);
        let header = decode_header(&buffer, 1024, false).unwrap().unwrap();
        unmask_from(&mut buffer[header.len..header.len + 10], header.mask, 0);
        let frame = take_frame(&mut buffer, &header, 10);
        assert_eq!(&frame.payload[..], &payload[..]);
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

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        assert_eq!(ServerHeader::new(Opcode::Text, 5).as_bytes(), [0x81, 5]);
        assert_eq!(
            ServerHeader::new(Opcode::Binary, 300).as_bytes(),
            [0x82, 126, 1, 44]
        );
        assert_eq!(
            ServerHeader::new(Opcode::Binary, 70_000).as_bytes(),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(
            ServerHeader::with_rsv1(Opcode::Text, 5, true).as_bytes(),
            [0xC1, 5]
        );
    }
}
