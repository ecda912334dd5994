//! The session protocol's frames, version 1: the type byte in front of every data frame and
//! the control messages `s`, `r`, `a` and `x`, read from and written to WebSocket messages.
//!
//! Pure functions over bytes, kept apart from the sockets so every rule of the specification
//! (type bytes, count syntax, the 64-byte limit on control messages) is checked in one place
//! and unit-tested without a host.

use bytes::Bytes;

use crate::transport::Data;

/// The type bytes.
const MESSAGE: u8 = b'm';
const STARTED: u8 = b's';
const RESUME: u8 = b'r';
const ACK: u8 = b'a';
const REFUSED: u8 = b'x';

/// The longest control message after its type byte.
const CONTROL_MAX: usize = 64;

/// How many hex digits a session id and a secret have.
const TOKEN_DIGITS: usize = 32;

/// What proves a session is ours: the connection id and the secret from the `s` frame.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl std::fmt::Debug for Ticket {
    // The secret stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("id", &self.id).finish()
    }
}

/// An application message received from the host, without its type byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Text(String),
    Binary(Bytes),
}

/// A data frame from the host on a session socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostFrame {
    /// `m`: an application message.
    Message(Payload),
    /// `s<id> <secret>`: a new session started.
    Started(Ticket),
    /// `r<handled>`: the resume was accepted; the replay follows.
    Resumed { handled: u64 },
    /// `a<handled>`: the function handled this many of the client's messages.
    Ack(u64),
    /// `x<reason>`: the resume was refused.
    Refused(String),
}

/// A data frame the specification does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("an empty frame")]
    Empty,
    #[error("a frame of unknown type {0:#04x}")]
    UnknownType(u8),
    #[error("a control message `{0}` in a binary frame")]
    BinaryControl(char),
    #[error("a control message of {0} bytes (at most 64 after the type byte)")]
    TooLong(usize),
    #[error("a malformed count {0:?}")]
    Count(String),
    #[error("a malformed session start {0:?}")]
    Start(String),
}

/// Reads a text data frame from the host; an application message keeps the text's buffer.
pub(crate) fn parse_text(mut text: String) -> Result<HostFrame, Malformed> {
    let Some(&kind) = text.as_bytes().first() else {
        return Err(Malformed::Empty);
    };
    if kind == MESSAGE {
        text.drain(..1);
        return Ok(HostFrame::Message(Payload::Text(text)));
    }
    if !matches!(kind, STARTED | RESUME | ACK | REFUSED) {
        return Err(Malformed::UnknownType(kind));
    }
    // The type byte is ASCII (checked just above), so slicing after it stays on a character
    // boundary.
    let rest = &text[1..];
    if kind == STARTED {
        // `s<id> <secret>` is 65 bytes after its type byte, one more than the protocol's
        // limit on control messages; its exact shape bounds it instead.
        return parse_ticket(rest).map(HostFrame::Started);
    }
    if rest.len() > CONTROL_MAX {
        return Err(Malformed::TooLong(rest.len()));
    }
    match kind {
        RESUME => parse_count(rest).map(|handled| HostFrame::Resumed { handled }),
        ACK => parse_count(rest).map(HostFrame::Ack),
        _ => Ok(HostFrame::Refused(rest.to_owned())),
    }
}

/// Reads a binary data frame from the host: only application messages may be binary.
pub(crate) fn parse_binary(bytes: &Bytes) -> Result<HostFrame, Malformed> {
    match bytes.first() {
        None => Err(Malformed::Empty),
        Some(&MESSAGE) => Ok(HostFrame::Message(Payload::Binary(bytes.slice(1..)))),
        Some(&kind @ (STARTED | RESUME | ACK | REFUSED)) => {
            Err(Malformed::BinaryControl(char::from(kind)))
        }
        Some(&kind) => Err(Malformed::UnknownType(kind)),
    }
}

/// A count: decimal ASCII, no sign, no leading zeros, below 2^64.
fn parse_count(text: &str) -> Result<u64, Malformed> {
    let malformed = || Malformed::Count(text.to_owned());
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return Err(malformed());
    }
    text.parse().map_err(|_| malformed())
}

fn parse_ticket(text: &str) -> Result<Ticket, Malformed> {
    let is_token = |token: &str| {
        token.len() == TOKEN_DIGITS && token.bytes().all(|byte| byte.is_ascii_hexdigit())
    };
    match text.split_once(' ') {
        Some((id, secret)) if is_token(id) && is_token(secret) => Ok(Ticket {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        _ => Err(Malformed::Start(text.to_owned())),
    }
}

/// An application text message as it goes on a session socket.
pub(crate) fn text_message(text: &str) -> Data {
    Data::Text(framed(text.as_bytes()))
}

/// An application binary message as it goes on a session socket.
pub(crate) fn binary_message(bytes: &[u8]) -> Data {
    Data::Binary(framed(bytes))
}

fn framed(payload: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(payload.len() + 1);
    framed.push(MESSAGE);
    framed.extend_from_slice(payload);
    Bytes::from(framed)
}

/// `a<received>`.
pub(crate) fn ack(received: u64) -> Data {
    Data::Text(Bytes::from(format!("a{received}")))
}

/// `r<secret> <received>`, the first frame on a resuming socket.
pub(crate) fn resume(ticket: &Ticket, received: u64) -> Data {
    Data::Text(Bytes::from(format!("r{} {received}", ticket.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: &str) -> Result<HostFrame, Malformed> {
        parse_text(frame.to_owned())
    }

    fn data_text(text: &str) -> Data {
        Data::Text(Bytes::from(text.to_owned()))
    }

    #[test]
    fn reads_every_kind_of_host_frame() {
        assert_eq!(
            text("mhello").unwrap(),
            HostFrame::Message(Payload::Text("hello".into()))
        );
        assert_eq!(
            text("m").unwrap(),
            HostFrame::Message(Payload::Text(String::new()))
        );
        let id = "0123456789abcdef0123456789ABCDEF";
        let secret = "f".repeat(32);
        assert_eq!(
            text(&format!("s{id} {secret}")).unwrap(),
            HostFrame::Started(Ticket {
                id: id.into(),
                secret: secret.clone()
            })
        );
        assert_eq!(text("r0").unwrap(), HostFrame::Resumed { handled: 0 });
        assert_eq!(
            text("a18446744073709551615").unwrap(),
            HostFrame::Ack(u64::MAX)
        );
        assert_eq!(
            text("xsecret").unwrap(),
            HostFrame::Refused("secret".into())
        );
        assert_eq!(
            parse_binary(&Bytes::from_static(b"m\x00\x01")).unwrap(),
            HostFrame::Message(Payload::Binary(Bytes::from_static(b"\x00\x01")))
        );
    }

    #[test]
    fn refuses_what_the_specification_does_not_allow() {
        assert_eq!(text(""), Err(Malformed::Empty));
        assert_eq!(text("hello"), Err(Malformed::UnknownType(b'h')));
        assert_eq!(
            text("é"),
            Err(Malformed::UnknownType(0xc3)),
            "not sliced inside a character"
        );
        for count in [
            "a",
            "a01",
            "a-1",
            "a+1",
            "a1 ",
            "a18446744073709551616",
            "ax",
        ] {
            assert!(matches!(text(count), Err(Malformed::Count(_))), "{count}");
        }
        assert!(matches!(
            text(&format!("x{}", "y".repeat(65))),
            Err(Malformed::TooLong(65))
        ));
        assert!(matches!(text("sabc def"), Err(Malformed::Start(_))));
        assert!(matches!(
            text(&format!("s{}", "a".repeat(32))),
            Err(Malformed::Start(_))
        ));
        let not_hex = format!("s{} {}", "g".repeat(32), "a".repeat(32));
        assert!(matches!(text(&not_hex), Err(Malformed::Start(_))));
        assert_eq!(parse_binary(&Bytes::new()), Err(Malformed::Empty));
        assert_eq!(
            parse_binary(&Bytes::from_static(b"a1")),
            Err(Malformed::BinaryControl('a'))
        );
        assert_eq!(
            parse_binary(&Bytes::from_static(b"\xff")),
            Err(Malformed::UnknownType(0xff))
        );
    }

    #[test]
    fn writes_messages_with_their_type_byte() {
        assert_eq!(text_message("hi"), data_text("mhi"));
        assert_eq!(
            binary_message(&[1, 2]),
            Data::Binary(Bytes::from_static(&[b'm', 1, 2]))
        );
        assert_eq!(ack(32), data_text("a32"));
        let ticket = Ticket {
            id: "i".into(),
            secret: "s3cret".into(),
        };
        assert_eq!(resume(&ticket, 7), data_text("rs3cret 7"));
        assert!(!format!("{ticket:?}").contains("s3cret"));
    }
}
