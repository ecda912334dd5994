//! A WebSocket client that fails the test with a clear message instead of returning errors.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::within;

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The close frame a peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
}

impl CloseInfo {
    pub fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// One text message split into one frame per part, so the host has to reassemble it.
pub fn text_fragments(parts: &[&str]) -> Vec<Message> {
    fragments(
        Data::Text,
        parts.iter().map(|part| part.as_bytes().to_vec()),
    )
}

/// One binary message split into one frame per part.
pub fn binary_fragments(parts: impl IntoIterator<Item = Vec<u8>>) -> Vec<Message> {
    fragments(Data::Binary, parts)
}

fn fragments(kind: Data, parts: impl IntoIterator<Item = Vec<u8>>) -> Vec<Message> {
    let parts: Vec<Vec<u8>> = parts.into_iter().collect();
    assert!(parts.len() >= 2, "a fragmented message needs several parts");
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let opcode = OpCode::Data(if index == 0 { kind } else { Data::Continue });
            Message::Frame(Frame::message(part, opcode, index == last))
        })
        .collect()
}

/// What reading the next frame from the host produced.
enum Received {
    Data(Message),
    Close(Option<CloseFrame>),
    End(Option<tokio_tungstenite::tungstenite::Error>),
}

pub struct Client {
    stream: Stream,
    /// The URL, to say which connection a failure is about.
    label: String,
}

impl Client {
    pub(super) fn new(stream: Stream, label: String) -> Self {
        Self { stream, label }
    }

    pub async fn send(&mut self, message: Message) {
        let label = self.label.clone();
        let sending = self.stream.send(message);
        if let Err(error) = within(&format!("a send on {label}"), sending).await {
            panic!("sending on {label} failed: {error}");
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) {
        self.send(Message::binary(bytes)).await;
    }

    /// Sends each message (or frame) in turn.
    pub async fn send_all(&mut self, messages: Vec<Message>) {
        for message in messages {
            self.send(message).await;
        }
    }

    /// Sends messages the host is expected to refuse by closing the connection, and returns
    /// the close frame it sent.
    ///
    /// The host may close while the messages are still being written and stop reading, so the
    /// sending may fail or stall: the close frame is read at the same time and the sending is
    /// given up once it arrives.
    pub async fn send_expecting_close(&mut self, messages: Vec<Message>) -> CloseInfo {
        let label = self.label.clone();
        let info = {
            let (mut sink, mut source) = (&mut self.stream).split();
            let sending = async move {
                for message in messages {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
            };
            let closing = async {
                loop {
                    match source.next().await {
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(Some(frame)))) => {
                            return CloseInfo::new(u16::from(frame.code), frame.reason.as_str());
                        }
                        other => panic!(
                            "{label} should have been closed, got {}",
                            describe_next(&other)
                        ),
                    }
                }
            };
            tokio::pin!(sending, closing);
            within(&format!("{label} to be closed"), async {
                tokio::select! {
                    info = &mut closing => info,
                    () = &mut sending => closing.await,
                }
            })
            .await
        };
        self.finish_close_handshake().await;
        info
    }

    async fn receive(&mut self) -> Received {
        let label = self.label.clone();
        loop {
            let next = within(&format!("a message on {label}"), self.stream.next()).await;
            return match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => Received::Close(frame),
                Some(Ok(message)) => Received::Data(message),
                Some(Err(error)) => Received::End(Some(error)),
                None => Received::End(None),
            };
        }
    }

    /// The next data message; fails the test if the connection closes instead.
    pub async fn receive_message(&mut self) -> Message {
        match self.receive().await {
            Received::Data(message) => message,
            Received::Close(frame) => panic!(
                "{} was closed ({}) while a message was expected",
                self.label,
                describe_close(frame.as_ref())
            ),
            Received::End(error) => panic!(
                "{} ended without a close frame while a message was expected ({error:?})",
                self.label
            ),
        }
    }

    pub async fn receive_text(&mut self) -> String {
        match self.receive_message().await {
            Message::Text(text) => text.as_str().to_owned(),
            other => panic!(
                "{} sent {} where text was expected",
                self.label,
                describe(&other)
            ),
        }
    }

    pub async fn receive_binary(&mut self) -> Bytes {
        match self.receive_message().await {
            Message::Binary(bytes) => bytes,
            other => panic!(
                "{} sent {} where binary was expected",
                self.label,
                describe(&other)
            ),
        }
    }

    pub async fn receive_json(&mut self) -> serde_json::Value {
        let text = self.receive_text().await;
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{} sent {text:?}, not JSON: {error}", self.label))
    }

    /// Sends a text message and returns the text reply.
    pub async fn ask(&mut self, text: &str) -> String {
        self.send_text(text).await;
        self.receive_text().await
    }

    /// Sends every message while reading replies at the same time, so the host sees them
    /// pipelined, and returns as many replies as messages were sent.
    pub async fn exchange_pipelined(&mut self, messages: Vec<Message>) -> Vec<Message> {
        let count = messages.len();
        let label = self.label.clone();
        let (mut sink, mut source) = (&mut self.stream).split();
        let sending = async {
            for message in messages {
                sink.feed(message).await.expect("a pipelined send");
            }
            sink.flush().await.expect("flushing pipelined sends");
        };
        let receiving = async {
            let mut replies = Vec::with_capacity(count);
            while replies.len() < count {
                match source.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(reply)) if reply.is_text() || reply.is_binary() => replies.push(reply),
                    other => panic!(
                        "{label}: after {} of {count} replies got {}",
                        replies.len(),
                        describe_next(&other)
                    ),
                }
            }
            replies
        };
        let ((), replies) = within(
            &format!("{count} pipelined replies on {label}"),
            futures_util::future::join(sending, receiving),
        )
        .await;
        replies
    }

    /// Sends a ping and waits for the matching pong; data messages in between fail the test.
    pub async fn ping(&mut self, payload: &'static [u8]) {
        self.send(Message::Ping(Bytes::from_static(payload))).await;
        let label = self.label.clone();
        loop {
            let next = within(&format!("a pong on {label}"), self.stream.next()).await;
            match next {
                Some(Ok(Message::Pong(echoed))) if echoed == payload => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!(
                    "{label} should answer a ping with a pong, got {}",
                    describe_next(&other)
                ),
            }
        }
    }

    /// Expects the host to close the connection next; completes the close handshake and
    /// returns the code and reason the host sent.
    pub async fn expect_close(&mut self) -> CloseInfo {
        match self.receive().await {
            Received::Close(Some(frame)) => {
                self.finish_close_handshake().await;
                CloseInfo::new(u16::from(frame.code), frame.reason.as_str())
            }
            Received::Close(None) => panic!("{} was closed without a close code", self.label),
            Received::Data(message) => panic!(
                "{} sent {} where a close frame was expected",
                self.label,
                describe(&message)
            ),
            Received::End(error) => {
                panic!("{} ended without a close frame ({error:?})", self.label)
            }
        }
    }

    /// Like [`expect_close`](Self::expect_close), but data messages that arrive before the
    /// close frame are returned instead of failing the test (for closes that race messages).
    pub async fn expect_close_after_data(&mut self) -> (Vec<Message>, CloseInfo) {
        let mut before = Vec::new();
        loop {
            match self.receive().await {
                Received::Data(message) => before.push(message),
                Received::Close(Some(frame)) => {
                    self.finish_close_handshake().await;
                    let info = CloseInfo::new(u16::from(frame.code), frame.reason.as_str());
                    return (before, info);
                }
                Received::Close(None) => panic!("{} was closed without a close code", self.label),
                Received::End(error) => {
                    panic!("{} ended without a close frame ({error:?})", self.label)
                }
            }
        }
    }

    /// Closes from the client side with a code and reason and waits for the host's answer.
    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.close_with(Some(frame)).await;
    }

    /// Closes from the client side with an empty close frame (no status code).
    pub async fn close_without_code(mut self) {
        self.close_with(None).await;
    }

    async fn close_with(&mut self, frame: Option<CloseFrame>) {
        let label = self.label.clone();
        if let Err(error) = within(&format!("closing {label}"), self.stream.close(frame)).await {
            panic!("closing {label} failed: {error}");
        }
        self.finish_close_handshake().await;
    }

    /// Reads until the host ends the connection, which answers or completes a close
    /// handshake; anything but the end of the stream is left unexamined.
    async fn finish_close_handshake(&mut self) {
        let label = self.label.clone();
        within(&format!("{label} to finish closing"), async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }

    /// Ends the TCP connection without any close frame, like a client that vanished.
    pub fn drop_without_close(self) {
        drop(self);
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) if text.len() <= 200 => format!("text {:?}", text.as_str()),
        Message::Text(text) => format!("{} bytes of text", text.len()),
        Message::Binary(bytes) => format!("{} bytes of binary", bytes.len()),
        other => format!("{other:?}"),
    }
}

/// Describes what reading from a stream produced, without dumping large payloads.
fn describe_next(next: &Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> String {
    match next {
        Some(Ok(message)) => describe(message),
        Some(Err(error)) => format!("the error {error}"),
        None => "the end of the stream".to_owned(),
    }
}

fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("code {} reason {:?}", u16::from(frame.code), frame.reason),
        None => "no close code".to_owned(),
    }
}
