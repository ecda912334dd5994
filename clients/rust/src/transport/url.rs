//! `ws://` URLs as the handshake needs them: where to open the TCP connection, what the `Host`
//! header says, and the resource (path and query) of the request line.
//!
//! Parsed by hand because the client needs only this much of RFC 3986, and because every byte
//! that reaches the request line must be checked: a space or a line break in a URL would
//! otherwise end up inside the HTTP request.

/// A WebSocket URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    /// The host to connect to: a name or an IP address (an IPv6 address without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as the URL wrote it, for the `Host` header.
    pub(crate) authority: String,
    /// The path and query, `/` at least.
    pub(crate) resource: String,
}

/// The port of `ws://` when the URL names none.
const DEFAULT_PORT: u16 = 80;

impl WsUrl {
    /// Reads `ws://host[:port][/path][?query][#fragment]`; the fragment is dropped (RFC 6455
    /// §3 gives it no meaning). The error says what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("it has no scheme (ws://host/path)".to_owned());
        };
        if scheme.eq_ignore_ascii_case("wss") {
            return Err("wss:// needs TLS, which this client does not speak".to_owned());
        }
        if !scheme.eq_ignore_ascii_case("ws") {
            return Err("the scheme must be ws://".to_owned());
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        let (host, port) = split_authority(authority)?;
        let resource = match resource.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{resource}"),
            Some(_) => resource.to_owned(),
        };
        if let Some(bad) = resource.bytes().find(|byte| !byte.is_ascii_graphic()) {
            return Err(format!(
                "its path or query holds the byte {bad:#04x}, which must be percent-encoded"
            ));
        }
        Ok(Self {
            host,
            port,
            authority: authority.to_owned(),
            resource,
        })
    }
}

/// `host[:port]`, `[v6]` or `[v6]:port`.
fn split_authority(authority: &str) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err("user information in a WebSocket URL is not supported".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address without its closing `]`".to_owned());
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("`[{address}]` is not an IPv6 address"));
        }
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return Err(format!("`{after}` after an IPv6 address")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    // An IPv6 address was checked inside its brackets; a name or IPv4 address has no `:`.
    let bracketed = authority.starts_with('[');
    let valid_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if !bracketed && (host.is_empty() || !host.bytes().all(valid_name)) {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, u16, String, String) {
        let url = WsUrl::parse(url).unwrap();
        (url.host, url.port, url.authority, url.resource)
    }

    #[test]
    fn reads_host_port_and_resource() {
        assert_eq!(
            parsed("ws://127.0.0.1:8080/chat?room=1&user=a#top"),
            (
                "127.0.0.1".into(),
                8080,
                "127.0.0.1:8080".into(),
                "/chat?room=1&user=a".into()
            )
        );
        assert_eq!(
            parsed("WS://example.com"),
            ("example.com".into(), 80, "example.com".into(), "/".into())
        );
        assert_eq!(
            parsed("ws://h?x=1"),
            ("h".into(), 80, "h".into(), "/?x=1".into())
        );
        assert_eq!(
            parsed("ws://[::1]:9/f"),
            ("::1".into(), 9, "[::1]:9".into(), "/f".into())
        );
    }

    #[test]
    fn refuses_what_cannot_go_into_a_request() {
        for url in [
            "",
            "not a url",
            "http://h/f",
            "wss://h/f",
            "ws:///f",
            "ws://h:99999/f",
            "ws://h:x/f",
            "ws://user@h/f",
            "ws://h/a b",
            "ws://h/a\r\nX: y",
            "ws://h/é",
            "ws://[::1/f",
            "ws://h h/f",
            "ws://::1/f",
        ] {
            assert!(WsUrl::parse(url).is_err(), "{url:?}");
        }
    }
}
