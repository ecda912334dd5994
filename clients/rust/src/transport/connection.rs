//! One client WebSocket over TCP: connecting (TCP and the handshake), writing masked frames
//! (compressed above the threshold when permessage-deflate was agreed), and reading the
//! server's frames into messages: fragments joined, compressed messages inflated within the
//! message limit, pings answered, a close answered once.
//!
//! Writing and reading are split so the driver can write many frames and flush once, and so
//! that [`WebSocket::next`] is cancel-safe: everything it has read lives in the struct, and
//! its only wait is one read from the socket, so it can sit in a `select!` with other work.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::deflate::Deflate;
use super::error::{ReadError, Violation};
use super::frame::{self, MAX_HEADER, OpCode};
use super::handshake::{self, HandshakeError, Offer};
use super::mask;
use super::url::WsUrl;
use crate::Traffic;

/// How much the read buffer grows by when it is full.
const READ_CHUNK: usize = 8 * 1024;

/// A write buffer larger than this is given back after a flush, so one large message does not
/// keep its buffer for the life of the connection.
const WRITE_KEEP: usize = 64 * 1024;

/// The most a close frame's reason may hold (125 bytes of payload less the code).
const CLOSE_REASON_MAX: usize = 123;

/// A data message to send. `Text` holds UTF-8 (it is only built from `str`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    Text(Bytes),
    Binary(Bytes),
}

/// A close frame's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseFrame {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    Text(String),
    Binary(Bytes),
    /// A ping; its pong is queued and goes out with the next flush.
    Ping,
    Pong,
    /// The server's close; the answer is queued (unless the client closed first). `None`: a
    /// close frame without a code.
    Close(Option<CloseFrame>),
}

/// How to connect, besides the URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings<'a> {
    pub(crate) protocols: &'a [String],
    pub(crate) headers: &'a [(String, String)],
    /// Offer permessage-deflate and compress messages of at least this many bytes.
    pub(crate) deflate_threshold: Option<usize>,
    /// The longest message accepted, inflated.
    pub(crate) max_message: usize,
    pub(crate) traffic: Option<&'a Traffic>,
}

/// A message arriving in fragments.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
}

pub(crate) struct WebSocket {
    stream: TcpStream,
    /// Bytes read and not parsed yet.
    read: BytesMut,
    /// Frames queued; those before `flushed` are written.
    write: Vec<u8>,
    flushed: usize,
    partial: Option<Partial>,
    deflate: Option<Deflate>,
    max_message: usize,
    /// Masking keys. Seeded from the system's source: RFC 6455 §5.3 asks keys that the
    /// application cannot predict.
    masks: fastrand::Rng,
    close_sent: bool,
    traffic: Option<Traffic>,
}

impl WebSocket {
    /// Opens a TCP connection to `url` and performs the handshake.
    pub(crate) async fn connect(
        url: &WsUrl,
        settings: &Settings<'_>,
    ) -> Result<Self, HandshakeError> {
        let offer = Offer {
            protocols: settings.protocols,
            headers: settings.headers,
            deflate: settings.deflate_threshold.is_some(),
        };
        let key = handshake::new_key();
        let request = handshake::request(url, &key, &offer)?;
        let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&request).await?;
        let traffic = settings.traffic.cloned();
        if let Some(traffic) = &traffic {
            traffic.add_sent(request.len());
        }
        let mut read = BytesMut::with_capacity(READ_CHUNK);
        let answer = loop {
            if let Some(answer) = handshake::read_answer(&read, &key, &offer)? {
                break answer;
            }
            let n = stream.read_buf(&mut read).await?;
            if n == 0 {
                let eof = std::io::ErrorKind::UnexpectedEof;
                return Err(std::io::Error::new(
                    eof,
                    "the server closed the connection in the handshake",
                )
                .into());
            }
            if let Some(traffic) = &traffic {
                traffic.add_received(n);
            }
        };
        read.advance(answer.len);
        let threshold = settings.deflate_threshold.unwrap_or(usize::MAX);
        let mut seed = [0; 8];
        let _ = getrandom::fill(&mut seed);
        Ok(Self {
            stream,
            read,
            write: Vec::new(),
            flushed: 0,
            partial: None,
            deflate: answer.deflate.map(|agreed| Deflate::new(agreed, threshold)),
            max_message: settings.max_message,
            masks: fastrand::Rng::with_seed(u64::from_ne_bytes(seed) ^ fastrand::u64(..)),
            close_sent: false,
            traffic,
        })
    }

    /// Whether permessage-deflate was agreed.
    #[cfg(test)]
    pub(crate) fn deflate(&self) -> bool {
        self.deflate.is_some()
    }

    /// Queues a data message.
    pub(crate) fn feed(&mut self, data: &Data) {
        match data {
            Data::Text(text) => self.feed_message(true, text),
            Data::Binary(bytes) => self.feed_message(false, bytes),
        }
    }

    /// Queues a text (`text`: the payload is UTF-8) or binary message; compressed when deflate
    /// was agreed and that makes it smaller.
    pub(crate) fn feed_message(&mut self, text: bool, payload: &[u8]) {
        if self.close_sent {
            return;
        }
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let Self {
            deflate,
            write,
            masks,
            ..
        } = self;
        match deflate {
            Some(deflate) => deflate.compressed(payload, |compressed| match compressed {
                Some(compressed) => push_frame(write, masks, opcode, true, compressed),
                None => push_frame(write, masks, opcode, false, payload),
            }),
            None => push_frame(write, masks, opcode, false, payload),
        }
    }

    pub(crate) fn feed_ping(&mut self) {
        if !self.close_sent {
            push_frame(&mut self.write, &mut self.masks, OpCode::Ping, false, &[]);
        }
    }

    /// Queues a close frame (once; nothing is written after it). The reason is cut to what a
    /// close frame can carry.
    pub(crate) fn feed_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        let mut end = reason.len().min(CLOSE_REASON_MAX);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = [0; 2 + CLOSE_REASON_MAX];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
        push_frame(
            &mut self.write,
            &mut self.masks,
            OpCode::Close,
            false,
            &payload[..2 + end],
        );
    }

    /// Writes what was queued. Cancel-safe: what was written is remembered.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        while self.flushed < self.write.len() {
            let n = self.stream.write(&self.write[self.flushed..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.flushed += n;
            if let Some(traffic) = &self.traffic {
                traffic.add_sent(n);
            }
        }
        self.write.clear();
        self.flushed = 0;
        if self.write.capacity() > WRITE_KEEP {
            self.write.shrink_to(READ_CHUNK);
        }
        Ok(())
    }

    /// Queues `data` and writes everything queued.
    pub(crate) async fn send(&mut self, data: &Data) -> std::io::Result<()> {
        self.feed(data);
        self.flush().await
    }

    /// The next message or control frame from the server. On a violation the close frame
    /// that fails the connection is queued; flush it and give the socket up.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ReadError> {
        loop {
            match self.parse() {
                Ok(Some(incoming)) => return Ok(incoming),
                Ok(None) => {}
                Err(violation) => {
                    self.feed_close(violation.close_code(), &violation.to_string());
                    return Err(ReadError::Violation(violation));
                }
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
                self.read.reserve(READ_CHUNK);
            }
            let n = self.stream.read_buf(&mut self.read).await?;
            if n == 0 {
                return Err(ReadError::Ended);
            }
            if let Some(traffic) = &self.traffic {
                traffic.add_received(n);
            }
        }
    }

    /// After the close handshake: writes what is queued (the answer to the server's close),
    /// then reads until the server ends the TCP connection, as RFC 6455 §7.1.1 has it.
    pub(crate) async fn drain(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        while self.next().await.is_ok() {}
    }

    /// Takes the next message out of what was read, if all of it is there.
    fn parse(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some(header) = frame::read_header(&self.read, self.deflate.is_some())? else {
                return Ok(None);
            };
            let so_far = self
                .partial
                .as_ref()
                .map_or(0, |partial| partial.data.len());
            let room = self.max_message.saturating_sub(so_far) as u64;
            if header.payload_len > room {
                return Err(Violation::TooBig(self.max_message));
            }
            // Bounded by the message limit just above.
            let len = header.payload_len as usize;
            let frame_len = header.header_len + len;
            if self.read.len() < frame_len {
                self.read.reserve(frame_len - self.read.len());
                return Ok(None);
            }
            self.read.advance(header.header_len);
            let payload = self.read.split_to(len);
            let incoming = match header.opcode {
                OpCode::Ping => Some(self.on_ping(&payload)),
                OpCode::Pong => Some(Incoming::Pong),
                OpCode::Close => Some(self.on_close(&payload)?),
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(Violation::Interleaved);
                    }
                    let text = header.opcode == OpCode::Text;
                    if header.fin {
                        Some(self.complete(text, header.compressed, Body::Frame(payload))?)
                    } else {
                        self.partial = Some(Partial {
                            text,
                            compressed: header.compressed,
                            data: payload.to_vec(),
                        });
                        None
                    }
                }
                OpCode::Continuation => {
                    let mut partial = self.partial.take().ok_or(Violation::StrayContinuation)?;
                    partial.data.extend_from_slice(&payload);
                    if header.fin {
                        let body = Body::Joined(partial.data);
                        Some(self.complete(partial.text, partial.compressed, body)?)
                    } else {
                        self.partial = Some(partial);
                        None
                    }
                }
            };
            if let Some(incoming) = incoming {
                return Ok(Some(incoming));
            }
        }
    }

    fn on_ping(&mut self, payload: &[u8]) -> Incoming {
        if !self.close_sent {
            push_frame(
                &mut self.write,
                &mut self.masks,
                OpCode::Pong,
                false,
                payload,
            );
        }
        Incoming::Ping
    }

    /// Reads a close frame (RFC 6455 §5.5.1, §7.4) and queues the answer, echoing the code.
    fn on_close(&mut self, payload: &[u8]) -> Result<Incoming, Violation> {
        let frame = match payload {
            [] => None,
            [_] => return Err(Violation::Close("one byte, half a code")),
            [high, low, reason @ ..] => {
                let code = u16::from_be_bytes([*high, *low]);
                if !may_be_sent(code) {
                    return Err(Violation::Close("a code no endpoint may send"));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| Violation::Utf8)?;
                Some(CloseFrame {
                    code,
                    reason: reason.to_owned(),
                })
            }
        };
        match &frame {
            Some(frame) => self.feed_close(frame.code, ""),
            None => {
                if !self.close_sent {
                    self.close_sent = true;
                    push_frame(&mut self.write, &mut self.masks, OpCode::Close, false, &[]);
                }
            }
        }
        Ok(Incoming::Close(frame))
    }

    /// A whole message: inflated if compressed, checked as UTF-8 if text.
    fn complete(
        &mut self,
        text: bool,
        compressed: bool,
        body: Body,
    ) -> Result<Incoming, Violation> {
        let body = match (compressed, &mut self.deflate) {
            (true, Some(deflate)) => {
                let inflated = deflate.inflate(body.as_slice(), self.max_message);
                Body::Joined(inflated.map_err(|error| match error {
                    super::deflate::InflateError::TooBig(limit) => Violation::TooBig(limit),
                    super::deflate::InflateError::Corrupt(why) => Violation::Inflate(why),
                })?)
            }
            // The header reader refuses RSV1 unless deflate was agreed.
            (true, None) => return Err(Violation::ReservedBits),
            (false, _) => body,
        };
        if text {
            let text = String::from_utf8(body.into_vec()).map_err(|_| Violation::Utf8)?;
            Ok(Incoming::Text(text))
        } else {
            Ok(Incoming::Binary(body.into_bytes()))
        }
    }
}

/// A message's payload: one frame's, still in the read buffer, or several joined.
enum Body {
    Frame(BytesMut),
    Joined(Vec<u8>),
}

impl Body {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Frame(bytes) => bytes,
            Self::Joined(bytes) => bytes,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Self::Frame(bytes) => bytes.to_vec(),
            Self::Joined(bytes) => bytes,
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Frame(bytes) => bytes.freeze(),
            Self::Joined(bytes) => Bytes::from(bytes),
        }
    }
}

/// Close codes a peer may put in a frame (RFC 6455 §7.4; 1012–1014 registered since).
fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Appends one whole frame: the header, then the payload masked with a fresh key.
fn push_frame(
    write: &mut Vec<u8>,
    masks: &mut fastrand::Rng,
    opcode: OpCode,
    compressed: bool,
    payload: &[u8],
) {
    let key = masks.u32(..).to_ne_bytes();
    write.reserve(MAX_HEADER + payload.len());
    frame::write_header(write, opcode, compressed, payload.len(), key);
    let start = write.len();
    write.extend_from_slice(payload);
    mask::apply(&mut write[start..], key);
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
