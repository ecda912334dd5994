//! The background task that owns the socket: it serves one attached socket at a time
//! ([`attached`]), and when that socket is lost gets another ([`attach`]) by resuming the
//! session, starting a new one after a refusal, or reconnecting a plain socket, with backoff.
//!
//! One task owns everything that changes with the wire (the counts, the kept messages, the
//! socket), so none of it is shared or locked; the application talks to it through channels:
//! sends and a close request in, events out.

mod attach;
mod attached;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::endpoint::Endpoints;
use crate::outbox::Outbox;
use crate::socket::{Ending, Socket};
use crate::wire::Ticket;
use crate::{Error, Event, Options, ResetReason, Session};

/// A message the application asked to send.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Text(String),
    Binary(Bytes),
}

/// How the application asked to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl CloseRequest {
    /// What dropping every handle means: a normal close.
    fn normal() -> Self {
        Self {
            code: 1000,
            reason: String::new(),
        }
    }
}

/// A close under way.
#[derive(Debug)]
struct Closing {
    request: CloseRequest,
    /// When the client stops trying to deliver the close.
    deadline: Instant,
}

/// The final close, reported as [`Event::Closed`].
#[derive(Debug)]
struct Closed {
    code: u16,
    reason: String,
}

/// What the client knows of its session.
#[derive(Debug)]
struct SessionState {
    ticket: Ticket,
    /// `m` messages received from the host.
    received: u64,
    /// The `received` count the host was last told (by `a` or `r`).
    acknowledged: u64,
    outbox: Outbox,
}

/// The driver's ends of the channels to the application's handles.
struct Links {
    sends: mpsc::UnboundedReceiver<Outgoing>,
    close: watch::Receiver<Option<CloseRequest>>,
    /// Changes when the application asks to drop the socket; `None` once every handle is gone.
    drops: Option<watch::Receiver<()>>,
    events: mpsc::Sender<Event>,
    id: watch::Sender<Option<String>>,
}

pub(crate) struct Driver {
    options: Options,
    endpoints: Endpoints,
    links: Links,
    random: fastrand::Rng,
    /// The session being continued; `None` for a plain socket, and between a refused resume
    /// and the start of the next session.
    session: Option<SessionState>,
    /// Why continuity was lost, reported once the next connection is up.
    pending_reset: Option<ResetReason>,
    closing: Option<Closing>,
}

impl Driver {
    /// Connects for the first time (each URL once, in order) and leaves the driver running
    /// in the background.
    pub(crate) async fn connect(options: Options) -> Result<Session, Error> {
        let endpoints = Endpoints::new(&options.urls)?;
        let (sends_in, sends) = mpsc::unbounded_channel();
        let (close_in, close) = watch::channel(None);
        let (drops_in, drops) = watch::channel(());
        let (events, events_out) = mpsc::channel(options.event_buffer);
        let (id, id_out) = watch::channel(None);
        let mut driver = Self {
            options,
            endpoints,
            links: Links {
                sends,
                close,
                drops: Some(drops),
                events,
                id,
            },
            random: fastrand::Rng::new(),
            session: None,
            pending_reset: None,
            closing: None,
        };
        let socket = driver.first_connection().await?;
        tokio::spawn(driver.run(socket));
        Ok(Session::new(
            sends_in,
            Arc::new(close_in),
            Arc::new(drops_in),
            id_out,
            events_out,
        ))
    }

    async fn first_connection(&mut self) -> Result<Socket, Error> {
        let mut last_error = Error::NoUrl;
        for _ in 0..self.endpoints.len() {
            let url = self.endpoints.next().to_owned();
            match self.connect_new(&url).await {
                Ok(socket) => return Ok(socket),
                Err(failure) => last_error = failure.into_error(&url),
            }
        }
        Err(last_error)
    }

    /// Serves sockets until the session is over, then reports how it ended.
    async fn run(mut self, mut socket: Socket) {
        let closed = loop {
            if let Ending::Closed { code, reason } = self.serve(&mut socket).await {
                break Closed { code, reason };
            }
            // The lost socket ends now, not when its successor is up: one given up on purpose
            // (unanswered pings, a drop the application asked for) must look lost to the host.
            drop(socket);
            match self.reattach().await {
                Ok(next) => socket = next,
                Err(closed) => break closed,
            }
        };
        self.emit(Event::Closed {
            code: closed.code,
            reason: closed.reason,
        })
        .await;
    }

    /// Hands an event to the application, waiting while its buffer is full. Events for an
    /// application that dropped its [`Session`] are discarded.
    async fn emit(&self, event: Event) {
        let _ = self.links.events.send(event).await;
    }

    /// Notes a close request (or, when every handle is gone, a normal close).
    fn request_close(&mut self, requested: Option<CloseRequest>) {
        if self.closing.is_none() {
            self.closing = Some(Closing {
                request: requested.unwrap_or_else(CloseRequest::normal),
                deadline: Instant::now() + self.options.close_timeout,
            });
        }
    }

    /// Reads the close request after the watch changed: `Err` means every handle is gone.
    fn take_close_request(&mut self, changed: Result<(), watch::error::RecvError>) {
        let requested = match changed {
            Ok(()) => self.links.close.borrow_and_update().clone(),
            Err(_) => None,
        };
        self.request_close(requested);
    }

    /// How the session ends when a close under way is given up or made moot.
    fn closed_as_requested(&self) -> Option<Closed> {
        self.closing.as_ref().map(|closing| Closed {
            code: closing.request.code,
            reason: closing.request.reason.clone(),
        })
    }
}
