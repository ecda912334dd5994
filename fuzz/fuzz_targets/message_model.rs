//! Structure-aware: a client's conversation as messages (fragmented at chosen points, text or
//! binary, compressed or not, with pings between fragments), close frames and broken frames,
//! written to the wire, read back by the host's decoder and assembler in chosen read sizes,
//! and compared with a model of what RFC 6455 and the README say must come out: the same
//! messages in the same order, a pong for every ping, and the connection ending with the
//! close code the model expects (1002 for a protocol error, 1007 for text that is not UTF-8
//! or an invalid close reason, 1009 over the size limit, the peer's own code echoed).
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsfn_fuzz::client_frame;
use wsfn_host::protocol::deflate::deflate;
use wsfn_host::protocol::{
    Assembled, Assembler, FrameError, Message, Opcode, decode_client_frame, parse_close_payload,
};

#[derive(Arbitrary, Debug)]
struct Conversation {
    /// The message size limit, 1 to 4096 bytes.
    max: u16,
    /// permessage-deflate was negotiated.
    compression: bool,
    /// Bytes the host reads at a time, 1 to 256.
    read_size: u8,
    mask: [u8; 4],
    events: Vec<Event>,
}

#[derive(Arbitrary, Debug)]
enum Event {
    Message {
        text: bool,
        compress: bool,
        content: Content,
        /// Where the frames end, as offsets into the payload on the wire.
        cuts: Vec<u16>,
        /// A ping after each of the first fragments.
        pings: u8,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Vec<u8>),
    Broken(Broken),
}

#[derive(Arbitrary, Debug)]
enum Content {
    Bytes(Vec<u8>),
    Text(String),
    Repeated { byte: u8, count: u16 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Broken {
    Unmasked,
    ReservedOpcode(u8),
    Rsv2,
    OrphanContinuation,
    FragmentedPing,
    LongPing,
    /// A new message while a fragmented one is unfinished.
    Interrupted,
    CompressedPing,
}

/// What the host did with the conversation.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: Vec<(bool, Vec<u8>)>,
    pongs: Vec<Vec<u8>>,
    /// The code the connection ended with; `None` when the bytes ran out first.
    ended: Option<Ending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Code(u16),
    /// A compressed message both too large and not UTF-8: which is met first depends on
    /// where deflate's blocks fall, so either code is right.
    TooLargeOrInvalid,
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Text(text) => text.as_bytes().to_vec(),
            Content::Repeated { byte, count } => vec![*byte; usize::from(*count) * 4],
        }
    }
}

fuzz_target!(|conversation: Conversation| {
    let max = 1 + usize::from(conversation.max % 4096);
    let (wire, expected) = write_and_model(&conversation, max);
    let read_size = 1 + usize::from(conversation.read_size);
    let got = read(&wire, max, conversation.compression, read_size);
    match (expected.ended, got.ended) {
        (Some(Ending::TooLargeOrInvalid), Some(Ending::Code(code))) => {
            assert!(code == 1007 || code == 1009, "ended with {code}");
            assert_eq!(
                (&expected.messages, &expected.pongs),
                (&got.messages, &got.pongs)
            );
        }
        _ => assert_eq!(expected, got),
    }
});

/// Writes the conversation as a client would and works out, apart from the host's code, what
/// the host must make of it.
fn write_and_model(conversation: &Conversation, max: usize) -> (Vec<u8>, Outcome) {
    let mask = conversation.mask;
    let mut wire = Vec::new();
    let mut outcome = Outcome {
        messages: Vec::new(),
        pongs: Vec::new(),
        ended: None,
    };
    for event in &conversation.events {
        let ended = match event {
            Event::Message {
                text,
                compress,
                content,
                cuts,
                pings,
            } => {
                let content = content.bytes();
                let compress = *compress;
                let payload = if compress {
                    deflate(&[&content], 15)
                } else {
                    content.clone()
                };
                let fragments = split(&payload, cuts);
                let (ended, answered) = model_message(
                    *text,
                    compress,
                    conversation.compression,
                    &content,
                    &fragments,
                    max,
                );
                // A ping follows each of the first fragments; where a compressed message
                // fails depends on deflate's blocks, so it carries none.
                let pings = match (compress, ended) {
                    (true, Some(_)) => 0,
                    _ => usize::from(*pings % 4),
                };
                let opcode = if *text { 0x1 } else { 0x2 };
                for (i, fragment) in fragments.iter().enumerate() {
                    let fin = if i + 1 == fragments.len() { 0x80 } else { 0 };
                    let rsv1 = if compress && i == 0 { 0x40 } else { 0 };
                    let code = if i == 0 { opcode } else { 0x0 };
                    client_frame(&mut wire, fin | rsv1 | code, fragment, mask);
                    if i + 1 < fragments.len() && i < pings {
                        client_frame(&mut wire, 0x89, &[i as u8], mask);
                        // Answered once the fragment before it was taken.
                        if i < answered {
                            outcome.pongs.push(vec![i as u8]);
                        }
                    }
                }
                if ended.is_none() {
                    outcome.messages.push((*text, content));
                }
                ended
            }
            Event::Ping(payload) | Event::Pong(payload) => {
                let ping = matches!(event, Event::Ping(_));
                client_frame(&mut wire, if ping { 0x89 } else { 0x8A }, payload, mask);
                // A control frame over 125 bytes breaks the protocol; one within it but over
                // the host's frame limit is too large, like any frame.
                if payload.len() > 125 {
                    Some(Ending::Code(1002))
                } else if payload.len() > max {
                    Some(Ending::Code(1009))
                } else {
                    if ping {
                        outcome.pongs.push(payload.clone());
                    }
                    None
                }
            }
            Event::Close(payload) => {
                client_frame(&mut wire, 0x88, payload, mask);
                let code = match model_close(payload) {
                    1002 if payload.len() > 125 => 1002,
                    _ if payload.len() > max => 1009,
                    code => code,
                };
                Some(Ending::Code(code))
            }
            Event::Broken(broken) => {
                write_broken(&mut wire, *broken, mask);
                Some(Ending::Code(1002))
            }
        };
        if ended.is_some() {
            outcome.ended = ended;
            break;
        }
    }
    (wire, outcome)
}

/// The fragments of a payload cut at the given offsets (at least one, maybe empty).
fn split<'a>(payload: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut offsets: Vec<usize> = cuts
        .iter()
        .take(8)
        .map(|&cut| usize::from(cut) % (payload.len() + 1))
        .collect();
    offsets.sort_unstable();
    let mut fragments = Vec::new();
    let mut start = 0;
    for offset in offsets {
        fragments.push(&payload[start..offset]);
        start = offset;
    }
    fragments.push(&payload[start..]);
    fragments
}

/// How a message ends the connection, if it does.
fn model_message(
    text: bool,
    compress: bool,
    negotiated: bool,
    content: &[u8],
    fragments: &[&[u8]],
    max: usize,
) -> (Option<Ending>, usize) {
    let all = fragments.len();
    if compress && !negotiated {
        return (Some(Ending::Code(1002)), 0);
    }
    if compress {
        // A frame over the limit is refused from its header; before it, inflating may
        // already have failed.
        let too_large = content.len() > max || fragments.iter().any(|f| f.len() > max);
        let invalid = text && std::str::from_utf8(content).is_err();
        let ended = match (too_large, invalid) {
            (true, true) => Some(Ending::TooLargeOrInvalid),
            (true, false) => Some(Ending::Code(1009)),
            (false, true) => Some(Ending::Code(1007)),
            (false, false) => None,
        };
        return (ended, all);
    }
    // Fragment by fragment: the limit on what arrived so far, then the text so far must be
    // UTF-8 but for a character the next fragment may finish.
    let mut received = 0;
    for (i, fragment) in fragments.iter().enumerate() {
        received += fragment.len();
        // A frame over the limit is refused from its header, the whole message from the
        // fragment that takes it over.
        if received > max {
            return (Some(Ending::Code(1009)), i);
        }
        if text
            && let Err(error) = std::str::from_utf8(&content[..received])
            && error.error_len().is_some()
        {
            return (Some(Ending::Code(1007)), i);
        }
    }
    if text && std::str::from_utf8(content).is_err() {
        return (Some(Ending::Code(1007)), all);
    }
    (None, all)
}

/// The code a close frame with this payload ends the connection with (RFC 6455 §7.4): the
/// peer's own, echoed; 1005 for none; 1002 for a malformed one, 1007 for a reason that is not
/// UTF-8.
fn model_close(payload: &[u8]) -> u16 {
    if payload.len() > 125 || payload.len() == 1 {
        return 1002;
    }
    if payload.is_empty() {
        return 1005;
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return 1002;
    }
    if std::str::from_utf8(&payload[2..]).is_err() {
        return 1007;
    }
    code
}

fn write_broken(wire: &mut Vec<u8>, broken: Broken, mask: [u8; 4]) {
    match broken {
        Broken::Unmasked => wire.extend_from_slice(&[0x81, 0x01, b'x']),
        Broken::ReservedOpcode(op) => {
            let op = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF][usize::from(op) % 10];
            client_frame(wire, 0x80 | op, b"", mask);
        }
        Broken::Rsv2 => client_frame(wire, 0xA2, b"x", mask),
        Broken::OrphanContinuation => client_frame(wire, 0x80, b"x", mask),
        Broken::FragmentedPing => client_frame(wire, 0x09, b"", mask),
        Broken::LongPing => client_frame(wire, 0x89, &[0; 126], mask),
        Broken::Interrupted => {
            client_frame(wire, 0x02, b"a", mask);
            client_frame(wire, 0x82, b"b", mask);
        }
        Broken::CompressedPing => client_frame(wire, 0xC9, b"", mask),
    }
}

/// What the host's decoder and assembler make of the bytes, handling each frame as the
/// front does.
fn read(wire: &[u8], max: usize, compression: bool, read_size: usize) -> Outcome {
    let mut outcome = Outcome {
        messages: Vec::new(),
        pongs: Vec::new(),
        ended: None,
    };
    let mut buffer = BytesMut::new();
    let mut assembler = Assembler::new(max);
    for read in wire.chunks(read_size) {
        buffer.extend_from_slice(read);
        loop {
            let frame = match decode_client_frame(&mut buffer, max, compression) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    let code = match error {
                        FrameError::Protocol(_) => 1002,
                        FrameError::TooLarge(_) => 1009,
                    };
                    outcome.ended = Some(Ending::Code(code));
                    return outcome;
                }
            };
            match frame.opcode {
                Opcode::Close => {
                    let code = match parse_close_payload(&frame.payload) {
                        Ok((code, _)) => code.0,
                        Err(malformed) => malformed.close_code().0,
                    };
                    outcome.ended = Some(Ending::Code(code));
                    return outcome;
                }
                Opcode::Ping => outcome.pongs.push(frame.payload.to_vec()),
                Opcode::Pong => {}
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    match assembler.push(&frame) {
                        Ok(Assembled::Partial) => continue,
                        Ok(Assembled::Complete(Message::Text(text))) => {
                            outcome.messages.push((true, text.as_bytes().to_vec()))
                        }
                        Ok(Assembled::Complete(Message::Binary(bytes))) => {
                            outcome.messages.push((false, bytes.to_vec()))
                        }
                        Err(error) => {
                            outcome.ended = Some(Ending::Code(error.close_code()));
                            return outcome;
                        }
                    }
                    assembler.reset();
                }
            }
        }
    }
    outcome
}
