//! The resumable-session protocol, version 1, as frames: what each data frame on a session
//! socket means, and the control messages either side sends. README.md ("Resumable sessions")
//! is the specification; this module reads and writes it and nothing else.
//!
//! On a session socket every data frame begins with one byte naming what it is: `m` for an
//! application message (the rest of the frame, text or binary as the frame is), or a control
//! message, always a text frame: `s` (session started), `r` (resume / resumed), `a`
//! (acknowledgement) and `x` (resume refused). One byte is all a message pays, and nothing
//! an application sends can be mistaken for a control message.

use std::fmt::Write as _;

/// The value of `wsfn-session` that asks for this version.
pub const SESSION_VERSION: &str = "1";
/// The query parameter that asks for a session.
pub const SESSION_PARAM: &str = "wsfn-session";
/// The query parameter that names the session to resume.
pub const RESUME_PARAM: &str = "wsfn-resume";

/// The type byte of an application message.
pub const MESSAGE: u8 = b'm';

/// Longest control message either side sends: `r`, a 32-digit secret, a space and a 20-digit
/// count, with room to spare; anything longer is malformed.
pub const MAX_CONTROL: usize = 64;

/// A data frame on a session socket, as the client sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// An application message (the type byte removed).
    Message(&'a [u8]),
    /// `a<received>`: the client has received this many messages in all.
    Ack(u64),
    /// `r<secret> <received>`: the first frame on a socket resuming a session.
    Resume { secret: &'a str, received: u64 },
}

/// Why a frame on a session socket breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionFrameError {
    #[error("an empty frame on a session")]
    Empty,
    #[error("a frame of unknown type on a session")]
    UnknownType,
    #[error("a malformed session control message")]
    Malformed,
    #[error("a control message in a binary frame")]
    BinaryControl,
}

/// Reads a whole message from a session client. `text` says whether it came in text frames
/// (control messages always do).
pub fn parse_client_frame(
    payload: &[u8],
    text: bool,
) -> Result<ClientFrame<'_>, SessionFrameError> {
    let (&kind, rest) = payload.split_first().ok_or(SessionFrameError::Empty)?;
    if kind == MESSAGE {
        return Ok(ClientFrame::Message(rest));
    }
    if !matches!(kind, b'a' | b'r') {
        return Err(SessionFrameError::UnknownType);
    }
    if !text {
        return Err(SessionFrameError::BinaryControl);
    }
    if rest.len() > MAX_CONTROL {
        return Err(SessionFrameError::Malformed);
    }
    let rest = std::str::from_utf8(rest).map_err(|_| SessionFrameError::Malformed)?;
    match kind {
        b'a' => Ok(ClientFrame::Ack(count(rest)?)),
        _ => {
            let (secret, received) = rest.split_once(' ').ok_or(SessionFrameError::Malformed)?;
            if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SessionFrameError::Malformed);
            }
            Ok(ClientFrame::Resume {
                secret,
                received: count(received)?,
            })
        }
    }
}

/// A count: decimal digits, no sign, no leading zero (except `0` itself), fits in 64 bits.
fn count(text: &str) -> Result<u64, SessionFrameError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(SessionFrameError::Malformed);
    }
    text.parse().map_err(|_| SessionFrameError::Malformed)
}

/// A control message the host sends, as the text of its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostControl<'a> {
    /// `s<id> <secret>`: a new session; the first frame on its socket.
    Started { id: &'a str, secret: &'a str },
    /// `r<handled>`: the session resumed; the function has handled this many of the client's
    /// messages. The first frame on the resuming socket; the replay follows.
    Resumed { handled: u64 },
    /// `a<handled>`: the function has handled this many of the client's messages.
    Ack { handled: u64 },
    /// `x<reason>`: the resume is refused; the host closes the socket next.
    Refused { reason: Refusal },
}

/// Why a resume is refused, as the word the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such session here: it never existed, it ended, it expired or it overflowed.
    Unknown,
    /// The secret is not the session's.
    Secret,
    /// The session belongs to another function.
    Function,
    /// The protocol version asked for is not spoken here.
    Version,
    /// The first frame was not a resume request.
    Malformed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Secret => "secret",
            Refusal::Function => "function",
            Refusal::Version => "version",
            Refusal::Malformed => "malformed",
        }
    }
}

impl HostControl<'_> {
    /// The frame's text.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(24);
        // Writing to a String cannot fail.
        let _ = match self {
            HostControl::Started { id, secret } => write!(text, "s{id} {secret}"),
            HostControl::Resumed { handled } => write!(text, "r{handled}"),
            HostControl::Ack { handled } => write!(text, "a{handled}"),
            HostControl::Refused { reason } => write!(text, "x{}", reason.as_str()),
        };
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_bytes_after_the_type() {
        assert_eq!(
            parse_client_frame(b"mhello", true),
            Ok(ClientFrame::Message(b"hello"))
        );
        assert_eq!(
            parse_client_frame(&[b'm', 0, 255], false),
            Ok(ClientFrame::Message(&[0, 255]))
        );
        assert_eq!(
            parse_client_frame(b"m", true),
            Ok(ClientFrame::Message(b""))
        );
    }

    #[test]
    fn control_messages_are_read_strictly() {
        assert_eq!(parse_client_frame(b"a0", true), Ok(ClientFrame::Ack(0)));
        assert_eq!(parse_client_frame(b"a42", true), Ok(ClientFrame::Ack(42)));
        assert_eq!(
            parse_client_frame(b"rab12 7", true),
            Ok(ClientFrame::Resume {
                secret: "ab12",
                received: 7
            })
        );
        for bad in [
            &b"a"[..],
            b"a-1",
            b"a007",
            b"a1 ",
            b"a18446744073709551616",
            b"r 7",
            b"rab12",
            b"rzz 7",
            b"rab12 x",
        ] {
            assert_eq!(
                parse_client_frame(bad, true),
                Err(SessionFrameError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_client_frame(b"", true), Err(SessionFrameError::Empty));
        assert_eq!(
            parse_client_frame(b"hello", true),
            Err(SessionFrameError::UnknownType)
        );
        assert_eq!(
            parse_client_frame(b"a1", false),
            Err(SessionFrameError::BinaryControl)
        );
        let long = format!("a{}", "1".repeat(MAX_CONTROL + 1));
        assert_eq!(
            parse_client_frame(long.as_bytes(), true),
            Err(SessionFrameError::Malformed)
        );
    }

    #[test]
    fn host_control_messages_are_one_letter_and_their_fields() {
        let started = HostControl::Started {
            id: "0011",
            secret: "ff",
        };
        assert_eq!(started.encode(), "s0011 ff");
        assert_eq!(HostControl::Resumed { handled: 3 }.encode(), "r3");
        assert_eq!(HostControl::Ack { handled: 0 }.encode(), "a0");
        let refused = HostControl::Refused {
            reason: Refusal::Secret,
        };
        assert_eq!(refused.encode(), "xsecret");
    }
}
