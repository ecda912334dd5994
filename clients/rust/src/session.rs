//! The application's side: [`Session`] to read events, [`Sender`] (which a `Session` also is)
//! to send and close from anywhere. Both talk to the background task through channels, so
//! sending never waits for the network and never fails while the session lives.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::driver::{CloseRequest, Driver, Outgoing};
use crate::{Error, Event, Options};

/// The most a close frame's reason may hold.
const CLOSE_REASON_MAX: usize = 123;

/// A connection to a wsfn function: a resumable session unless [`Options::plain`] was asked
/// for. A background task owns the socket, replaces it when it is lost, and reports what
/// happens through [`next_event`](Self::next_event). Dropping the `Session` and every
/// [`Sender`] closes it with 1000.
pub struct Session {
    sender: Sender,
    events: mpsc::Receiver<Event>,
}

/// Sends on a [`Session`] and closes it; cheap to clone and usable from any task.
#[derive(Clone)]
pub struct Sender {
    sends: mpsc::UnboundedSender<Outgoing>,
    close: Arc<watch::Sender<Option<CloseRequest>>>,
    drops: Arc<watch::Sender<()>>,
    id: watch::Receiver<Option<String>>,
}

impl Session {
    /// Connects, trying each of the options' URLs once in order, and returns once the
    /// connection is up (for a session: once the host has sent its id and secret).
    pub async fn connect(options: Options) -> Result<Self, Error> {
        Driver::connect(options).await
    }

    pub(crate) fn new(
        sends: mpsc::UnboundedSender<Outgoing>,
        close: Arc<watch::Sender<Option<CloseRequest>>>,
        drops: Arc<watch::Sender<()>>,
        id: watch::Receiver<Option<String>>,
        events: mpsc::Receiver<Event>,
    ) -> Self {
        Self {
            sender: Sender {
                sends,
                close,
                drops,
                id,
            },
            events,
        }
    }

    /// The next event; `None` after [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// A handle to send and close from elsewhere.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// See [`Sender::id`].
    pub fn id(&self) -> Option<String> {
        self.sender.id()
    }

    /// See [`Sender::send_text`].
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.sender.send_text(text)
    }

    /// See [`Sender::send_binary`].
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.sender.send_binary(bytes)
    }

    /// See [`Sender::drop_socket`].
    pub fn drop_socket(&self) -> Result<(), Error> {
        self.sender.drop_socket()
    }

    /// Closes with 1000 and waits for the end, discarding events that arrive meanwhile; to
    /// read them, call [`Sender::close`] and go on with [`next_event`](Self::next_event)
    /// until [`Event::Closed`]. Returns the final close's code and reason.
    pub async fn close(mut self) -> (u16, String) {
        // Closing twice is harmless; the first request stands.
        let _ = self.sender.close();
        while let Some(event) = self.events.recv().await {
            if let Event::Closed { code, reason } = event {
                return (code, reason);
            }
        }
        (1006, "the session ended without a close".to_owned())
    }
}

impl Sender {
    /// The id of the current session (the host's connection id); it changes after an
    /// [`Event::Reset`]. `None` for a plain socket.
    pub fn id(&self) -> Option<String> {
        self.id.borrow().clone()
    }

    /// Sends a text message. It is queued at once; on a session it is delivered exactly once
    /// even across lost sockets, unless an [`Event::Reset`] says otherwise.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.queue(Outgoing::Text(text.into()))
    }

    /// Sends a binary message; see [`send_text`](Self::send_text).
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.queue(Outgoing::Binary(bytes.into()))
    }

    /// Closes with 1000 once what was sent before has gone; [`Event::Closed`] follows.
    pub fn close(&self) -> Result<(), Error> {
        self.close_with(1000, "")
    }

    /// Closes with `code` (1000 or 3000–4999) and `reason` (at most 123 bytes). On a session
    /// whose socket is lost, the client resumes to deliver the close, for at most
    /// [`Options::close_timeout`].
    pub fn close_with(&self, code: u16, reason: &str) -> Result<(), Error> {
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(Error::InvalidCloseCode(code));
        }
        if reason.len() > CLOSE_REASON_MAX {
            return Err(Error::CloseReasonTooLong(reason.len()));
        }
        if self.close.is_closed() {
            return Err(Error::Closed);
        }
        self.close.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(CloseRequest {
                    code,
                    reason: reason.to_owned(),
                });
            }
            first
        });
        Ok(())
    }

    /// Drops the socket without a close handshake, as a network failure would: the host sees
    /// it lost, and the session resumes on a new socket under the [`Reconnect`] policy, after
    /// its first delay (a plain socket reconnects, reported as [`Event::Reset`]). Nothing
    /// happens while no socket is attached. For an application that learns its network
    /// changed before the socket does, and for tests and load generators that cut
    /// connections on purpose.
    ///
    /// [`Reconnect`]: crate::Reconnect
    pub fn drop_socket(&self) -> Result<(), Error> {
        if self.close.borrow().is_some() {
            return Err(Error::Closed);
        }
        self.drops.send(()).map_err(|_| Error::Closed)
    }

    fn queue(&self, outgoing: Outgoing) -> Result<(), Error> {
        if self.close.borrow().is_some() {
            return Err(Error::Closed);
        }
        self.sends.send(outgoing).map_err(|_| Error::Closed)
    }
}
