//! Getting a socket to serve: a new session (`s<id> <secret>` first), a resumed one
//! (`r<secret> <received>`, answered by `r<handled>` or `x<reason>`), or a plain socket, and
//! the reconnect loop that tries them in turn with backoff after a socket is lost.

use std::time::Duration;

use tokio::time::Instant;

use super::{Closed, Driver, SessionState};
use crate::outbox::Outbox;
use crate::socket::{self, Ending, First, Socket};
use crate::transport::Incoming;
use crate::wire::{self, HostFrame};
use crate::{Error, Event, Refusal, ResetReason, endpoint};

/// Why an attempt produced no socket.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Network, handshake or timeout trouble: try again after a pause.
    Failed(Error),
    /// The host refused the resume: the session is gone.
    Refused(Refusal),
    /// The host closed with a code that ends the conversation.
    Over { code: u16, reason: String },
    /// The host broke the protocol; the client closed with 1002.
    Violation { detail: String },
}

impl AttemptError {
    /// The error a first connection reports.
    pub(super) fn into_error(self, url: &str) -> Error {
        let url = url.to_owned();
        match self {
            Self::Failed(error) => error,
            Self::Refused(refusal) => Error::Protocol {
                url,
                detail: format!("a new session was refused as a resume ({refusal:?})"),
            },
            Self::Over { code, reason } => Error::ClosedEarly { url, code, reason },
            Self::Violation { detail } => Error::Protocol { url, detail },
        }
    }
}

impl Driver {
    /// A new connection: a new session, or a plain socket.
    pub(super) async fn connect_new(&mut self, url: &str) -> Result<Socket, AttemptError> {
        if !self.options.session {
            let socket = socket::open(url, &self.options)
                .await
                .map_err(AttemptError::Failed)?;
            if let Some(reason) = self.pending_reset.take() {
                self.emit(Event::Reset { reason, id: None }).await;
            }
            return Ok(socket);
        }
        let deadline = Instant::now() + self.options.connect_timeout;
        let mut socket = socket::open(&endpoint::starting(url), &self.options)
            .await
            .map_err(AttemptError::Failed)?;
        let HostFrame::Started(ticket) = self.first_frame(&mut socket, url, deadline).await? else {
            let detail = "a new session must begin with `s<id> <secret>`".to_owned();
            return Err(violation(&mut socket, detail).await);
        };
        let id = ticket.id.clone();
        self.session = Some(SessionState {
            ticket,
            received: 0,
            acknowledged: 0,
            outbox: Outbox::default(),
        });
        self.links.id.send_replace(Some(id.clone()));
        if let Some(reason) = self.pending_reset.take() {
            let id = Some(id);
            self.emit(Event::Reset { reason, id }).await;
        }
        Ok(socket)
    }

    /// Resumes the session on a new socket to `url`.
    async fn resume(&mut self, url: &str) -> Result<Socket, AttemptError> {
        let Some(state) = &self.session else {
            return self.connect_new(url).await;
        };
        let target = endpoint::resuming(url, &state.ticket.id);
        let request = wire::resume(&state.ticket, state.received);
        let deadline = Instant::now() + self.options.connect_timeout;
        let mut socket = socket::open(&target, &self.options)
            .await
            .map_err(AttemptError::Failed)?;
        if let Err(error) = socket.send(&request).await {
            return Err(lost(url, error));
        }
        match self.first_frame(&mut socket, url, deadline).await? {
            HostFrame::Resumed { handled } => self.continue_session(socket, url, handled).await,
            HostFrame::Refused(reason) => Err(AttemptError::Refused(Refusal::from_wire(&reason))),
            _ => {
                let detail = "a resume must be answered with `r<handled>` or `x<reason>`";
                Err(violation(&mut socket, detail.to_owned()).await)
            }
        }
    }

    /// After `r<handled>`: drops what the function handled and sends the rest again.
    async fn continue_session(
        &mut self,
        mut socket: Socket,
        url: &str,
        handled: u64,
    ) -> Result<Socket, AttemptError> {
        let Some(state) = self.session.as_mut() else {
            return Err(AttemptError::Failed(Error::Closed));
        };
        if let Err(bad) = state.outbox.resume_at(handled) {
            return Err(violation(&mut socket, bad.to_string()).await);
        }
        // The resume request told the host how much arrived.
        state.acknowledged = state.received;
        let resent = state.outbox.unconfirmed_len();
        for message in state.outbox.unconfirmed() {
            socket.feed(message);
        }
        if let Err(error) = socket.flush().await {
            return Err(lost(url, error));
        }
        self.emit(Event::Resumed { resent }).await;
        Ok(socket)
    }

    /// The host's first data frame on a session socket.
    async fn first_frame(
        &self,
        socket: &mut Socket,
        url: &str,
        deadline: Instant,
    ) -> Result<HostFrame, AttemptError> {
        let parsed = match socket::first_data(socket, deadline).await {
            First::Data(Incoming::Text(text)) => wire::parse_text(text),
            First::Data(Incoming::Binary(bytes)) => wire::parse_binary(&bytes),
            First::Data(_) => return Err(violation(socket, "an odd frame".to_owned()).await),
            First::Ended(Ending::Lost(detail)) => {
                let url = url.to_owned();
                return Err(AttemptError::Failed(Error::Lost { url, detail }));
            }
            First::Ended(Ending::Closed { code, reason }) => {
                return Err(AttemptError::Over { code, reason });
            }
            First::TimedOut => {
                let limit = self.options.connect_timeout;
                let error = socket::timeout(url, "waiting for the session's first frame", limit);
                return Err(AttemptError::Failed(error));
            }
        };
        match parsed {
            Ok(frame) => Ok(frame),
            Err(malformed) => Err(violation(socket, malformed.to_string()).await),
        }
    }

    /// After a lost socket: tries again, with pauses, until a socket is attached or the
    /// session is over.
    pub(super) async fn reattach(&mut self) -> Result<Socket, Closed> {
        if !self.options.session {
            self.pending_reset = Some(ResetReason::Reconnected);
        }
        let mut failures: u32 = 0;
        let mut last_error = None;
        let mut pause = true;
        loop {
            if let Some(closed) = self.close_given_up() {
                return Err(closed);
            }
            if !self.options.reconnect.allows(failures + 1) {
                let gave_up = || gave_up(failures, last_error);
                return Err(self.closed_as_requested().unwrap_or_else(gave_up));
            }
            if pause {
                pause = false;
                let delay = self.options.reconnect.delay(failures + 1, &mut self.random);
                self.pause(delay).await;
                // The pause may have brought a close request: check again before the attempt.
                continue;
            }
            pause = true;
            let url = self.endpoints.next().to_owned();
            match self.resume(&url).await {
                Ok(socket) => return Ok(socket),
                Err(AttemptError::Failed(error)) => {
                    failures += 1;
                    last_error = Some(error);
                }
                Err(AttemptError::Refused(refusal)) => {
                    self.session = None;
                    self.links.id.send_replace(None);
                    // A close has nothing left to close; otherwise start anew at once.
                    if let Some(closed) = self.closed_as_requested() {
                        return Err(closed);
                    }
                    self.pending_reset = Some(ResetReason::Refused(refusal));
                    failures = 0;
                    pause = false;
                }
                Err(AttemptError::Over { code, reason }) => return Err(Closed { code, reason }),
                Err(AttemptError::Violation { detail }) => {
                    return Err(Closed {
                        code: 1002,
                        reason: detail,
                    });
                }
            }
        }
    }

    /// Waits before the next attempt; a close request cuts the wait short, so the close is
    /// delivered (or given up) at once.
    async fn pause(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        if self.closing.is_some() {
            tokio::time::sleep_until(until).await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            changed = self.links.close.changed() => self.take_close_request(changed),
        }
    }

    /// Whether a close under way should stop the attempts: a plain socket has no session to
    /// deliver it to, and a session's close has a deadline.
    fn close_given_up(&self) -> Option<Closed> {
        let closing = self.closing.as_ref()?;
        let moot = self.session.is_none() || Instant::now() >= closing.deadline;
        if moot {
            self.closed_as_requested()
        } else {
            None
        }
    }
}

fn gave_up(failures: u32, last_error: Option<Error>) -> Closed {
    let reason = match last_error {
        Some(error) => format!("gave up reconnecting after {failures} attempts: {error}"),
        None => "the connection was lost and reconnecting is off".to_owned(),
    };
    Closed { code: 1006, reason }
}

fn lost(url: &str, error: impl std::fmt::Display) -> AttemptError {
    AttemptError::Failed(Error::Lost {
        url: url.to_owned(),
        detail: error.to_string(),
    })
}

/// Closes with 1002 (protocol error), saying why as far as a close frame allows.
pub(super) async fn close_for_violation(socket: &mut Socket, detail: &str) {
    socket.feed_close(1002, detail);
    // The socket is given up either way; a failing close changes nothing.
    let _ = socket.flush().await;
}

async fn violation(socket: &mut Socket, detail: String) -> AttemptError {
    close_for_violation(socket, &detail).await;
    AttemptError::Violation { detail }
}
