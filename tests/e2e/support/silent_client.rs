//! A WebSocket client that does only what a test tells it to: after the handshake it never
//! reads on its own, so it never answers a ping and never drains what the host sends. That
//! is how a dead peer or a slow consumer looks from the host's side. A library client cannot
//! play that part: it answers pings whenever it is polled.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{Host, within};

/// The RFC 6455 §1.3 sample nonce; the accept value is not checked here (the conformance
/// tests do that), only that the host switched protocols.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// The first-byte bit that announces a compressed frame (RSV1); no extension was agreed, so
/// the host must fail the connection with 1002 (RFC 6455 §5.2).
pub const RSV1_BIT: u8 = 0x40;

/// The most the kernel buffers for one TCP socket a process writes to (the maximum of
/// `net.ipv4.tcp_wmem`): what the host can hand to a client that does not read before its
/// own queue starts to fill.
pub fn kernel_send_buffer_max() -> usize {
    let path = "/proc/sys/net/ipv4/tcp_wmem";
    let setting =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {path}: {error}"));
    setting
        .split_whitespace()
        .nth(2)
        .and_then(|max| max.parse().ok())
        .unwrap_or_else(|| panic!("{path} holds three numbers, got {setting:?}"))
}

/// A frame the host sent.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// How the host ended the connection, as seen by reading everything it sent.
#[derive(Debug, PartialEq, Eq)]
pub enum HostEnding {
    /// A close frame with this code and reason.
    Close { code: u16, reason: String },
    /// The TCP connection ended without a close frame.
    NoCloseFrame,
}

/// Data frames read while looking for the close frame.
pub struct Drained {
    pub data_frames: usize,
    pub data_bytes: usize,
    pub ending: HostEnding,
}

pub struct SilentClient {
    stream: TcpStream,
    /// Bytes read from the host and not yet decoded.
    received: Vec<u8>,
    label: String,
}

impl Host {
    /// Opens a [`SilentClient`] to `path_and_query`.
    pub async fn silent_connect(&self, path_and_query: &str) -> SilentClient {
        SilentClient::connect(self.addr(), path_and_query, None).await
    }

    /// Opens a [`SilentClient`] whose kernel receive buffer is fixed at `bytes` (the kernel
    /// doubles it for bookkeeping), so that what the host can push into the socket before
    /// it must queue is small and known.
    pub async fn silent_connect_with_receive_buffer(
        &self,
        path_and_query: &str,
        bytes: u32,
    ) -> SilentClient {
        SilentClient::connect(self.addr(), path_and_query, Some(bytes)).await
    }
}

impl SilentClient {
    async fn connect(addr: SocketAddr, path_and_query: &str, receive_buffer: Option<u32>) -> Self {
        let path = path_and_query.trim_start_matches('/');
        let label = format!("silent ws://{addr}/{path}");
        within(&format!("the handshake of {label}"), async {
            let socket = TcpSocket::new_v4().expect("a TCP socket");
            if let Some(bytes) = receive_buffer {
                // Set before connecting, so the window offered in the handshake honours it.
                socket
                    .set_recv_buffer_size(bytes)
                    .expect("setting SO_RCVBUF");
            }
            let mut stream = socket.connect(addr).await.expect("TCP connect");
            stream.set_nodelay(true).expect("setting TCP_NODELAY");
            let request = format!(
                "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .expect("writing the handshake");
            let mut received = Vec::new();
            let head_end = loop {
                if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end;
                }
                let read = stream
                    .read_buf(&mut received)
                    .await
                    .expect("reading the handshake answer");
                assert!(read > 0, "{label}: the host hung up during the handshake");
            };
            let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
            assert!(
                head.starts_with("HTTP/1.1 101"),
                "{label}: the handshake should be answered with 101, got {head:?}"
            );
            // Anything after the head is already WebSocket traffic.
            received.drain(..head_end + 4);
            Self {
                stream,
                received,
                label: label.clone(),
            }
        })
        .await
    }

    /// The client's own port, which names this connection in the kernel's socket tables.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("a bound socket").port()
    }

    /// Sends one masked frame with the given first byte (FIN, RSV bits and opcode).
    pub async fn send_frame(&mut self, first_byte: u8, payload: &[u8]) {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut bytes = vec![first_byte];
        match payload.len() {
            len @ 0..=125 => bytes.push(0x80 | len as u8),
            len @ 126..=65535 => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        let label = self.label.clone();
        let writing = self.stream.write_all(&bytes);
        if let Err(error) = within(&format!("a write on {label}"), writing).await {
            panic!("writing to {label} failed: {error}");
        }
    }

    /// Sends a whole text message in one frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(0x80 | OP_TEXT, text.as_bytes()).await;
    }

    /// Reads the next frame, or `None` if the connection ended. Pings are returned like
    /// any other frame and never answered.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        let label = self.label.clone();
        within(&format!("a frame on {label}"), async {
            if !self.fill(2).await {
                return None;
            }
            let opcode = self.received[0] & 0x0f;
            let (header, len) = match self.received[1] & 0x7f {
                126 => {
                    assert!(self.fill(4).await, "{label}: ended inside a frame header");
                    (
                        4,
                        usize::from(u16::from_be_bytes([self.received[2], self.received[3]])),
                    )
                }
                127 => {
                    assert!(self.fill(10).await, "{label}: ended inside a frame header");
                    let len = u64::from_be_bytes(self.received[2..10].try_into().expect("8"));
                    (
                        10,
                        usize::try_from(len).expect("a length that fits in memory"),
                    )
                }
                len => (2, usize::from(len)),
            };
            assert!(
                self.fill(header + len).await,
                "{label}: ended inside a frame"
            );
            let payload = self.received[header..header + len].to_vec();
            self.received.drain(..header + len);
            Some(Frame { opcode, payload })
        })
        .await
    }

    /// Reads until `wanted` bytes are buffered; false if the connection ended first.
    async fn fill(&mut self, wanted: usize) -> bool {
        while self.received.len() < wanted {
            match self.stream.read_buf(&mut self.received).await {
                Ok(0) => return false,
                Ok(_) => {}
                // A reset still ends the stream; what came before it has been read.
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    return false;
                }
                Err(error) => panic!("reading from {} failed: {error}", self.label),
            }
        }
        true
    }

    /// Reads everything the host sent until its close frame or the end of the connection,
    /// counting the data frames on the way and skipping pings without answering them.
    pub async fn drain_until_close(&mut self) -> Drained {
        let mut drained = Drained {
            data_frames: 0,
            data_bytes: 0,
            ending: HostEnding::NoCloseFrame,
        };
        while let Some(frame) = self.read_frame().await {
            match frame.opcode {
                OP_CLOSE => {
                    let (code, reason) = match frame.payload.as_slice() {
                        [hi, lo, reason @ ..] => (
                            u16::from_be_bytes([*hi, *lo]),
                            String::from_utf8_lossy(reason).into_owned(),
                        ),
                        _ => (1005, String::new()),
                    };
                    drained.ending = HostEnding::Close { code, reason };
                    break;
                }
                OP_PING => {}
                _ => {
                    drained.data_frames += 1;
                    drained.data_bytes += frame.payload.len();
                }
            }
        }
        drained
    }

    /// Reads until the first text message, skipping binary messages and pings; fails if the
    /// connection ends first.
    pub async fn next_text(&mut self) -> String {
        loop {
            match self.read_frame().await {
                Some(Frame {
                    opcode: OP_TEXT,
                    payload,
                }) => return String::from_utf8(payload).expect("UTF-8 text"),
                Some(Frame {
                    opcode: OP_CLOSE,
                    payload,
                }) => panic!(
                    "{} was closed ({}) while text was expected",
                    self.label,
                    String::from_utf8_lossy(&payload)
                ),
                Some(_) => {}
                None => panic!("{} ended while text was expected", self.label),
            }
        }
    }

    /// Reads until the host has sent its close frame and ended the connection; answers the
    /// close as RFC 6455 §5.5.1 asks and returns the code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.drain_until_close().await.ending {
            HostEnding::Close { code, reason } => {
                // The host may already have given up on the answer; a failed write is fine.
                let _ = self.stream.write_all(&close_answer(code)).await;
                (code, reason)
            }
            HostEnding::NoCloseFrame => {
                panic!("{} ended without a close frame", self.label)
            }
        }
    }
}

/// A masked close frame echoing `code` with no reason.
fn close_answer(code: u16) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let code = code.to_be_bytes();
    vec![
        0x80 | OP_CLOSE,
        0x80 | 2,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        code[0] ^ mask[0],
        code[1] ^ mask[1],
    ]
}
