//! One WebSocket connection attempt and the ways a socket ends: opening it with the options'
//! headers and subprotocols under a deadline, reading up to its first data frame, and telling
//! a lost socket (resume) from a closed one (over).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Error, Options};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The close codes after which the session protocol resumes: 1001 (going away), 1006
/// (abnormal; never sent in a frame, but a peer might) and 1012 (service restart).
const RESUMABLE_CODES: [u16; 3] = [1001, 1006, 1012];

/// What a close frame without a status code stands for (RFC 6455 §7.1.5).
pub(crate) const NO_STATUS: u16 = 1005;

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Without a close handshake, or with a code that asks to come back: try again.
    Lost(String),
    /// With a close that ends the conversation.
    Closed { code: u16, reason: String },
}

impl Ending {
    pub(crate) fn of_close(frame: Option<&CloseFrame>) -> Self {
        let Some(frame) = frame else {
            return Self::Closed {
                code: NO_STATUS,
                reason: String::new(),
            };
        };
        let code = u16::from(frame.code);
        let reason = frame.reason.as_str().to_owned();
        if RESUMABLE_CODES.contains(&code) {
            Self::Lost(format!("closed with {code} {reason}"))
        } else {
            Self::Closed { code, reason }
        }
    }

    pub(crate) fn of_error(error: &tungstenite::Error) -> Self {
        Self::Lost(error.to_string())
    }
}

/// Opens a WebSocket to `url` with the options' headers and subprotocols.
pub(crate) async fn open(url: &str, options: &Options) -> Result<Socket, Error> {
    let mut request = url
        .into_client_request()
        .map_err(|error| Error::InvalidUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
    let headers = request.headers_mut();
    for (name, value) in &options.headers {
        let invalid = |reason: String| Error::InvalidHeader {
            name: name.clone(),
            value: value.clone(),
            reason,
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        headers.append(name, value);
    }
    if !options.protocols.is_empty() {
        let offered = options.protocols.join(", ");
        let value = HeaderValue::from_str(&offered).map_err(|error| Error::InvalidHeader {
            name: "Sec-WebSocket-Protocol".to_owned(),
            value: offered.clone(),
            reason: error.to_string(),
        })?;
        headers.insert("sec-websocket-protocol", value);
    }
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(options.connect_timeout, connecting).await {
        Err(_) => Err(timeout(
            url,
            "the WebSocket handshake",
            options.connect_timeout,
        )),
        Ok(Err(tungstenite::Error::Http(response))) => Err(Error::Refused {
            url: url.to_owned(),
            status: response.status().as_u16(),
        }),
        Ok(Err(error)) => Err(Error::Connect {
            url: url.to_owned(),
            source: Box::new(error),
        }),
        Ok(Ok((socket, _response))) => Ok(socket),
    }
}

pub(crate) fn timeout(url: &str, what: &'static str, limit: Duration) -> Error {
    Error::Timeout {
        url: url.to_owned(),
        what,
        seconds: limit.as_secs_f64(),
    }
}

/// What came first on a fresh socket.
pub(crate) enum First {
    Data(Message),
    Ended(Ending),
    TimedOut,
}

/// Reads until the first data frame (text or binary), the end of the socket, or `deadline`.
pub(crate) async fn first_data(socket: &mut Socket, deadline: Instant) -> First {
    let reading = async {
        loop {
            match socket.next().await {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    return First::Data(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    return First::Ended(Ending::of_close(frame.as_ref()));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return First::Ended(Ending::of_error(&error)),
                None => return First::Ended(Ending::Lost("the socket ended".to_owned())),
            }
        }
    };
    tokio::time::timeout_at(deadline, reading)
        .await
        .unwrap_or(First::TimedOut)
}

/// After the host's close frame: lets tungstenite send the answer and reads until the host
/// ends the TCP connection, for at most `limit`.
pub(crate) async fn finish_close(socket: &mut Socket, limit: Duration) {
    let draining = async { while let Some(Ok(_)) = socket.next().await {} };
    let _ = tokio::time::timeout(limit, draining).await;
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;

    fn close(code: u16) -> Ending {
        Ending::of_close(Some(&CloseFrame {
            code: CloseCode::from(code),
            reason: "why".into(),
        }))
    }

    #[test]
    fn resumes_after_going_away_and_restarts_only() {
        for code in [1001, 1006, 1012] {
            assert!(matches!(close(code), Ending::Lost(_)), "{code}");
        }
        for code in [1000, 1002, 1008, 1011, 4000] {
            assert_eq!(
                close(code),
                Ending::Closed {
                    code,
                    reason: "why".into()
                }
            );
        }
        assert_eq!(
            Ending::of_close(None),
            Ending::Closed {
                code: NO_STATUS,
                reason: String::new()
            }
        );
    }
}
