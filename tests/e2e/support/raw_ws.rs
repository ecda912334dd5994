//! A WebSocket client that writes and reads the wire format itself (RFC 6455 §5), for the
//! conformance tests: it sends exactly the bytes a test asks for, including frames no correct
//! client would send, and checks every frame the host sends against the RFC.

use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw_http::read_response_head;
use super::{Host, within};

/// Frame opcodes (RFC 6455 §5.2).
pub mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// The reserved bits of a frame's first byte, as given to [`RawFrame::rsv`].
pub const RSV1: u8 = 0b100;
pub const RSV2: u8 = 0b010;
pub const RSV3: u8 = 0b001;

/// The sample nonce of RFC 6455 §1.3 and the `Sec-WebSocket-Accept` the RFC derives from it;
/// using it spares the tests a SHA-1 implementation.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Pause between the pieces of a chunked write, so the host is likely to receive them in
/// separate reads. Nothing depends on how long it is.
const CHUNK_PAUSE: Duration = Duration::from_millis(1);

/// Payload bytes shown when a frame is described in a failure.
const SHOWN_PAYLOAD: usize = 48;

/// Counts masking keys handed out, so consecutive frames get different keys.
static MASK_KEYS: AtomicU32 = AtomicU32::new(1);

/// A masking key with no zero byte: a zero byte would leave its payload bytes unmasked and
/// hide a host that forgot to unmask them.
fn next_mask_key() -> [u8; 4] {
    let n = MASK_KEYS
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9);
    n.to_be_bytes().map(|byte| byte | 0x01)
}

/// How a frame's payload length is written (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthForm {
    /// In the 7 bits of the second byte: 0 to 125.
    Seven,
    /// 126, then 16 bits: 126 to 65535.
    Sixteen,
    /// 127, then 64 bits: 65536 and more.
    SixtyFour,
}

impl LengthForm {
    /// The form a sender must use for `len` ("the minimal number of bytes MUST be used").
    pub fn minimal(len: usize) -> Self {
        match len {
            0..=125 => Self::Seven,
            126..=65535 => Self::Sixteen,
            _ => Self::SixtyFour,
        }
    }
}

/// A frame as the client puts it on the wire. Built valid and masked; the builder methods
/// break it on purpose.
#[derive(Debug, Clone)]
pub struct RawFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl RawFrame {
    /// A final, masked frame with no reserved bits set.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            masked: true,
            payload: payload.into(),
        }
    }

    pub fn text(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::TEXT, payload)
    }

    pub fn binary(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::BINARY, payload)
    }

    pub fn continuation(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::CONTINUATION, payload)
    }

    pub fn ping(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::PING, payload)
    }

    pub fn pong(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(op::PONG, payload)
    }

    /// A close frame with a status code and a reason given as raw bytes, so a test can send
    /// one that is not UTF-8.
    pub fn close(code: u16, reason: &[u8]) -> Self {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        Self::new(op::CLOSE, payload)
    }

    /// A close frame without a status code.
    pub fn close_empty() -> Self {
        Self::new(op::CLOSE, Vec::new())
    }

    /// Clears FIN: more fragments of the message follow.
    pub fn not_final(mut self) -> Self {
        self.fin = false;
        self
    }

    /// Sets reserved bits (a combination of [`RSV1`], [`RSV2`] and [`RSV3`]).
    pub fn rsv(mut self, bits: u8) -> Self {
        assert!(bits <= 0b111, "there are only three reserved bits");
        self.rsv = bits;
        self
    }

    /// Sends the payload as it is, without a masking key.
    pub fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }

    /// The frame's bytes, masked with a fresh key unless [`RawFrame::unmasked`] was called.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len();
        let mut bytes = Vec::with_capacity(len + 14);
        bytes.push(u8::from(self.fin) << 7 | self.rsv << 4 | self.opcode);
        let mask_bit = if self.masked { 0x80 } else { 0 };
        match LengthForm::minimal(len) {
            LengthForm::Seven => bytes.push(mask_bit | len as u8),
            LengthForm::Sixteen => {
                bytes.push(mask_bit | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            LengthForm::SixtyFour => {
                bytes.push(mask_bit | 127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if self.masked {
            let key = next_mask_key();
            bytes.extend_from_slice(&key);
            bytes.extend(
                self.payload
                    .iter()
                    .zip(key.iter().cycle())
                    .map(|(byte, key)| byte ^ key),
            );
        } else {
            bytes.extend_from_slice(&self.payload);
        }
        bytes
    }
}

/// One message as a first frame of `opcode` followed by continuation frames, one per part;
/// only the last has FIN set.
pub fn fragmented(opcode: u8, parts: &[&[u8]]) -> Vec<RawFrame> {
    assert!(!parts.is_empty(), "a message has at least one frame");
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let opcode = if index == 0 { opcode } else { op::CONTINUATION };
            let frame = RawFrame::new(opcode, *part);
            if index == last {
                frame
            } else {
                frame.not_final()
            }
        })
        .collect()
}

/// The bytes of several frames, back to back.
pub fn encode_all(frames: &[RawFrame]) -> Vec<u8> {
    frames.iter().flat_map(RawFrame::encode).collect()
}

/// A frame the host sent, already checked against the rules for server frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    /// RSV1: a message compressed with permessage-deflate.
    pub compressed: bool,
    pub payload: Vec<u8>,
    pub length_form: LengthForm,
}

impl fmt::Display for ServerFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = kind_name(self.opcode);
        let fin = if self.fin { "" } else { " without FIN" };
        if self.opcode == op::CLOSE && self.payload.len() >= 2 {
            let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
            let reason = String::from_utf8_lossy(&self.payload[2..]);
            return write!(
                f,
                "a close frame{fin} with code {code} and reason {reason:?}"
            );
        }
        write!(
            f,
            "a {kind} frame{fin} of {} bytes: {}",
            self.payload.len(),
            show(&self.payload)
        )
    }
}

/// The start of a payload: as text when it is UTF-8, otherwise as hex.
fn show(payload: &[u8]) -> String {
    let shown = &payload[..payload.len().min(SHOWN_PAYLOAD)];
    let more = if shown.len() < payload.len() {
        "…"
    } else {
        ""
    };
    match std::str::from_utf8(shown) {
        Ok(text) => format!("{text:?}{more}"),
        Err(_) => {
            let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
            format!("[{}]{more}", hex.join(" "))
        }
    }
}

/// Fails with the first difference between two payloads, without printing large ones.
pub fn assert_same_payload(what: &str, actual: &[u8], expected: &[u8]) {
    if actual == expected {
        return;
    }
    let first_difference = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{what}: got {} bytes, expected {}; they first differ at byte {first_difference} \
         (got {}, expected {})",
        actual.len(),
        expected.len(),
        show(&actual[first_difference.min(actual.len())..]),
        show(&expected[first_difference.min(expected.len())..]),
    );
}

/// The status code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// `None` for a close frame with an empty payload.
    pub code: Option<u16>,
    pub reason: String,
}

/// How the host ended the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// An orderly end of the stream.
    Eof,
    /// A reset, which is how a TCP connection ends when its owner closes it with input still
    /// unread; the bytes sent before it are still delivered.
    Reset,
}

enum Event {
    Frame(ServerFrame),
    Ended(Ended),
}

/// A WebSocket connection driven byte by byte.
pub struct RawSocket {
    stream: TcpStream,
    /// Bytes read from the host and not yet decoded.
    received: Vec<u8>,
    /// Whether this client sent a close frame; it then must not answer the host's close.
    close_sent: bool,
    /// The connection's URL.
    url: String,
    /// The host answered a permessage-deflate offer: RSV1 may mark its messages.
    deflate: bool,
    /// Names the connection, and the case being tried on it, in failures.
    label: String,
}

impl Host {
    /// Opens a WebSocket to `path_and_query` with a hand-written handshake.
    pub async fn raw_connect(&self, path_and_query: &str) -> RawSocket {
        RawSocket::connect(self.addr(), path_and_query).await
    }
}

impl RawSocket {
    /// Performs the opening handshake (RFC 6455 §4.1) and checks the host's 101 (§4.2.2).
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> Self {
        Self::connect_offering(addr, path_and_query, None).await.0
    }

    /// Like [`connect`](Self::connect), offering the extensions `offer`
    /// (`Sec-WebSocket-Extensions`); returns what the host answered, if anything.
    pub async fn connect_offering(
        addr: SocketAddr,
        path_and_query: &str,
        offer: Option<&str>,
    ) -> (Self, Option<String>) {
        let label = format!("ws://{addr}/{}", path_and_query.trim_start_matches('/'));
        let extensions = offer
            .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
            .unwrap_or_default();
        within(&format!("the handshake of {label}"), async {
            let mut stream = TcpStream::connect(addr).await.expect("TCP connect");
            // Every write of a test should leave as its own segment, not wait for an ACK.
            stream.set_nodelay(true).expect("setting TCP_NODELAY");
            let request = format!(
                "GET /{} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n{extensions}\r\n",
                path_and_query.trim_start_matches('/')
            );
            stream
                .write_all(request.as_bytes())
                .await
                .expect("writing the handshake");
            let response = read_response_head(&mut stream).await;
            assert_eq!(
                response.status, 101,
                "{label}: the handshake should be answered with 101"
            );
            assert_eq!(
                response.header("sec-websocket-accept"),
                Some(SAMPLE_ACCEPT),
                "{label}: Sec-WebSocket-Accept must be derived from the key (RFC 6455 §4.2.2)"
            );
            assert!(
                response
                    .header("upgrade")
                    .is_some_and(|value| value.eq_ignore_ascii_case("websocket")),
                "{label}: a 101 must carry `Upgrade: websocket` (RFC 6455 §4.2.2)"
            );
            let answered = response
                .header("sec-websocket-extensions")
                .map(str::to_owned);
            let socket = Self {
                stream,
                // Bytes after the 101's head already belong to the WebSocket connection.
                received: response.body,
                close_sent: false,
                deflate: answered.is_some(),
                url: label.clone(),
                label: label.clone(),
            };
            (socket, answered)
        })
        .await
    }

    /// Names the case being tried in failures, for tests that try many cases in turn.
    pub fn label_case(&mut self, case: impl fmt::Display) {
        self.label = format!("{} ({case})", self.url);
    }

    /// Sends one frame in one write.
    pub async fn send(&mut self, frame: RawFrame) {
        self.send_all(&[frame]).await;
    }

    /// Sends frames back to back in one write, so the host may read them all at once.
    pub async fn send_all(&mut self, frames: &[RawFrame]) {
        self.note_sent(frames);
        self.send_bytes(&encode_all(frames)).await;
    }

    /// Sends frames, writing their bytes in pieces of `chunk_len` bytes with a pause after
    /// each: piece boundaries fall anywhere, inside headers and masking keys too. A host may
    /// refuse a frame from its first bytes and close the connection, so writing stops
    /// quietly once the connection is gone; what the host sent still arrives.
    pub async fn send_in_chunks(&mut self, frames: &[RawFrame], chunk_len: usize) {
        self.note_sent(frames);
        let bytes = encode_all(frames);
        let label = self.label.clone();
        within(&format!("a chunked write on {label}"), async {
            for chunk in bytes.chunks(chunk_len) {
                match self.stream.write_all(chunk).await {
                    Ok(()) => {}
                    Err(error) if is_connection_gone(&error) => return,
                    Err(error) => panic!("writing to {label} failed: {error}"),
                }
                tokio::time::sleep(CHUNK_PAUSE).await;
            }
        })
        .await;
    }

    /// Writes bytes as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let label = self.label.clone();
        let writing = self.stream.write_all(bytes);
        if let Err(error) = within(&format!("a write on {label}"), writing).await {
            panic!("writing to {label} failed: {error}");
        }
    }

    /// Sends frames the host is expected to refuse part way through: it may close the
    /// connection before it has read them all, so a failing write is not an error here.
    pub async fn send_all_until_closed(&mut self, frames: &[RawFrame]) {
        self.note_sent(frames);
        let bytes = encode_all(frames);
        let label = self.label.clone();
        let writing = self.stream.write_all(&bytes);
        if let Err(error) = within(&format!("a write on {label}"), writing).await {
            assert!(
                is_connection_gone(&error),
                "writing to {label} failed: {error}"
            );
        }
    }

    fn note_sent(&mut self, frames: &[RawFrame]) {
        if frames.iter().any(|frame| frame.opcode == op::CLOSE) {
            self.close_sent = true;
        }
    }

    /// Reads bytes until `wanted` are buffered, or tells how the host ended the connection.
    async fn fill(&mut self, wanted: usize) -> Result<(), Ended> {
        while self.received.len() < wanted {
            self.received
                .reserve((wanted - self.received.len()).max(16 * 1024));
            match self.stream.read_buf(&mut self.received).await {
                Ok(0) => return Err(Ended::Eof),
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::ConnectionReset => {
                    return Err(Ended::Reset);
                }
                Err(error) => panic!("reading from {} failed: {error}", self.label),
            }
        }
        Ok(())
    }

    /// Fills the buffer to `wanted` bytes in the middle of a frame, where an end is a fault.
    async fn fill_frame(&mut self, wanted: usize) {
        if let Err(ended) = self.fill(wanted).await {
            panic!(
                "{} ended ({ended:?}) in the middle of a frame: {} of {wanted} bytes arrived",
                self.label,
                self.received.len()
            );
        }
    }

    /// Decodes the next frame, checking the rules every server frame must follow.
    async fn next_event(&mut self) -> Event {
        if let Err(ended) = self.fill(2).await {
            if self.received.is_empty() {
                return Event::Ended(ended);
            }
            panic!("{} ended ({ended:?}) inside a frame header", self.label);
        }
        let label = &self.label;
        let (first, second) = (self.received[0], self.received[1]);
        let fin = first & 0x80 != 0;
        let rsv = (first >> 4) & 0b111;
        let opcode = first & 0x0F;
        let compressed = rsv == 0b100;
        assert!(
            rsv == 0 || (compressed && self.deflate),
            "{label}: the host set reserved bits without an extension (RFC 6455 §5.2)"
        );
        assert!(
            !compressed || matches!(opcode, op::TEXT | op::BINARY),
            "{label}: RSV1 may only mark the first frame of a data message (RFC 7692 §6)"
        );
        assert!(
            matches!(opcode, 0x0..=0x2 | 0x8..=0xA),
            "{label}: the host sent the reserved opcode {opcode:#x} (RFC 6455 §5.2)"
        );
        assert_eq!(
            second & 0x80,
            0,
            "{label}: a server must not mask its frames (RFC 6455 §5.1)"
        );
        let (length_form, header_len) = match second & 0x7F {
            126 => (LengthForm::Sixteen, 4),
            127 => (LengthForm::SixtyFour, 10),
            _ => (LengthForm::Seven, 2),
        };
        self.fill_frame(header_len).await;
        let declared: u64 = match length_form {
            LengthForm::Seven => u64::from(second & 0x7F),
            LengthForm::Sixteen => {
                u64::from(u16::from_be_bytes([self.received[2], self.received[3]]))
            }
            LengthForm::SixtyFour => {
                u64::from_be_bytes(self.received[2..10].try_into().expect("8 bytes"))
            }
        };
        let label = &self.label;
        assert_eq!(
            declared >> 63,
            0,
            "{label}: the most significant bit of a 64-bit length must be 0 (RFC 6455 §5.2)"
        );
        let len = usize::try_from(declared).expect("a length that fits in memory");
        assert_eq!(
            length_form,
            LengthForm::minimal(len),
            "{label}: a {len}-byte payload's length must use the minimal form (RFC 6455 §5.2)"
        );
        if opcode >= op::CLOSE {
            assert!(
                fin && len <= 125,
                "{label}: control frames must be final and carry at most 125 bytes, got a \
                 {len}-byte frame with FIN={fin} (RFC 6455 §5.5)"
            );
        }
        self.fill_frame(header_len + len).await;
        let payload = self.received[header_len..header_len + len].to_vec();
        self.received.drain(..header_len + len);
        Event::Frame(ServerFrame {
            fin,
            opcode,
            compressed,
            payload,
            length_form,
        })
    }

    /// The next frame, bounded in time; the host's pings are answered on the way, as every
    /// endpoint must (RFC 6455 §5.5.2), and the end of the connection fails the test.
    pub async fn next_frame(&mut self) -> ServerFrame {
        let label = self.label.clone();
        within(&format!("a frame on {label}"), async {
            loop {
                match self.next_event().await {
                    Event::Frame(frame) if frame.opcode == op::PING && !self.close_sent => {
                        let pong = RawFrame::pong(frame.payload).encode();
                        self.send_bytes(&pong).await;
                    }
                    Event::Frame(frame) => return frame,
                    Event::Ended(ended) => {
                        panic!("{label} ended ({ended:?}) while a frame was expected")
                    }
                }
            }
        })
        .await
    }

    /// Expects one whole frame (FIN set) of `opcode` carrying exactly `payload`.
    pub async fn expect_frame(&mut self, opcode: u8, payload: &[u8]) -> ServerFrame {
        let frame = self.next_frame().await;
        assert!(
            frame.fin && frame.opcode == opcode,
            "{}: expected a final {} frame of {} bytes, got {frame}",
            self.label,
            kind_name(opcode),
            payload.len()
        );
        assert_same_payload(
            &format!("{}: the payload of {frame}", self.label),
            &frame.payload,
            payload,
        );
        frame
    }

    /// Expects a pong carrying `payload` (RFC 6455 §5.5.3).
    pub async fn expect_pong(&mut self, payload: &[u8]) {
        self.expect_frame(op::PONG, payload).await;
    }

    /// Expects a whole message of `opcode` (text or binary) with exactly `payload`, in one
    /// frame or fragmented (RFC 6455 §5.4 lets the host choose).
    pub async fn expect_message(&mut self, opcode: u8, payload: &[u8]) {
        let first = self.next_frame().await;
        assert!(
            first.opcode == opcode,
            "{}: expected a {} message, got {first}",
            self.label,
            kind_name(opcode)
        );
        let mut message = first.payload;
        let mut fin = first.fin;
        while !fin {
            let next = self.next_frame().await;
            assert!(
                next.opcode == op::CONTINUATION,
                "{}: a fragmented message must go on with continuation frames (RFC 6455 \
                 §5.4), got {next}",
                self.label
            );
            message.extend_from_slice(&next.payload);
            fin = next.fin;
        }
        assert_same_payload(
            &format!("{}: the echoed {} message", self.label, kind_name(opcode)),
            &message,
            payload,
        );
    }

    pub async fn expect_text(&mut self, text: impl AsRef<[u8]>) {
        self.expect_message(op::TEXT, text.as_ref()).await;
    }

    pub async fn expect_binary(&mut self, bytes: &[u8]) {
        self.expect_message(op::BINARY, bytes).await;
    }

    /// Expects the next frame to be a close frame, and checks its payload (RFC 6455 §5.5.1).
    pub async fn expect_close_frame(&mut self) -> CloseFrame {
        let frame = self.next_frame().await;
        assert!(
            frame.opcode == op::CLOSE,
            "{}: expected a close frame, got {frame}",
            self.label
        );
        match frame.payload.as_slice() {
            [] => CloseFrame {
                code: None,
                reason: String::new(),
            },
            [hi, lo, reason @ ..] => CloseFrame {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: String::from_utf8(reason.to_vec()).unwrap_or_else(|_| {
                    panic!(
                        "{}: a close reason must be UTF-8 (RFC 6455 §5.5.1), got {frame}",
                        self.label
                    )
                }),
            },
            [_] => panic!(
                "{}: a close payload starts with a 2-byte code (RFC 6455 §5.5.1), got {frame}",
                self.label
            ),
        }
    }

    /// Expects the host to close with `code`: a close frame, then the end of the TCP
    /// connection. The close is answered first unless this client already sent one.
    pub async fn expect_close(&mut self, code: u16) {
        self.expect_close_one_of(&[code]).await;
    }

    /// Like [`RawSocket::expect_close`], for cases where the RFC leaves a choice of codes;
    /// returns the code the host chose.
    pub async fn expect_close_one_of(&mut self, codes: &[u16]) -> u16 {
        let close = self.expect_close_frame().await;
        let code = close.code.unwrap_or_else(|| {
            panic!(
                "{}: expected a close with code {codes:?}, got one without a code",
                self.label
            )
        });
        assert!(
            codes.contains(&code),
            "{}: expected a close with code {codes:?}, got code {code} with reason {:?}",
            self.label,
            close.reason
        );
        self.answer_close(code).await;
        self.expect_closed_without_frame().await;
        code
    }

    /// Answers the host's close unless this client sent one already (RFC 6455 §5.5.1). The
    /// host may already have closed the connection after failing it (§7.1.7), so a failing
    /// write is fine.
    async fn answer_close(&mut self, code: u16) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        let answer = RawFrame::close(code, b"").encode();
        let label = self.label.clone();
        let writing = self.stream.write_all(&answer);
        if let Err(error) = within(&format!("answering the close on {label}"), writing).await {
            assert!(
                is_connection_gone(&error),
                "writing to {label} failed: {error}"
            );
        }
    }

    /// Expects the host to end the TCP connection without sending anything more.
    pub async fn expect_closed_without_frame(&mut self) {
        let label = self.label.clone();
        within(&format!("{label} to be closed by the host"), async {
            match self.next_event().await {
                Event::Ended(_) => {}
                Event::Frame(frame) => {
                    panic!("{label}: expected the host to close the TCP connection, got {frame}")
                }
            }
        })
        .await;
    }
}

fn is_connection_gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

fn kind_name(opcode: u8) -> &'static str {
    match opcode {
        op::CONTINUATION => "continuation",
        op::TEXT => "text",
        op::BINARY => "binary",
        op::CLOSE => "close",
        op::PING => "ping",
        op::PONG => "pong",
        _ => "reserved",
    }
}
