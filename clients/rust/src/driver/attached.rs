//! Serving one attached socket until it is lost or closed: messages in both directions,
//! acknowledgements (every 32 received messages, and soon after the first unacknowledged one),
//! the host's acknowledgements, pings, and a close requested by the application.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::attach::close_for_violation;
use super::{Driver, Outgoing};
use crate::Event;
use crate::socket::{self, Ending, Socket};
use crate::transport::{Incoming, ReadError};
use crate::wire::{self, HostFrame, Malformed, Payload};

/// The protocol's bound on messages received before an acknowledgement.
const ACK_EVERY: u64 = 32;

/// How soon after the first unacknowledged message the acknowledgement goes: half the
/// protocol's 200 ms, leaving the other half for the frame to reach the host.
const ACK_DELAY: Duration = Duration::from_millis(100);

/// The most messages the application queued that go out in one write; the cap keeps a
/// flood of sends from delaying the reading of the socket.
const SEND_BATCH: usize = 64;

/// What belongs to the socket being served rather than to the session.
struct Attached {
    /// Fires when the pending acknowledgement is due. One timer for the socket's life, set
    /// again for each acknowledgement rather than created per wait: the serving loop turns
    /// once per message.
    ack_timer: Pin<Box<Sleep>>,
    ack_pending: bool,
    /// Once the close frame is written nothing else may be.
    close_sent: bool,
    pings: Option<(Interval, Duration)>,
    last_heard: Instant,
}

impl Attached {
    fn new(ping: Option<Duration>) -> Self {
        let now = Instant::now();
        let pings = ping.map(|every| {
            let mut interval = tokio::time::interval_at(now + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            (interval, every)
        });
        Self {
            ack_timer: Box::pin(tokio::time::sleep_until(now)),
            ack_pending: false,
            close_sent: false,
            pings,
            last_heard: now,
        }
    }
}

impl Driver {
    /// Serves `socket` until it is lost ([`Ending::Lost`]: attach another) or the session is
    /// over ([`Ending::Closed`]).
    pub(super) async fn serve(&mut self, socket: &mut Socket) -> Ending {
        let mut attached = Attached::new(self.options.ping);
        // A drop asked for while no socket was attached is not this socket's.
        if let Some(drops) = &mut self.links.drops {
            drops.mark_unchanged();
        }
        if self.closing.is_some()
            && let Err(ending) = self.send_close(socket, &mut attached).await
        {
            return ending;
        }
        loop {
            let ack_armed = attached.ack_pending && !attached.close_sent;
            let close_deadline = self.closing.as_ref().map(|closing| closing.deadline);
            let open = !attached.close_sent;
            let step = tokio::select! {
                incoming = socket.next() => {
                    let step = self.on_incoming(socket, incoming, &mut attached).await;
                    // After handling, which may have waited for the application to read: that
                    // wait is not the host's silence.
                    attached.last_heard = Instant::now();
                    step
                }
                () = &mut attached.ack_timer, if ack_armed => {
                    self.acknowledge(socket, &mut attached).await
                }
                outgoing = self.links.sends.recv(), if open => match outgoing {
                    Some(outgoing) => self.send(socket, outgoing).await,
                    None => {
                        self.request_close(None);
                        self.send_close(socket, &mut attached).await
                    }
                },
                changed = self.links.close.changed(), if open => {
                    self.take_close_request(changed);
                    self.send_close(socket, &mut attached).await
                }
                changed = dropped(&mut self.links.drops), if open => match changed {
                    Ok(()) => Err(Ending::Lost("the application dropped the socket".to_owned())),
                    Err(_) => {
                        self.links.drops = None;
                        Ok(())
                    }
                },
                () = tick(&mut attached.pings), if open => self.ping(socket, &attached).await,
                () = until(close_deadline) => match self.closed_as_requested() {
                    Some(closed) => Err(Ending::Closed { code: closed.code, reason: closed.reason }),
                    None => Ok(()),
                },
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    async fn on_incoming(
        &mut self,
        socket: &mut Socket,
        incoming: Result<Incoming, ReadError>,
        attached: &mut Attached,
    ) -> Result<(), Ending> {
        let message = match incoming {
            Err(error) => return Err(socket::failed(socket, error).await),
            Ok(message) => message,
        };
        match message {
            Incoming::Text(text) if !self.options.session => {
                self.emit(Event::Text(text)).await;
                Ok(())
            }
            Incoming::Binary(bytes) if !self.options.session => {
                self.emit(Event::Binary(bytes)).await;
                Ok(())
            }
            Incoming::Text(text) => {
                self.on_frame(socket, wire::parse_text(text), attached)
                    .await
            }
            Incoming::Binary(bytes) => {
                let parsed = wire::parse_binary(&bytes);
                self.on_frame(socket, parsed, attached).await
            }
            Incoming::Close(frame) => {
                let ending = Ending::of_close(frame.as_ref());
                socket::finish_close(socket, self.options.close_timeout).await;
                Err(ending)
            }
            // The pong is queued.
            Incoming::Ping => socket.flush().await.map_err(|error| Ending::of_io(&error)),
            Incoming::Pong => Ok(()),
        }
    }

    /// A data frame on a session socket.
    async fn on_frame(
        &mut self,
        socket: &mut Socket,
        parsed: Result<HostFrame, Malformed>,
        attached: &mut Attached,
    ) -> Result<(), Ending> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let detail = match parsed {
            Ok(HostFrame::Message(payload)) => {
                session.received += 1;
                let unacknowledged = session.received - session.acknowledged;
                // Counted means delivered: the event goes out before anything that could fail,
                // or a resume would skip a message the application never saw.
                self.emit(match payload {
                    Payload::Text(text) => Event::Text(text),
                    Payload::Binary(bytes) => Event::Binary(bytes),
                })
                .await;
                if unacknowledged >= ACK_EVERY {
                    return self.acknowledge(socket, attached).await;
                }
                if !attached.ack_pending {
                    attached.ack_pending = true;
                    let due = Instant::now() + ACK_DELAY;
                    attached.ack_timer.as_mut().reset(due);
                }
                return Ok(());
            }
            Ok(HostFrame::Ack(handled)) => match session.outbox.acknowledge(handled) {
                Ok(()) => return Ok(()),
                Err(bad) => bad.to_string(),
            },
            Ok(HostFrame::Started(_)) => "`s` in the middle of a session".to_owned(),
            Ok(HostFrame::Resumed { .. }) => "`r` in the middle of a session".to_owned(),
            Ok(HostFrame::Refused(_)) => "`x` in the middle of a session".to_owned(),
            Err(malformed) => malformed.to_string(),
        };
        close_for_violation(socket, &detail).await;
        Err(Ending::Closed {
            code: 1002,
            reason: detail,
        })
    }

    /// Tells the host how many messages arrived, if it does not know yet.
    async fn acknowledge(
        &mut self,
        socket: &mut Socket,
        attached: &mut Attached,
    ) -> Result<(), Ending> {
        attached.ack_pending = false;
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        if attached.close_sent || session.received == session.acknowledged {
            return Ok(());
        }
        session.acknowledged = session.received;
        let ack = wire::ack(session.received);
        socket
            .send(&ack)
            .await
            .map_err(|error| Ending::of_io(&error))
    }

    /// Sends one application message, and with it those the application queued meanwhile,
    /// in one write.
    async fn send(&mut self, socket: &mut Socket, outgoing: Outgoing) -> Result<(), Ending> {
        self.feed(socket, outgoing);
        for _ in 1..SEND_BATCH {
            match self.links.sends.try_recv() {
                Ok(outgoing) => self.feed(socket, outgoing),
                Err(_) => break,
            }
        }
        // A failed write loses nothing on a session: the messages are kept and sent again.
        socket.flush().await.map_err(|error| Ending::of_io(&error))
    }

    /// Queues one application message; on a session it is numbered and kept until confirmed.
    fn feed(&mut self, socket: &mut Socket, outgoing: Outgoing) {
        match (self.session.as_mut(), outgoing) {
            (Some(session), outgoing) => {
                let framed = match outgoing {
                    Outgoing::Text(text) => wire::text_message(&text),
                    Outgoing::Binary(bytes) => wire::binary_message(&bytes),
                };
                socket.feed(&framed);
                session.outbox.push(framed);
            }
            (None, Outgoing::Text(text)) => socket.feed_message(true, text.as_bytes()),
            (None, Outgoing::Binary(bytes)) => socket.feed_message(false, &bytes),
        }
    }

    /// Sends what the application sent before asking to close, then the close frame; the
    /// host's answer ends the session.
    async fn send_close(
        &mut self,
        socket: &mut Socket,
        attached: &mut Attached,
    ) -> Result<(), Ending> {
        while let Ok(outgoing) = self.links.sends.try_recv() {
            self.feed(socket, outgoing);
        }
        attached.close_sent = true;
        if let Some(closing) = &self.closing {
            socket.feed_close(closing.request.code, &closing.request.reason);
        }
        socket.flush().await.map_err(|error| Ending::of_io(&error))
    }

    /// Pings, unless the host has been silent for two intervals: then the socket is lost.
    async fn ping(&self, socket: &mut Socket, attached: &Attached) -> Result<(), Ending> {
        let Some((_, every)) = &attached.pings else {
            return Ok(());
        };
        if attached.last_heard.elapsed() >= *every * 2 {
            return Err(Ending::Lost("the host stopped answering pings".to_owned()));
        }
        socket.feed_ping();
        socket.flush().await.map_err(|error| Ending::of_io(&error))
    }
}

/// Completes at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Completes when the application asks to drop the socket (`Err` when it no longer can), or
/// never.
async fn dropped(drops: &mut Option<watch::Receiver<()>>) -> Result<(), watch::error::RecvError> {
    match drops {
        Some(drops) => drops.changed().await,
        None => std::future::pending().await,
    }
}

/// Completes at the next ping, or never.
async fn tick(pings: &mut Option<(Interval, Duration)>) {
    match pings {
        Some((interval, _)) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
