//! One socket's life in a session task: frames are read and handled one at a time, what is
//! sent to the connection is written as it comes, and the liveness timer keeps a quiet peer
//! in check — until the socket ends.
//!
//! On a resumable session's socket, every message carries its type byte (see
//! `protocol::session`): application messages go to the function and are counted as handled,
//! acknowledgements release what the host kept, and the host acknowledges what the function
//! handled, at most every [`ACK_EVERY`] messages or [`ACK_DELAY`] after the first one it owes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep, sleep_until};

use super::liveness::{Due, Liveness};
use super::reader::{FrameReader, ReadError};
use super::session::report_failure;
use crate::connections::{Connection, Outbound, PhaseKind, Push, Session};
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::protocol::session::{ClientFrame, HostControl, parse_client_frame};
use crate::protocol::{
    Assembled, Assembler, CloseCode, Frame, FrameError, Message, Opcode, parse_close_payload,
};
use crate::runtime::bindings::wsfn::function::types::MessageParam;

/// Acknowledge the client's messages at least this often...
const ACK_EVERY: u64 = 32;
/// ...and no later than this after the first unacknowledged one was handled.
const ACK_DELAY: Duration = Duration::from_millis(200);

/// How the host queues its own control frames: a full queue refuses them (the peer is not
/// reading, and the slow-consumer rule is for what functions send), and never directly.
const CONTROL: Push = Push {
    drop_oldest: false,
    direct: false,
};

/// How a socket ended, as reported to on-close.
pub struct Ending {
    pub code: u16,
    pub reason: String,
    /// The network lost the socket (no close handshake, or the peer's 1001): a resumable
    /// session detaches instead of ending.
    pub lost: bool,
    /// A resume of the session took over from this socket.
    pub taken_over: bool,
    /// The node shut down and no resume elsewhere took the session over in time: it waits
    /// in the cluster, for a resume on any node.
    pub handed_off: bool,
}

impl Ending {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            lost: false,
            taken_over: false,
            handed_off: false,
        }
    }

    fn lost(code: u16, reason: impl Into<String>) -> Self {
        Self {
            lost: true,
            ..Self::new(code, reason)
        }
    }
}

/// What the reading loop woke up for.
enum Woken {
    Frame(Result<Frame, ReadError>),
    Timer,
    /// A resume handed the session another socket.
    TakenOver,
}

/// What the reading loop keeps between frames.
struct Reading {
    assembler: Assembler,
    liveness: Liveness,
    /// When a close the host started must have been answered by the peer.
    close_deadline: Option<Instant>,
    close_timeout: Duration,
    /// What a session's client has been told it was handled.
    acks: Acks,
}

/// A session's handled count last told to its client, and when the next telling is due.
struct Acks {
    told: u64,
    due: Option<Instant>,
}

impl Reading {
    /// When the timer must fire next: a liveness check, the close deadline or an ack.
    fn next_wake(&self) -> Instant {
        let next = self.liveness.next_check();
        [self.close_deadline, self.acks.due]
            .into_iter()
            .flatten()
            .fold(next, Instant::min)
    }
}

/// Reads and handles frames until the socket is over, writing what is sent to it.
pub async fn read_until_closed(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    reader: &mut FrameReader,
) -> Ending {
    let session_byte = usize::from(connection.session.is_some());
    let mut reading = Reading {
        assembler: Assembler::new(host.limits.max_message_size + session_byte),
        liveness: Liveness::new(&host.limits, Instant::now()),
        close_deadline: None,
        close_timeout: host.limits.close_timeout,
        acks: Acks {
            told: connection.session.as_deref().map_or(0, Session::handled),
            due: None,
        },
    };
    // One timer serves the liveness checks, the deadline of a close the host started and a
    // session's acknowledgements.
    let timer = sleep_until(reading.next_wake());
    tokio::pin!(timer);
    loop {
        let ended = match wait(&mut reading, connection, reader, timer.as_mut()).await {
            Woken::Frame(Ok(frame)) => on_frame(&mut reading, slot, connection, frame).await,
            Woken::Frame(Err(error)) => Some(fail(connection, &error)),
            Woken::Timer => {
                let session = connection.session.as_deref();
                if reading.acks.due.is_some_and(|due| due <= Instant::now())
                    && let Some(session) = session
                    && !journal_persisted(connection, session).await
                {
                    reading.acks.due = Some(Instant::now() + ACK_DELAY);
                }
                on_timer(&mut reading, connection, timer.as_mut())
            }
            Woken::TakenOver => Some(Ending {
                taken_over: true,
                ..Ending::lost(1006, "the session resumed on another socket")
            }),
        };
        if let Some(ending) = ended {
            return ending;
        }
    }
}

/// Waits for the next frame or the timer, writing whatever is sent to the connection
/// meanwhile.
///
/// Each source is polled by hand rather than through `select!`, whose branch futures (544
/// bytes) would sit in every idle connection's task; polling the socket's readiness directly
/// needs none.
fn wait<'a>(
    reading: &'a mut Reading,
    connection: &'a Connection,
    reader: &'a mut FrameReader,
    mut timer: Pin<&'a mut Sleep>,
) -> impl Future<Output = Woken> + 'a {
    std::future::poll_fn(move |cx| {
        loop {
            // A close started by the function, the operator, a limit or shutdown: from now
            // on the peer has the close timeout to answer.
            if reading.close_deadline.is_none()
                && connection.outgoing.kind() == PhaseKind::Closing
                && let Some(deadline) = connection
                    .outgoing
                    .phase()
                    .close_deadline(reading.close_timeout)
            {
                reading.close_deadline = Some(deadline);
                if deadline < timer.deadline() {
                    timer.as_mut().reset(deadline);
                }
            }
            // An acknowledgement the session started owing since the timer was set.
            if let Some(due) = reading.acks.due
                && due < timer.deadline()
            {
                timer.as_mut().reset(due);
            }
            let in_text = reading.assembler.continues_text();
            if let Poll::Ready(result) = reader.poll_next_frame(cx, in_text) {
                return Poll::Ready(Woken::Frame(result));
            }
            // Frames sent by other connections, groups, the operator or a timer, or the
            // socket taking more of what was committed.
            if connection.outgoing.poll_progress(cx).is_ready() {
                connection.outgoing.flush();
                continue;
            }
            // A resume took the session over (here, or on another node of the cluster), or the
            // node is shutting down and hands it over.
            if connection.session.as_deref().is_some_and(|session| {
                session.has_handover() || session.has_moved() || session.is_handing_off()
            }) {
                return Poll::Ready(Woken::TakenOver);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woken::Timer);
            }
            return Poll::Pending;
        }
    })
}

/// The timer fired: the close deadline passed, an ack is due, or a liveness check is due.
fn on_timer(
    reading: &mut Reading,
    connection: &Connection,
    timer: Pin<&mut Sleep>,
) -> Option<Ending> {
    let now = Instant::now();
    if reading
        .close_deadline
        .is_some_and(|deadline| deadline <= now)
    {
        return Some(Ending::new(1006, "the peer did not answer the close"));
    }
    if reading.acks.due.is_some_and(|due| due <= now) {
        acknowledge(&mut reading.acks, connection);
    }
    match reading.liveness.check(now) {
        Due::Nothing => {}
        Due::Ping => {
            let _ = connection
                .outgoing
                .push(Outbound::Ping(Bytes::new()), CONTROL);
        }
        Due::Idle => {
            connection.start_close(1001, "idle timeout");
        }
        Due::Gone if connection.session.is_some() => {
            // The network lost the socket; the session waits for its client to resume.
            return Some(Ending::lost(1006, "the peer stopped answering pings"));
        }
        Due::Gone => {
            // Tell the peer in case only its direction is broken, but do not wait for an
            // answer that is not coming.
            connection.start_close_now(1001, "ping timeout");
            return Some(Ending::new(1006, "the peer stopped answering pings"));
        }
    }
    timer.reset(reading.next_wake());
    None
}

/// Handles one frame from the peer; `Some` when it ended the socket.
async fn on_frame(
    reading: &mut Reading,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    frame: Frame,
) -> Option<Ending> {
    let now = Instant::now();
    match frame.opcode {
        Opcode::Close => return Some(answer_close(connection, &frame.payload)),
        Opcode::Ping => {
            reading.liveness.heard(now);
            let _ = connection
                .outgoing
                .push(Outbound::Pong(frame.payload.freeze()), CONTROL);
            connection.outgoing.flush();
        }
        Opcode::Pong => reading.liveness.heard(now),
        Opcode::Text | Opcode::Binary | Opcode::Continuation => {
            reading.liveness.message(now);
            let message = match reading.assembler.push(&frame) {
                Ok(Assembled::Complete(message)) => message,
                Ok(Assembled::Partial) => return None,
                Err(error) => {
                    let code = error.close_code();
                    let reason = error.to_string();
                    connection.start_close(code, &reason);
                    return Some(Ending::new(code, reason));
                }
            };
            // Boxed: handling a message (the guest call's state among it) is only needed
            // while a message is being handled, and unboxed it would sit in every idle
            // connection's task. One allocation a message, as before the split.
            let ended = match connection.session.as_deref() {
                Some(session) => {
                    let acks = &mut reading.acks;
                    Box::pin(on_session_message(acks, slot, connection, session, message)).await
                }
                None => {
                    Box::pin(on_message(slot, connection, message)).await;
                    None
                }
            };
            reading.assembler.reset();
            return ended;
        }
    }
    None
}

/// A whole message on a session socket: the function's, or a control message.
async fn on_session_message(
    acks: &mut Acks,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    session: &Session,
    message: Message<'_>,
) -> Option<Ending> {
    let (bytes, text) = match &message {
        Message::Text(text) => (text.as_bytes(), true),
        Message::Binary(bytes) => (*bytes, false),
    };
    let broken = |error: String| {
        let reason = format!("protocol error: {error}");
        connection.start_close(CloseCode::PROTOCOL_ERROR.0, &reason);
        Some(Ending::new(CloseCode::PROTOCOL_ERROR.0, reason))
    };
    match parse_client_frame(bytes, text) {
        Ok(ClientFrame::Message(_)) => {
            // The type byte is ASCII, so what follows it in a text message is text too.
            let message = match message {
                Message::Text(text) => Message::Text(&text[1..]),
                Message::Binary(bytes) => Message::Binary(&bytes[1..]),
            };
            on_message(slot, connection, message).await;
            let handled = session.note_handled();
            if handled - acks.told >= ACK_EVERY {
                if journal_persisted(connection, session).await {
                    acknowledge(acks, connection);
                }
            } else if acks.due.is_none() {
                acks.due = Some(Instant::now() + ACK_DELAY);
            }
            None
        }
        Ok(ClientFrame::Ack(received)) => match connection.outgoing.acknowledge(received) {
            Ok(freed) => {
                if let Some(journal) = session.journal() {
                    journal.acknowledged(connection.id, received);
                }
                slot.scope.metrics.session_bytes_held.dec_by(freed as i64);
                None
            }
            Err(error) => broken(error.to_string()),
        },
        Ok(ClientFrame::Resume { .. }) => broken("a resume request on an attached session".into()),
        Err(error) => broken(error.to_string()),
    }
}

/// Writes a journaled session's handled count to its journal and says whether it is there
/// (always true for a session of one node), so the client may be told it. Written when the
/// client is about to be told, not per message: what the client was not told it sends again
/// anyway.
async fn journal_persisted(connection: &Connection, session: &Session) -> bool {
    match session.journal() {
        Some(journal) => {
            journal.handled(connection.id, session.handled());
            journal.persisted().await
        }
        None => true,
    }
}

/// Tells a session's client how many of its messages the function has handled.
fn acknowledge(acks: &mut Acks, connection: &Connection) {
    acks.due = None;
    let Some(session) = connection.session.as_deref() else {
        return;
    };
    let handled = session.handled();
    if handled == acks.told {
        return;
    }
    let ack = HostControl::Ack { handled }.encode();
    if connection
        .outgoing
        .push(Outbound::Control(Bytes::from(ack.into_bytes())), CONTROL)
        .is_ok()
    {
        acks.told = handled;
        connection.outgoing.flush();
    }
}

/// Hands a message to the function, then writes what its event sent.
async fn on_message(slot: &FunctionSlot, connection: &Arc<Connection>, message: Message<'_>) {
    // After a close has started, data is no longer delivered (RFC 6455 §5.5.1).
    if !connection.outgoing.kind().delivers_messages() {
        return;
    }
    let failure = deliver(slot, connection, message).await;
    // What the event sent goes out now, without a hand-off to another task.
    connection.outgoing.flush();
    // After the 1011 went out, so on-error runs while the peer answers the close, and before
    // on-close, which waits for that answer.
    if let Some(message) = failure {
        report_failure(slot.current(), connection, &message).await;
    }
}

/// Runs on-message; a fault closes the connection with 1011 and leaves the others alone.
/// Returns what on-error is to be told after a fault of the guest.
async fn deliver(
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    message: Message<'_>,
) -> Option<String> {
    let message = match message {
        Message::Text(text) => MessageParam::Text(text),
        Message::Binary(bytes) => MessageParam::Binary(bytes),
    };
    let size = match &message {
        MessageParam::Text(text) => text.len(),
        MessageParam::Binary(bytes) => bytes.len(),
    };
    slot.scope.metrics.message_in(size);
    let function = slot.current();
    // The fault itself is logged and counted where it happened, in the runtime.
    match function.on_message(connection, message).await {
        Ok(()) => None,
        Err(error) => {
            connection.start_close(CloseCode::INTERNAL_ERROR.0, "function error");
            function.error_message("on-message", &error)
        }
    }
}

/// Turns a read error into the socket's end, telling the peer why when it can listen.
fn fail(connection: &Connection, error: &ReadError) -> Ending {
    let code = match error {
        ReadError::Eof | ReadError::Io(_) => return Ending::lost(1006, "connection lost"),
        ReadError::InvalidUtf8 => CloseCode::INVALID_DATA,
        ReadError::Frame(FrameError::TooLarge(_)) => CloseCode::TOO_BIG,
        ReadError::Frame(FrameError::Protocol(_)) => CloseCode::PROTOCOL_ERROR,
    };
    let reason = error.to_string();
    connection.start_close(code.0, &reason);
    Ending::new(code.0, reason)
}

/// Answers the peer's close frame (RFC 6455 §5.5.1, §7.4): a valid close is echoed; a
/// malformed one is answered with 1002, or 1007 for a reason that is not UTF-8. A session's
/// socket going away (1001) only closes that socket: the session waits for a resume.
fn answer_close(connection: &Connection, payload: &[u8]) -> Ending {
    match parse_close_payload(payload) {
        Ok((code, reason)) if code == CloseCode::GOING_AWAY && connection.session.is_some() => {
            connection.outgoing.close_socket(code.0, reason);
            connection.outgoing.flush();
            Ending::lost(code.0, reason)
        }
        Ok((code, reason)) => {
            // Our echo: the same code (none for an empty close), so the handshake completes.
            connection
                .outgoing
                .start_close(code.0, reason, false, false);
            Ending::new(code.0, reason)
        }
        Err(malformed) => {
            let code = malformed.close_code().0;
            let reason = malformed.to_string();
            connection.start_close(code, &reason);
            Ending::new(code, reason)
        }
    }
}
