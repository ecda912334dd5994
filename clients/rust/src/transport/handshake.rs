//! The opening handshake (RFC 6455 §4.1): the client's upgrade request, and checking the
//! server's answer: 101, the upgrade headers, the accept key derived from ours, a subprotocol
//! we offered, and the extensions (only permessage-deflate, only if offered).
//!
//! Pure functions over bytes; the connection writes the request and feeds the answer in as it
//! arrives, so the bytes after the answer (the server's first frames) stay where it can read
//! them.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

use super::deflate::{self, Agreement};
use super::url::WsUrl;

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The longest answer read; a server sending more is not answering a WebSocket handshake.
const ANSWER_MAX: usize = 16 * 1024;

/// Headers the client writes itself; `Sec-WebSocket-Protocol` comes from the offered
/// subprotocols. `Host` may be replaced.
const OWN_HEADERS: [&str; 6] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("the header {name}: {value} cannot be sent: {reason}")]
    Header {
        name: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// An answer that is not a WebSocket handshake's.
    #[error("{0}")]
    Invalid(String),
}

/// What the client asks for, besides the URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer<'a> {
    pub(crate) protocols: &'a [String],
    pub(crate) headers: &'a [(String, String)],
    pub(crate) deflate: bool,
}

/// What the server's answer settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// How many bytes the answer took; frames follow.
    pub(crate) len: usize,
    pub(crate) protocol: Option<String>,
    pub(crate) deflate: Option<Agreement>,
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub(crate) fn new_key() -> String {
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        // Without the system's source the key needs only to vary (RFC 6455 §4.1).
        nonce.fill_with(|| fastrand::u8(..));
    }
    data_encoding::BASE64.encode(&nonce)
}

/// The request for `url` with `key`; refuses headers that are not valid HTTP or that the
/// handshake sets itself.
pub(crate) fn request(
    url: &WsUrl,
    key: &str,
    offer: &Offer<'_>,
) -> Result<Vec<u8>, HandshakeError> {
    let mut out = String::with_capacity(256);
    let host_given = offer
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"));
    // Writing to a String cannot fail.
    let _ = write!(out, "GET {} HTTP/1.1\r\n", url.resource);
    if !host_given {
        let _ = write!(out, "Host: {}\r\n", url.authority);
    }
    out.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    let _ = write!(out, "Sec-WebSocket-Key: {key}\r\n");
    if !offer.protocols.is_empty() {
        let offered = offer.protocols.join(", ");
        check_header("Sec-WebSocket-Protocol", &offered)?;
        let _ = write!(out, "Sec-WebSocket-Protocol: {offered}\r\n");
    }
    if offer.deflate {
        let _ = write!(out, "Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER);
    }
    for (name, value) in offer.headers {
        if OWN_HEADERS.iter().any(|own| name.eq_ignore_ascii_case(own)) {
            return Err(HandshakeError::Header {
                name: name.clone(),
                value: value.clone(),
                reason: "the client sets it itself".to_owned(),
            });
        }
        check_header(name, value)?;
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// A header name must be an HTTP token; a value visible ASCII, spaces and tabs (so nothing can
/// end the line early).
fn check_header(name: &str, value: &str) -> Result<(), HandshakeError> {
    let refuse = |reason: &str| HandshakeError::Header {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(refuse("the name is not an HTTP token"));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(refuse(
            "the value holds a control character or non-ASCII byte",
        ));
    }
    Ok(())
}

/// Reads the server's answer from the front of `bytes`: `Ok(None)` until all of it is there.
pub(crate) fn read_answer(
    bytes: &[u8],
    key: &str,
    offer: &Offer<'_>,
) -> Result<Option<Answer>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() < ANSWER_MAX => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(invalid("an answer over 16 KiB without its end"));
        }
        Err(error) => {
            return Err(HandshakeError::Invalid(format!(
                "a malformed answer: {error}"
            )));
        }
    };
    match response.code {
        Some(101) => {}
        Some(status) => return Err(HandshakeError::Status(status)),
        None => return Err(invalid("an answer without a status")),
    }
    let headers = &*response.headers;
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| {
                std::str::from_utf8(header.value)
                    .unwrap_or("\u{fffd}")
                    .trim()
            })
    };
    if !values("upgrade").any(|value| value.eq_ignore_ascii_case("websocket")) {
        return Err(invalid("a 101 without `Upgrade: websocket`"));
    }
    let upgrade_token = |value: &str| {
        value
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    };
    if !values("connection").any(upgrade_token) {
        return Err(invalid("a 101 without `Connection: Upgrade`"));
    }
    if values("sec-websocket-accept").collect::<Vec<_>>() != [accept_key(key).as_str()] {
        return Err(invalid(
            "a 101 whose Sec-WebSocket-Accept does not match the key",
        ));
    }
    let protocol = chosen_protocol(values("sec-websocket-protocol").collect(), offer)?;
    let extensions: Vec<&str> = values("sec-websocket-extensions").collect();
    let deflate = match (extensions.is_empty(), offer.deflate) {
        (true, _) => None,
        (false, false) => return Err(invalid("extensions in the answer, none offered")),
        (false, true) => Some(
            deflate::agreement::accept(&extensions.join(", ")).map_err(HandshakeError::Invalid)?,
        ),
    };
    Ok(Some(Answer {
        len,
        protocol,
        deflate,
    }))
}

/// The subprotocol the server chose: none, or one of those offered. (A server may choose
/// none of them; then the function decided to speak without one.)
fn chosen_protocol(
    answered: Vec<&str>,
    offer: &Offer<'_>,
) -> Result<Option<String>, HandshakeError> {
    match answered.as_slice() {
        [] => Ok(None),
        [chosen] if offer.protocols.iter().any(|p| p == chosen) => Ok(Some((*chosen).to_owned())),
        _ => Err(HandshakeError::Invalid(format!(
            "the server chose the subprotocol {answered:?}, which was not offered"
        ))),
    }
}

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and the GUID.
fn accept_key(key: &str) -> String {
    let mut hash = Sha1::new();
    hash.update(key.as_bytes());
    hash.update(ACCEPT_GUID.as_bytes());
    data_encoding::BASE64.encode(&hash.finalize())
}

fn invalid(what: &str) -> HandshakeError {
    HandshakeError::Invalid(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn url() -> WsUrl {
        WsUrl::parse("ws://127.0.0.1:8080/chat?room=1").unwrap()
    }

    fn offer<'a>(protocols: &'a [String], headers: &'a [(String, String)]) -> Offer<'a> {
        Offer {
            protocols,
            headers,
            deflate: true,
        }
    }

    fn answer(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
    }

    fn read(answer: &str, offer: &Offer<'_>) -> Result<Option<Answer>, HandshakeError> {
        read_answer(answer.as_bytes(), KEY, offer)
    }

    #[test]
    fn derives_the_accept_key_of_the_rfc() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            data_encoding::BASE64
                .decode(new_key().as_bytes())
                .unwrap()
                .len(),
            16
        );
        assert_ne!(new_key(), new_key());
    }

    #[test]
    fn asks_for_an_upgrade_with_the_offers_and_headers() {
        let protocols = ["chat.v2".to_owned(), "chat.v1".to_owned()];
        let headers = [("Origin".to_owned(), "http://example.com".to_owned())];
        let request = request(&url(), KEY, &offer(&protocols, &headers)).unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Origin: http://example.com\r\n\r\n"
        );
        let host = [("host".to_owned(), "example.com".to_owned())];
        let plain = Offer {
            deflate: false,
            ..offer(&[], &host)
        };
        let request = String::from_utf8(request_of(&plain)).unwrap();
        assert!(request.contains("host: example.com\r\n") && !request.contains("Host: 127"));
        assert!(!request.contains("Extensions"));
    }

    fn request_of(offer: &Offer<'_>) -> Vec<u8> {
        request(&url(), KEY, offer).unwrap()
    }

    #[test]
    fn refuses_headers_that_would_break_the_request() {
        for (name, value) in [
            ("X-Bad", "a\r\nInjected: yes"),
            ("X Bad", "v"),
            ("", "v"),
            ("Sec-WebSocket-Key", "mine"),
            ("connection", "close"),
        ] {
            let headers = [(name.to_owned(), value.to_owned())];
            assert!(
                matches!(
                    request(&url(), KEY, &offer(&[], &headers)),
                    Err(HandshakeError::Header { .. })
                ),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn accepts_an_answer_and_leaves_the_frames_after_it() {
        let text =
            answer("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n");
        let with_frame = format!("{text}\u{81}\u{0}");
        let answered = read(&with_frame, &offer(&[], &[])).unwrap().unwrap();
        assert_eq!(answered.len, text.len());
        assert_eq!(answered.protocol, None);
        assert_eq!(
            answered.deflate,
            Some(Agreement {
                server_takeover: false,
                client_window_bits: 15
            })
        );
        let half = &text[..text.len() - 3];
        assert!(
            read(half, &offer(&[], &[])).unwrap().is_none(),
            "waits for the end"
        );
    }

    #[test]
    fn takes_the_subprotocol_the_server_chose_among_those_offered() {
        let offered = ["a".to_owned(), "b".to_owned()];
        let chosen = read(
            &answer("Sec-WebSocket-Protocol: b\r\n"),
            &offer(&offered, &[]),
        );
        assert_eq!(chosen.unwrap().unwrap().protocol.as_deref(), Some("b"));
        let none = read(&answer(""), &offer(&offered, &[]));
        assert_eq!(none.unwrap().unwrap().protocol, None);
        let other = read(
            &answer("Sec-WebSocket-Protocol: c\r\n"),
            &offer(&offered, &[]),
        );
        assert!(matches!(other, Err(HandshakeError::Invalid(_))));
    }

    #[test]
    fn refuses_answers_that_are_not_an_upgrade() {
        let refused = read(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            &offer(&[], &[]),
        );
        assert!(matches!(refused, Err(HandshakeError::Status(403))));
        let wrong_key = answer("").replace("s3pP", "AAAA");
        let no_upgrade = answer("").replace("Upgrade: websocket\r\n", "");
        let unoffered = answer("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        let plain = Offer {
            deflate: false,
            ..offer(&[], &[])
        };
        for (text, offer) in [
            (wrong_key.as_str(), offer(&[], &[])),
            (no_upgrade.as_str(), offer(&[], &[])),
            (unoffered.as_str(), plain),
            ("HTTP/1.1 101\r\nUpgrade websocket\r\n\r\n", offer(&[], &[])),
        ] {
            assert!(
                matches!(read(text, &offer), Err(HandshakeError::Invalid(_))),
                "{text:?}"
            );
        }
        let endless = format!("HTTP/1.1 101 OK\r\nX: {}", "y".repeat(ANSWER_MAX));
        assert!(matches!(
            read(&endless, &offer(&[], &[])),
            Err(HandshakeError::Invalid(_))
        ));
    }
}
