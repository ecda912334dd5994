//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): the client's offer, and reading the
//! server's answer into what both sides agreed.
//!
//! The client offers the extension with `client_max_window_bits` alone, so the server may
//! choose every parameter; whatever it chooses the client can honour, because its own
//! compressor never keeps context between messages and its inflater has the largest window.

/// The `Sec-WebSocket-Extensions` offer.
pub(crate) const OFFER: &str = "permessage-deflate; client_max_window_bits";

const NAME: &str = "permessage-deflate";

/// The largest LZ77 window (RFC 7692 §7.1.2), and the default on both sides.
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// What the server's answer settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// The server compresses each message with the context of the ones before it, so its
    /// messages must be inflated with one decompressor kept for the connection.
    pub(crate) server_takeover: bool,
    /// The window the client's compressed messages may use (8 to 15).
    pub(crate) client_window_bits: u8,
}

/// Reads the server's `Sec-WebSocket-Extensions` answer (its header lines joined with `,`).
/// The error says why the answer is not acceptable, which fails the handshake.
pub(crate) fn accept(answer: &str) -> Result<Agreement, String> {
    let mut extensions = answer.split(',').map(str::trim).filter(|e| !e.is_empty());
    let Some(extension) = extensions.next() else {
        return Err("an empty extension answer".to_owned());
    };
    if extensions.next().is_some() {
        return Err(format!("extensions that were not offered: {answer}"));
    }
    let mut parts = extension.split(';').map(str::trim);
    let name = parts.next().unwrap_or_default();
    if !name.eq_ignore_ascii_case(NAME) {
        return Err(format!("an extension that was not offered: {name}"));
    }
    let mut agreement = Agreement {
        server_takeover: true,
        client_window_bits: MAX_WINDOW_BITS,
    };
    let mut seen: Vec<&str> = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key.trim(), Some(unquote(value.trim()))),
            None => (part, None),
        };
        if seen.contains(&key) {
            return Err(format!("the parameter {key} twice"));
        }
        seen.push(key);
        match (key, value) {
            ("server_no_context_takeover", None) => agreement.server_takeover = false,
            // The client never keeps context, asked or not.
            ("client_no_context_takeover", None) => {}
            // A smaller server window needs nothing of an inflater with the largest one.
            ("server_max_window_bits", Some(bits)) => {
                window_bits(key, bits)?;
            }
            ("client_max_window_bits", Some(bits)) => {
                agreement.client_window_bits = window_bits(key, bits)?;
            }
            _ => return Err(format!("the parameter `{part}`, which is not acceptable")),
        }
    }
    Ok(agreement)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// A window size: 1 or 2 decimal digits, 8 to 15 (RFC 7692 §7.1.2).
fn window_bits(key: &str, value: &str) -> Result<u8, String> {
    let digits = !value.is_empty() && value.len() <= 2 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse() {
        Ok(bits @ 8..=15) if digits && !value.starts_with('0') => Ok(bits),
        _ => Err(format!("{key}={value}, not a window size from 8 to 15")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_the_host_answers() {
        let host = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(
            accept(host),
            Ok(Agreement {
                server_takeover: false,
                client_window_bits: 15
            })
        );
    }

    #[test]
    fn honours_every_parameter_a_server_may_choose() {
        assert_eq!(
            accept("permessage-deflate"),
            Ok(Agreement {
                server_takeover: true,
                client_window_bits: 15
            })
        );
        assert_eq!(
            accept("Permessage-Deflate ; client_max_window_bits=\"10\" ; server_max_window_bits=8"),
            Ok(Agreement {
                server_takeover: true,
                client_window_bits: 10
            })
        );
        assert_eq!(
            accept("permessage-deflate; client_max_window_bits=8").map(|a| a.client_window_bits),
            Ok(8)
        );
    }

    #[test]
    fn refuses_answers_that_were_not_offered_or_are_malformed() {
        for answer in [
            "",
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
        ] {
            assert!(accept(answer).is_err(), "{answer:?}");
        }
    }
}
