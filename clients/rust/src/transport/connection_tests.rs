//! The connection against a server scripted byte by byte over loopback: frames are written
//! and read here by hand (and the handshake's accept key derived by tungstenite), so what the
//! client does is checked against the RFCs' bytes rather than against its own encoder.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::*;

/// "Hello" compressed without context (RFC 7692 §7.2.3.1).
const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// What the wsfn host answers.
const NO_TAKEOVER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

struct Peer {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Peer {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one frame from the client: its first byte and its unmasked payload.
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some(frame) = self.take_frame() {
                return frame;
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client ended the connection");
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let bytes = &self.read;
        if bytes.len() < 2 {
            return None;
        }
        assert_eq!(bytes[1] & 0x80, 0x80, "every client frame is masked");
        let (len, mut at) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => panic!("no test sends that much"),
            126 => return None,
            short => (usize::from(short), 2),
        };
        if bytes.len() < at + 4 + len {
            return None;
        }
        let key = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        at += 4;
        let payload = bytes[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ key[i % 4])
            .collect();
        let first = bytes[0];
        self.read.drain(..at + len);
        Some((first, payload))
    }

    /// Reads until the client ends the connection; returns what came meanwhile.
    async fn until_end(&mut self) -> usize {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).await.unwrap();
        rest.len()
    }
}

/// An unmasked server frame whose first byte is `first`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn settings(threshold: Option<usize>, max_message: usize) -> Settings<'static> {
    Settings {
        protocols: &[],
        headers: &[],
        deflate_threshold: threshold,
        max_message,
        traffic: None,
    }
}

/// A connected client and the scripted server's end; the server answers the handshake with
/// `extensions` when given.
async fn pair(settings: Settings<'_>, extensions: Option<&str>) -> (WebSocket, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = WsUrl::parse(&format!("ws://{}/t", listener.local_addr().unwrap())).unwrap();
    let accepting = async {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            request.push(stream.read_u8().await.unwrap());
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let extensions = extensions
            .map(|answer| format!("Sec-WebSocket-Extensions: {answer}\r\n"))
            .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extensions}\r\n",
            derive_accept_key(key.as_bytes())
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        Peer {
            stream,
            read: Vec::new(),
        }
    };
    let (socket, peer) = tokio::join!(WebSocket::connect(&url, &settings), accepting);
    (socket.unwrap(), peer)
}

fn text(text: &str) -> Incoming {
    Incoming::Text(text.to_owned())
}

/// Inflates a message the client compressed, with a fresh decompressor (the client keeps no
/// context).
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64 * 1024);
    Decompress::new(false)
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

#[tokio::test]
async fn joins_fragments_and_answers_a_ping_between_them() {
    let (mut socket, mut peer) = pair(settings(None, 1 << 20), None).await;
    assert!(!socket.deflate());
    let mut script = frame(0x01, b"Hel");
    script.extend(frame(0x89, b"are you there"));
    script.extend(frame(0x80, b"lo"));
    script.extend(frame(0x82, &[0, 1, 2]));
    peer.send(&script).await;

    assert_eq!(socket.next().await.unwrap(), Incoming::Ping);
    socket.flush().await.unwrap();
    assert_eq!(
        peer.frame().await,
        (0x8A, b"are you there".to_vec()),
        "the pong echoes"
    );
    assert_eq!(socket.next().await.unwrap(), text("Hello"));
    assert_eq!(
        socket.next().await.unwrap(),
        Incoming::Binary(Bytes::from_static(&[0, 1, 2]))
    );
}

#[tokio::test]
async fn writes_masked_frames_in_one_flush() {
    let (mut socket, mut peer) = pair(settings(Some(128), 1 << 20), None).await;
    socket.feed_message(true, "ünïcode".as_bytes());
    socket.feed_message(false, &[7; 300]);
    socket.feed_ping();
    socket.flush().await.unwrap();
    assert_eq!(peer.frame().await, (0x81, "ünïcode".as_bytes().to_vec()));
    assert_eq!(
        peer.frame().await,
        (0x82, vec![7; 300]),
        "deflate was not agreed"
    );
    assert_eq!(peer.frame().await, (0x89, Vec::new()));
}

#[tokio::test]
async fn inflates_compressed_messages_whole_and_fragmented() {
    let (mut socket, mut peer) = pair(settings(Some(128), 1 << 20), Some(NO_TAKEOVER)).await;
    assert!(socket.deflate());
    let mut script = frame(0xC1, &HELLO_DEFLATED);
    script.extend(frame(0x41, &HELLO_DEFLATED[..3]));
    script.extend(frame(0x89, b""));
    script.extend(frame(0x80, &HELLO_DEFLATED[3..]));
    script.extend(frame(0x81, b"as it is"));
    script.extend(frame(0xC2, &HELLO_DEFLATED));
    peer.send(&script).await;
    assert_eq!(socket.next().await.unwrap(), text("Hello"));
    assert_eq!(socket.next().await.unwrap(), Incoming::Ping);
    assert_eq!(socket.next().await.unwrap(), text("Hello"));
    assert_eq!(socket.next().await.unwrap(), text("as it is"));
    assert_eq!(
        socket.next().await.unwrap(),
        Incoming::Binary(Bytes::from_static(b"Hello"))
    );
}

#[tokio::test]
async fn keeps_the_context_of_a_server_that_does_not_give_it_up() {
    let (mut socket, mut peer) =
        pair(settings(Some(128), 1 << 20), Some("permessage-deflate")).await;
    // RFC 7692 §7.2.3.2: the second message refers back to the first.
    let mut script = frame(0xC1, &HELLO_DEFLATED);
    script.extend(frame(0xC1, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
    peer.send(&script).await;
    assert_eq!(socket.next().await.unwrap(), text("Hello"));
    assert_eq!(socket.next().await.unwrap(), text("Hello"));
}

#[tokio::test]
async fn compresses_what_it_sends_from_the_threshold_on() {
    let (mut socket, mut peer) = pair(settings(Some(64), 1 << 20), Some(NO_TAKEOVER)).await;
    let long = r#"{"type":"message","user":"ada","text":"see you at the meeting, see you at the meeting"}"#;
    let short = r#"{"type":"join","user":"ada"}"#;
    socket.feed_message(true, long.as_bytes());
    socket.feed_message(true, short.as_bytes());
    socket.feed_message(true, long.as_bytes());
    socket.flush().await.unwrap();
    let (first, compressed) = peer.frame().await;
    assert_eq!(first, 0xC1, "RSV1 on a compressed message");
    assert!(compressed.len() < long.len());
    assert_eq!(inflate(&compressed), long.as_bytes());
    assert_eq!(
        peer.frame().await,
        (0x81, short.as_bytes().to_vec()),
        "under the threshold"
    );
    let (first, again) = peer.frame().await;
    assert_eq!(
        (first, &again),
        (0xC1, &compressed),
        "no context carried over"
    );
}

#[tokio::test]
async fn sends_uncompressed_when_asked_for_a_window_zlib_cannot_make() {
    let answer = "permessage-deflate; client_max_window_bits=8";
    let (mut socket, mut peer) = pair(settings(Some(1), 1 << 20), Some(answer)).await;
    socket.feed_message(true, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".as_bytes());
    socket.flush().await.unwrap();
    assert_eq!(peer.frame().await.0, 0x81);

    let answer = "permessage-deflate; client_max_window_bits=9";
    let (mut socket, mut peer) = pair(settings(Some(1), 1 << 20), Some(answer)).await;
    let message = "abcdefgh".repeat(100);
    socket.feed_message(true, message.as_bytes());
    socket.flush().await.unwrap();
    let (first, compressed) = peer.frame().await;
    assert_eq!(first, 0xC1);
    // A 512-byte window: a decompressor with that window inflates it.
    let mut input = compressed;
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1024);
    Decompress::new_with_window_bits(false, 9)
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(out, message.as_bytes());
}

#[tokio::test]
async fn answers_a_close_and_waits_for_the_server_to_end_the_connection() {
    let (mut socket, mut peer) = pair(settings(None, 1 << 20), None).await;
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    peer.send(&frame(0x88, &close)).await;
    let closed = Incoming::Close(Some(CloseFrame {
        code: 1000,
        reason: "bye".to_owned(),
    }));
    assert_eq!(socket.next().await.unwrap(), closed);
    socket.feed_message(true, b"too late");
    let draining = tokio::spawn(async move {
        socket.drain().await;
    });
    assert_eq!(peer.frame().await, (0x88, 1000u16.to_be_bytes().to_vec()));
    drop(peer);
    draining.await.unwrap();
}

#[tokio::test]
async fn a_client_close_is_sent_once_and_nothing_after_it() {
    let (mut socket, mut peer) = pair(settings(None, 1 << 20), None).await;
    socket.feed_close(4000, &"é".repeat(100));
    socket.feed_close(1000, "again");
    socket.feed_message(true, b"after");
    socket.flush().await.unwrap();
    let (first, payload) = peer.frame().await;
    assert_eq!(first, 0x88);
    assert_eq!(payload[..2], 4000u16.to_be_bytes());
    assert_eq!(
        payload.len(),
        2 + 122,
        "the reason is cut at a character boundary"
    );
    drop(socket);
    assert_eq!(peer.until_end().await, 0);
}

/// Sends `script`; the client must fail the connection with `code`.
async fn fails_with(settings: Settings<'_>, extensions: Option<&str>, script: Vec<u8>, code: u16) {
    let (mut socket, mut peer) = pair(settings, extensions).await;
    peer.send(&script).await;
    let error = loop {
        match socket.next().await {
            Ok(Incoming::Ping | Incoming::Pong) => {}
            Ok(other) => panic!("expected a violation, got {other:?}"),
            Err(error) => break error,
        }
    };
    let ReadError::Violation(violation) = error else {
        panic!("expected a violation, got {error:?}");
    };
    assert_eq!(violation.close_code(), code, "{violation}");
    socket.flush().await.unwrap();
    let (first, payload) = peer.frame().await;
    assert_eq!(
        (first, &payload[..2]),
        (0x88, &code.to_be_bytes()[..]),
        "{violation}"
    );
}

#[tokio::test]
async fn fails_the_connection_on_what_the_rfcs_forbid() {
    let big = settings(None, 1 << 20);
    let masked = vec![0x81, 0x81, 1, 2, 3, 4, b'x' ^ 1];
    fails_with(big, None, masked, 1002).await;
    fails_with(big, None, frame(0xC1, &HELLO_DEFLATED), 1002).await;
    fails_with(big, None, frame(0x80, b"nothing to continue"), 1002).await;
    let mut interleaved = frame(0x01, b"one");
    interleaved.extend(frame(0x81, b"two"));
    fails_with(big, None, interleaved, 1002).await;
    fails_with(big, None, frame(0x81, &[0xff, 0xfe]), 1007).await;
    let mut split_character = frame(0x01, &[0xc3]);
    split_character.extend(frame(0x80, &[0xa9, 0xff]));
    fails_with(big, None, split_character, 1007).await;
    fails_with(big, None, frame(0x88, &[0x03]), 1002).await;
    fails_with(big, None, frame(0x88, &1005u16.to_be_bytes()), 1002).await;
    let deflate = settings(Some(128), 1 << 20);
    fails_with(
        deflate,
        Some(NO_TAKEOVER),
        frame(0xC1, &[0xff, 0xff, 0xff]),
        1002,
    )
    .await;
}

#[tokio::test]
async fn refuses_messages_over_the_limit_before_reading_them_or_inflating_them_whole() {
    let small = settings(None, 100);
    fails_with(small, None, frame(0x82, &[0; 101]), 1009).await;
    let mut fragments = frame(0x02, &[0; 60]);
    fragments.extend(frame(0x80, &[0; 60]));
    fails_with(small, None, fragments, 1009).await;
    // The header alone gives the length away: nothing of the payload is needed.
    fails_with(small, None, vec![0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0], 1009).await;

    let mut bomb = Vec::with_capacity(4096);
    let mut compressor = Compress::new(Compression::best(), false);
    compressor
        .compress_vec(&[0; 1 << 20], &mut bomb, FlushCompress::Sync)
        .unwrap();
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());
    bomb.truncate(bomb.len() - 4);
    fails_with(
        settings(Some(128), 1000),
        Some(NO_TAKEOVER),
        frame(0xC2, &bomb),
        1009,
    )
    .await;
}

#[tokio::test]
async fn counts_the_bytes_on_the_wire() {
    let traffic = Traffic::new();
    let counted = Settings {
        traffic: Some(&traffic),
        ..settings(None, 1 << 20)
    };
    let (mut socket, mut peer) = pair(counted, None).await;
    let handshake = (traffic.sent(), traffic.received());
    assert!(handshake.0 > 100 && handshake.1 > 100, "{handshake:?}");
    socket.feed_message(true, b"12345");
    socket.flush().await.unwrap();
    peer.frame().await;
    peer.send(&frame(0x81, b"abc")).await;
    socket.next().await.unwrap();
    assert_eq!(traffic.sent() - handshake.0, 2 + 4 + 5);
    assert_eq!(traffic.received() - handshake.1, 2 + 3);
}
