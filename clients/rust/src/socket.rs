//! One WebSocket connection attempt and the ways a socket ends: opening it with the options'
//! headers, subprotocols and compression under a deadline, reading up to its first data
//! message, and telling a lost socket (resume) from a closed one (over).

use std::time::Duration;

use tokio::time::Instant;

use crate::transport::{
    CloseFrame, HandshakeError, Incoming, ReadError, Settings, WebSocket, WsUrl,
};
use crate::{Error, Options};

pub(crate) type Socket = WebSocket;

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
        if RESUMABLE_CODES.contains(&frame.code) {
            Self::Lost(format!("closed with {} {}", frame.code, frame.reason))
        } else {
            Self::Closed {
                code: frame.code,
                reason: frame.reason.clone(),
            }
        }
    }

    pub(crate) fn of_io(error: &std::io::Error) -> Self {
        Self::Lost(error.to_string())
    }
}

/// How a failed read ends the socket: a network failure loses it; a host that broke the
/// WebSocket protocol gets the close that fails the connection, which ends the session at the
/// host too, so there is nothing to resume.
pub(crate) async fn failed(socket: &mut Socket, error: ReadError) -> Ending {
    match error {
        ReadError::Ended => Ending::Lost("the socket ended".to_owned()),
        ReadError::Io(error) => Ending::of_io(&error),
        ReadError::Violation(violation) => {
            // The socket is given up either way; a failing write changes nothing.
            let _ = socket.flush().await;
            Ending::Closed {
                code: violation.close_code(),
                reason: violation.to_string(),
            }
        }
    }
}

/// Opens a WebSocket to `url` with the options' headers, subprotocols and compression.
pub(crate) async fn open(url: &str, options: &Options) -> Result<Socket, Error> {
    let target = WsUrl::parse(url).map_err(|reason| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    })?;
    let settings = Settings {
        protocols: &options.protocols,
        headers: &options.headers,
        deflate_threshold: options.deflate.then_some(options.deflate_threshold),
        max_message: options.max_message_size,
        traffic: options.traffic.as_ref(),
    };
    let connecting = WebSocket::connect(&target, &settings);
    let url = url.to_owned();
    match tokio::time::timeout(options.connect_timeout, connecting).await {
        Err(_) => Err(timeout(
            &url,
            "the WebSocket handshake",
            options.connect_timeout,
        )),
        Ok(Ok(socket)) => Ok(socket),
        Ok(Err(HandshakeError::Status(status))) => Err(Error::Refused { url, status }),
        Ok(Err(HandshakeError::Io(source))) => Err(Error::Connect { url, source }),
        Ok(Err(HandshakeError::Invalid(detail))) => Err(Error::Handshake { url, detail }),
        Ok(Err(HandshakeError::Header {
            name,
            value,
            reason,
        })) => Err(Error::InvalidHeader {
            name,
            value,
            reason,
        }),
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
    Data(Incoming),
    Ended(Ending),
    TimedOut,
}

/// Reads until the first data message (text or binary), the end of the socket, or `deadline`.
pub(crate) async fn first_data(socket: &mut Socket, deadline: Instant) -> First {
    let reading = async {
        loop {
            match socket.next().await {
                Ok(message @ (Incoming::Text(_) | Incoming::Binary(_))) => {
                    return First::Data(message);
                }
                Ok(Incoming::Close(frame)) => {
                    // Answers the close; the socket is given up after.
                    let _ = socket.flush().await;
                    return First::Ended(Ending::of_close(frame.as_ref()));
                }
                Ok(Incoming::Ping) => {
                    if let Err(error) = socket.flush().await {
                        return First::Ended(Ending::of_io(&error));
                    }
                }
                Ok(Incoming::Pong) => {}
                Err(error) => return First::Ended(failed(socket, error).await),
            }
        }
    };
    tokio::time::timeout_at(deadline, reading)
        .await
        .unwrap_or(First::TimedOut)
}

/// After the host's close frame: sends the answer and reads until the host ends the TCP
/// connection, for at most `limit`.
pub(crate) async fn finish_close(socket: &mut Socket, limit: Duration) {
    let _ = tokio::time::timeout(limit, socket.drain()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> Ending {
        Ending::of_close(Some(&CloseFrame {
            code,
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
