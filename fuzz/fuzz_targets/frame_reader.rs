//! Raw bytes from a client, as the front reads them: frames decoded from a buffer that fills
//! a few bytes at a time, data frames assembled into messages (inflated when compressed),
//! control frames answered, session messages parsed. The first three bytes choose the
//! message size limit, compression, sessions and the size of each read.
//!
//! Asserted beyond "no panic": no frame or message is larger than the limit, a text message
//! is UTF-8, control frames are at most 125 bytes, and every way the connection ends is
//! reported with a close code from the documented set.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsfn_host::protocol::session::{ClientFrame, parse_client_frame};
use wsfn_host::protocol::{
    Assembled, Assembler, CloseCode, FrameError, Message, Opcode, decode_client_frame,
    parse_close_payload,
};

/// The codes the host ends a connection with after reading a frame.
const HOST_CODES: [u16; 3] = [1002, 1007, 1009];

fuzz_target!(|data: &[u8]| {
    let [a, b, flags, input @ ..] = data else {
        return;
    };
    let max = 1 + usize::from(u16::from_le_bytes([*a, *b]));
    let compression = flags & 1 != 0;
    let session = flags & 2 != 0;
    let read_size = 1 + usize::from(flags >> 2);
    let mut buffer = BytesMut::new();
    let mut assembler = Assembler::new(max);
    for read in input.chunks(read_size) {
        buffer.extend_from_slice(read);
        loop {
            let frame = match decode_client_frame(&mut buffer, max, compression) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(FrameError::Protocol(_)) => return,
                Err(FrameError::TooLarge(limit)) => {
                    assert_eq!(limit, max);
                    return;
                }
            };
            assert!(frame.payload.len() <= max, "a frame over the limit");
            match frame.opcode {
                Opcode::Close => {
                    assert!(frame.payload.len() <= 125);
                    match parse_close_payload(&frame.payload) {
                        Ok((code, _)) => assert!(
                            code == CloseCode::NO_STATUS || code.is_valid_from_peer(),
                            "close code {} echoed",
                            code.0
                        ),
                        Err(error) => assert!(HOST_CODES.contains(&error.close_code().0)),
                    }
                    return;
                }
                Opcode::Ping | Opcode::Pong => assert!(frame.payload.len() <= 125 && frame.fin),
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    match assembler.push(&frame) {
                        Ok(Assembled::Partial) => continue,
                        Ok(Assembled::Complete(message)) => {
                            let (bytes, text) = match message {
                                Message::Text(text) => (text.as_bytes(), true),
                                Message::Binary(bytes) => (bytes, false),
                            };
                            assert!(bytes.len() <= max, "a message over the limit");
                            if session {
                                check_session_frame(bytes, text);
                            }
                        }
                        Err(error) => {
                            assert!(HOST_CODES.contains(&error.close_code()));
                            return;
                        }
                    }
                    assembler.reset();
                }
            }
        }
    }
});

fn check_session_frame(bytes: &[u8], text: bool) {
    match parse_client_frame(bytes, text) {
        Ok(ClientFrame::Message(rest)) => assert_eq!(&bytes[1..], rest),
        Ok(ClientFrame::Ack(count)) => assert_eq!(bytes, format!("a{count}").as_bytes()),
        Ok(ClientFrame::Resume { secret, received }) => {
            assert_eq!(bytes, format!("r{secret} {received}").as_bytes())
        }
        Err(_) => {}
    }
}
