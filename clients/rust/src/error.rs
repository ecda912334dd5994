//! The errors callers match on: a connection that could not be made, a host that broke the
//! protocol, a session that is already over, a close code the protocol gives another meaning.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no URL to connect to")]
    NoUrl,

    #[error("{url} is not a WebSocket URL: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A handshake header that is not valid HTTP.
    #[error("the header {name}: {value} cannot be sent: {reason}")]
    InvalidHeader {
        name: String,
        value: String,
        reason: String,
    },

    /// The host answered the handshake with an HTTP status instead of 101 (on-connect
    /// rejected the client, the function does not exist, a limit was reached, ...).
    #[error("{url} refused the WebSocket handshake with HTTP {status}")]
    Refused { url: String, status: u16 },

    /// The TCP connection failed, or broke during the handshake.
    #[error("connecting to {url} failed: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// The host answered with something that is not a WebSocket handshake's 101.
    #[error("{url} answered the WebSocket handshake wrongly: {detail}")]
    Handshake { url: String, detail: String },

    /// The connection was lost before the session started.
    #[error("the connection to {url} was lost: {detail}")]
    Lost { url: String, detail: String },

    /// The host closed the connection before the session started.
    #[error("{url} closed the connection with {code} {reason:?} before the session started")]
    ClosedEarly {
        url: String,
        code: u16,
        reason: String,
    },

    #[error("{what} on {url} took longer than {seconds} s")]
    Timeout {
        url: String,
        what: &'static str,
        seconds: f64,
    },

    /// The host sent something the session protocol does not allow.
    #[error("{url} broke the session protocol: {detail}")]
    Protocol { url: String, detail: String },

    /// The session closed; nothing more can be sent.
    #[error("the session is closed")]
    Closed,

    /// Close codes the application may send are 1000 and 3000–4999; 1001 would leave a
    /// session waiting for a resume that never comes.
    #[error("close code {0} cannot be sent by an application (use 1000 or 3000-4999)")]
    InvalidCloseCode(u16),

    /// A close reason longer than a close frame can carry.
    #[error("a close reason of {0} bytes is over the 123 a close frame can carry")]
    CloseReasonTooLong(usize),
}
