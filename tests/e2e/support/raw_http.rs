//! A hand-written upgrade request, for the checks a WebSocket client library would not let
//! a test make (it refuses some valid responses and hides the body of refusals).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// The status line, headers and (for a refusal) body of the host's answer.
pub struct RawResponse {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of a header, matching its name case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends a WebSocket upgrade request for `path_and_query` with `extra_headers` and reads the
/// answer. After a 101 the connection is simply dropped.
pub async fn raw_upgrade(
    addr: SocketAddr,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
) -> RawResponse {
    let mut head = format!(
        "GET /{} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        path_and_query.trim_start_matches('/')
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    raw_request(addr, &head).await
}

/// Sends `head` (a complete request head, blank line included) exactly as given and reads the
/// answer: its head, and its body unless it is a 101. After a 101 the connection is dropped.
pub async fn raw_request(addr: SocketAddr, head: &str) -> RawResponse {
    let first_line = head.lines().next().unwrap_or_default().to_owned();
    within(&format!("the answer to {first_line:?}"), async {
        let mut stream = TcpStream::connect(addr).await.expect("TCP connect");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("writing the request");
        let mut response = read_response_head(&mut stream).await;
        if response.status != 101 {
            read_body(&mut stream, &mut response).await;
        }
        response
    })
    .await
}

/// Reads a response head from `stream`. Whatever arrived after the head is left in `body`:
/// for a 101 those are the first bytes of the WebSocket connection.
pub async fn read_response_head(stream: &mut TcpStream) -> RawResponse {
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(position) = find(&received, b"\r\n\r\n") {
            break position;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.expect("reading the response");
        assert!(
            read > 0,
            "the host closed the connection before a full response head"
        );
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(received[..head_end].to_vec()).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a malformed status line: {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: received[head_end + 4..].to_vec(),
    }
}

/// Reads the rest of a refusal's body: `Content-Length` bytes, or everything until the host
/// closes the connection.
async fn read_body(stream: &mut TcpStream, response: &mut RawResponse) {
    let length: Option<usize> = response
        .header("content-length")
        .map(|value| value.parse().expect("a numeric Content-Length"));
    match length {
        Some(length) => {
            let missing = length.saturating_sub(response.body.len());
            let mut rest = vec![0u8; missing];
            stream
                .read_exact(&mut rest)
                .await
                .expect("reading the body");
            response.body.extend_from_slice(&rest);
        }
        None => {
            stream
                .read_to_end(&mut response.body)
                .await
                .expect("reading the body");
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
