//! Reading a client's `Sec-WebSocket-Extensions` offers and answering the first acceptable
//! permessage-deflate offer (RFC 7692 §5, §7.1).
//!
//! The answer always carries `server_no_context_takeover` and `client_no_context_takeover`
//! (a server may ask both, §7.1.1.1 and §7.1.1.2): every message is compressed on its own. A
//! `server_max_window_bits` the client asks for is honoured from 9 to 15; 8 is declined,
//! since the deflate implementation cannot produce a 256-byte window. A client window limit is
//! not needed (a 32 KiB window inflates anything) and is left out of the answer. An offer with
//! an unknown, repeated or malformed parameter is declined, and the next one is tried.

/// The name of the extension.
const NAME: &str = "permessage-deflate";

/// What was negotiated for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// The window the host compresses with (9 to 15).
    pub server_window_bits: u8,
}

/// The first acceptable permessage-deflate offer among the `Sec-WebSocket-Extensions` header
/// values, and the header value to answer it with; `None` when no offer is acceptable.
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<(Deflate, String)> {
    headers
        .into_iter()
        .flat_map(split_top_level(','))
        .filter_map(|extension| accept(&extension))
        .next()
}

/// Splits at `separator` outside double quotes, trimming each part and skipping empty ones.
fn split_top_level(separator: char) -> impl Fn(&str) -> Vec<String> {
    move |text: &str| {
        let mut parts = Vec::new();
        let mut current = String::new();
        let (mut quoted, mut escaped) = (false, false);
        for c in text.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == separator && !quoted => {
                    parts.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        parts.push(current);
        parts
            .into_iter()
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect()
    }
}

/// A parameter's value without its quotes (RFC 7230 quoted-string), if it was quoted.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut text = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        text.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(text)
}

/// A window size parameter's value: 8 to 15, digits only.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The answer to one extension of the offer, if it is an acceptable permessage-deflate.
fn accept(extension: &str) -> Option<(Deflate, String)> {
    let mut parts = split_top_level(';')(extension).into_iter();
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut server_window = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (
                name.trim().to_ascii_lowercase(),
                Some(unquote(value.trim())?),
            ),
            None => (param.to_ascii_lowercase(), None),
        };
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value.as_deref()) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(value)) => server_window = Some(window_bits(value)?),
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    if server_window == Some(8) {
        return None;
    }
    let mut answer = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_window {
        answer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    let deflate = Deflate {
        server_window_bits: server_window.unwrap_or(15),
    };
    Some((deflate, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    fn answer(offer: &str) -> Option<String> {
        negotiate([offer]).map(|(_, answer)| answer)
    }

    #[test]
    fn the_offers_of_autobahn_category_13_get_their_answers() {
        // What a browser offers, and the offers Autobahn's cases 13.1 to 13.7 make.
        let cases = [
            (
                "permessage-deflate; client_max_window_bits",
                Some(BOTH.to_owned()),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits",
                Some(BOTH.to_owned()),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover",
                Some(BOTH.to_owned()),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
                None,
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15",
                Some(format!("{BOTH}; server_max_window_bits=15")),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8",
                None,
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=15",
                Some(format!("{BOTH}; server_max_window_bits=15")),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, \\
                 permessage-deflate; server_no_context_takeover, permessage-deflate",
                Some(BOTH.to_owned()),
            ),
        ];
        for (offer, expected) in cases {
            assert_eq!(answer(offer), expected, "{offer}");
        }
    }

    #[test]
    fn window_bits_are_honoured_or_the_offer_declined() {
        let (deflate, _) = negotiate(["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(deflate.server_window_bits, 10);
        let (deflate, _) = negotiate(["permessage-deflate"]).unwrap();
        assert_eq!(deflate.server_window_bits, 15);
        for bad in ["7", "16", "010", "", "x", "1 5"] {
            let offer = format!("permessage-deflate; server_max_window_bits={bad}");
            assert_eq!(answer(&offer), None, "{offer}");
        }
        assert!(answer("permessage-deflate; server_max_window_bits").is_none());
        assert!(answer("permessage-deflate; client_max_window_bits=9").is_some());
        assert!(answer("permessage-deflate; client_max_window_bits=\"12\"").is_some());
        assert!(answer("permessage-deflate; client_max_window_bits=16").is_none());
    }

    #[test]
    fn offers_with_unknown_repeated_or_valued_flags_are_declined() {
        for bad in [
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=\"10",
        ] {
            assert_eq!(answer(bad), None, "{bad}");
        }
        // Another extension first, then an acceptable offer in a second header line.
        let (_, answered) = negotiate(["foo; bar=\"a,b\"", "permessage-deflate"]).unwrap();
        assert_eq!(answered, BOTH);
        assert!(negotiate(Vec::<&str>::new()).is_none());
    }
}
