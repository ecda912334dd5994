//! What a session reports to the application, in order: messages, and the changes of
//! continuity (resumed, reset, closed) between them.

use bytes::Bytes;

/// One thing that happened, as [`Session::next_event`](crate::Session::next_event) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A text message from the function.
    Text(String),

    /// A binary message from the function.
    Binary(Bytes),

    /// A lost socket was replaced and the session continues: nothing was lost or repeated.
    /// The messages the host had sent meanwhile follow; `resent` of the client's messages,
    /// which the function had not handled yet, were sent again.
    Resumed { resent: u64 },

    /// Continuity was lost: messages in flight in either direction may be gone, and the
    /// function sees a new connection (its on-connect ran again; groups and attachment are
    /// those of the new one). What follows belongs to the new connection, whose session id
    /// is `id` (`None` for a plain socket).
    Reset {
        reason: ResetReason,
        id: Option<String>,
    },

    /// The session is over; this is the last event. `code` and `reason` are those of the
    /// close that ended it, 1006 when the client gave up reconnecting.
    Closed { code: u16, reason: String },
}

/// Why continuity was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The host refused to resume the session (`x<reason>`).
    Refused(Refusal),
    /// A plain socket was replaced by a new connection.
    Reconnected,
}

/// Why the host refused a resume, as the protocol names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No such session: it never existed here, expired, ended or overflowed.
    Unknown,
    /// The secret is not the session's.
    Secret,
    /// The session belongs to another function.
    Function,
    /// The first frame was not a resume request.
    Malformed,
    /// A reason this client does not know.
    Other(String),
}

impl Refusal {
    pub(crate) fn from_wire(reason: &str) -> Self {
        match reason {
            "unknown" => Self::Unknown,
            "secret" => Self::Secret,
            "function" => Self::Function,
            "malformed" => Self::Malformed,
            other => Self::Other(other.to_owned()),
        }
    }
}
