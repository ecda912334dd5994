//! Where a connection is in its life, as one state: the answer to "may frames be queued?",
//! "are messages read still delivered?", "who started the close, and how long do we wait for
//! the peer's answer?".
//!
//! ```text
//!            host closes (function, operator, limit, fault, shutdown)
//!   Open ──────────────────────────────────────────────► Closing { by the host }
//!   │ ▲ │    the peer's close frame arrives                   │ the peer answers, or the
//!   │ │ ├──────────────────────────────────────────────► Closing { by the peer }   deadline
//!   │ │ │                                                     │ passes
//!   │ │ └── the socket fails or ends ─────────────────────► Ended ◄────┘
//!   │ │ resumed                                               ▲
//!   ▼ │                                                       │ the resume window passes, the
//!   Detached ─────────────────────────────────────────────────┘ host closes, or it overflows
//!   (a resumable session whose socket was lost)
//! ```
//!
//! Closing means the close frame has been committed behind everything queued before it: no
//! frame may follow it, and messages the peer still sends are no longer delivered (RFC 6455
//! §5.5.1). Detached means the session's socket is gone but its connection is kept for a
//! resume: frames are still queued (and kept for the resume), nothing is read or written.
//! Ended means the connection is over: nothing is read, what was committed drains to the
//! socket, and on-close runs. The state lives with the connection's outgoing side, whose lock
//! makes "the close frame is the last frame" hold; the session, the queue and the imports all
//! ask it the same questions.

use std::time::Duration;

use tokio::time::Instant;

/// A close the host started: the code and reason it sent, which on-close reports when the
/// handshake completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostClose {
    pub code: u16,
    pub reason: Box<str>,
}

/// The state of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Messages flow both ways.
    Open,
    /// A resumable session lost its socket at `since` and waits for a resume.
    Detached { since: Instant },
    /// The close frame is committed. `by_host` is the close the host started (`None` when it
    /// answers the peer's close); `since` starts the wait for the peer's answer.
    Closing {
        by_host: Option<HostClose>,
        since: Instant,
    },
    /// The session is over; `by_host` as in `Closing`, if a close was started.
    Ended { by_host: Option<HostClose> },
}

/// The kind of a [`Phase`], kept in an atomic beside the lock for questions asked on every
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PhaseKind {
    Open = 0,
    Detached = 1,
    Closing = 2,
    Ended = 3,
}

impl PhaseKind {
    pub(super) fn from_u8(value: u8) -> Self {
        match value {
            0 => PhaseKind::Open,
            1 => PhaseKind::Detached,
            2 => PhaseKind::Closing,
            _ => PhaseKind::Ended,
        }
    }

    /// Frames may be queued for the peer (a detached session keeps them for its resume).
    pub fn accepts_frames(self) -> bool {
        matches!(self, PhaseKind::Open | PhaseKind::Detached)
    }

    /// Messages read from the peer are handed to the function.
    pub fn delivers_messages(self) -> bool {
        self == PhaseKind::Open
    }
}

impl Phase {
    pub fn kind(&self) -> PhaseKind {
        match self {
            Phase::Open => PhaseKind::Open,
            Phase::Detached { .. } => PhaseKind::Detached,
            Phase::Closing { .. } => PhaseKind::Closing,
            Phase::Ended { .. } => PhaseKind::Ended,
        }
    }

    /// Starts a close: by the host when `by_host` is given, else in answer to the peer's.
    /// Only an open connection can start closing; false otherwise (the first close wins). A
    /// detached session has no socket to say goodbye on: a close by the host ends it at once.
    pub fn start_close(&mut self, by_host: Option<HostClose>, now: Instant) -> bool {
        match self {
            Phase::Open => {
                *self = Phase::Closing {
                    by_host,
                    since: now,
                }
            }
            Phase::Detached { .. } if by_host.is_some() => *self = Phase::Ended { by_host },
            _ => return false,
        }
        true
    }

    /// A resumable session lost its socket; false unless it was open.
    pub fn detach(&mut self, now: Instant) -> bool {
        if *self != Phase::Open {
            return false;
        }
        *self = Phase::Detached { since: now };
        true
    }

    /// A detached session has a socket again; false unless it was detached.
    pub fn resume(&mut self) -> bool {
        if !matches!(self, Phase::Detached { .. }) {
            return false;
        }
        *self = Phase::Open;
        true
    }

    /// The session is over, however it ended.
    pub fn end(&mut self) {
        let by_host = self.host_close().cloned();
        *self = Phase::Ended { by_host };
    }

    /// The close the host started, if it did.
    pub fn host_close(&self) -> Option<&HostClose> {
        match self {
            Phase::Closing { by_host, .. } | Phase::Ended { by_host } => by_host.as_ref(),
            Phase::Open | Phase::Detached { .. } => None,
        }
    }

    /// Until when the session waits for the peer to answer a close the host started; `None`
    /// when there is nothing to wait for.
    pub fn close_deadline(&self, timeout: Duration) -> Option<Instant> {
        match self {
            Phase::Closing {
                by_host: Some(_),
                since,
            } => Some(*since + timeout),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_close(code: u16) -> Option<HostClose> {
        Some(HostClose {
            code,
            reason: "bye".into(),
        })
    }

    #[test]
    fn the_first_close_wins_and_nothing_reopens() {
        let now = Instant::now();
        let mut phase = Phase::Open;
        assert!(phase.kind().accepts_frames() && phase.kind().delivers_messages());
        assert!(phase.start_close(host_close(4000), now));
        assert!(!phase.start_close(host_close(1001), now));
        assert!(!phase.start_close(None, now));
        assert_eq!(phase.host_close().map(|c| c.code), Some(4000));
        assert!(!phase.kind().accepts_frames() && !phase.kind().delivers_messages());
        phase.end();
        assert_eq!(phase.kind(), PhaseKind::Ended);
        assert_eq!(
            phase.host_close().map(|c| c.code),
            Some(4000),
            "kept for on-close"
        );
        assert!(!phase.start_close(host_close(1000), now));
    }

    #[test]
    fn only_a_close_the_host_started_waits_for_an_answer() {
        let now = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut by_peer = Phase::Open;
        by_peer.start_close(None, now);
        assert_eq!(by_peer.close_deadline(timeout), None);
        assert_eq!(by_peer.host_close(), None);

        let mut by_host = Phase::Open;
        by_host.start_close(host_close(1011), now);
        assert_eq!(by_host.close_deadline(timeout), Some(now + timeout));
        by_host.end();
        assert_eq!(by_host.close_deadline(timeout), None);
    }

    #[test]
    fn a_detached_session_resumes_or_ends_but_never_closes_with_a_frame() {
        let now = Instant::now();
        let mut phase = Phase::Open;
        assert!(phase.detach(now));
        assert!(!phase.detach(now));
        assert!(phase.kind().accepts_frames() && !phase.kind().delivers_messages());
        assert!(!phase.start_close(None, now), "no peer to answer");
        assert!(phase.resume());
        assert_eq!(phase, Phase::Open);
        assert!(!phase.resume());

        phase.detach(now);
        assert!(phase.start_close(host_close(4000), now));
        assert_eq!(phase.kind(), PhaseKind::Ended, "no close frame to wait for");
        assert_eq!(phase.host_close().map(|c| c.code), Some(4000));
    }

    #[test]
    fn a_connection_that_ends_without_a_close_reports_none() {
        let mut phase = Phase::Open;
        phase.end();
        assert_eq!(phase, Phase::Ended { by_host: None });
        assert_eq!(PhaseKind::from_u8(phase.kind() as u8), PhaseKind::Ended);
    }
}
