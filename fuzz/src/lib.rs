//! What the fuzz targets share: writing client frames as a client puts them on the wire, and
//! reading a server's frames back.

/// Appends a masked client frame: `first` is the first header byte (FIN, RSV, opcode).
pub fn client_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// One frame the host wrote: FIN, RSV1, opcode and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Takes the next whole server frame off the front of `buffer`, if it is all there.
/// Server frames are never masked; a masked one is a failure of the host.
pub fn take_server_frame(buffer: &mut Vec<u8>) -> Option<ServerFrame> {
    let [first, second, ..] = buffer[..] else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "the host masked a frame");
    let (start, len) = match second & 0x7F {
        126 if buffer.len() >= 4 => (4, u64::from(u16::from_be_bytes([buffer[2], buffer[3]]))),
        127 if buffer.len() >= 10 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buffer[2..10]);
            (10, u64::from_be_bytes(bytes))
        }
        126 | 127 => return None,
        n => (2, u64::from(n)),
    };
    let end = start + usize::try_from(len).ok()?;
    if buffer.len() < end {
        return None;
    }
    let frame = ServerFrame {
        fin: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        opcode: first & 0x0F,
        payload: buffer[start..end].to_vec(),
    };
    buffer.drain(..end);
    Some(frame)
}
