//! One accepted connection from its 101 to its on-close.
//!
//! The session task reads frames and runs the function's events one at a time, which is what
//! keeps a connection's messages in order, and writes what is sent to the connection (see
//! `connections::Outgoing`) without a task of its own. Whatever ends the connection — peer
//! close, a protocol error, a fault, a close started by the function or by shutdown — the
//! session ends the same way: the connection leaves the table and its groups, then on-close
//! runs exactly once. A handler that failed is reported to on-error once: a failed on-message
//! before on-close, a failed on-close after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until};

use super::admission::Permit;
use super::liveness::{Due, Liveness};
use super::reader::{FrameReader, ReadError};
use crate::connections::{Connection, Flushed, HostClose, Outbound, PhaseKind, Push};
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::observe::LogEvent;
use crate::protocol::{
    Assembled, Assembler, CloseCode, Frame, FrameError, Message, Opcode, parse_close_payload,
};
use crate::runtime::Function;
use crate::runtime::bindings::wsfn::function::types::MessageParam;

/// How the host queues its own control frames: a full queue refuses them (the peer is not
/// reading, and the slow-consumer rule is for what functions send), and never directly.
const CONTROL: Push = Push {
    drop_oldest: false,
    direct: false,
};

/// How a connection ended, as reported to on-close.
struct Ending {
    code: u16,
    reason: String,
}

impl Ending {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// Runs a connection to its end. `upgrade` resolves once the 101 has been sent. The
/// connection keeps its place under the connection caps (`_permit`) until on-close has run.
pub async fn run(
    host: Arc<Host>,
    slot: Arc<FunctionSlot>,
    connection: Arc<Connection>,
    upgrade: UpgradeFut,
    _permit: Permit,
) {
    // The reader lives here, not in the reading loop's future: a value moved into an async
    // call is stored twice while it runs, and this state sits in every idle connection.
    let mut reader = attach_socket(&host, &connection, upgrade).await;
    let ending = match &mut reader {
        Some(reader) => read_until_closed(&host, &slot, &connection, reader).await,
        None => Ending::new(1006, "the upgrade did not complete"),
    };
    connection.outgoing.end();
    // The close frame (ours or the echo of the peer's) goes out before on-close runs.
    connection.outgoing.flush();
    drop(reader.take());
    close(&host, &slot, &connection, ending).await;
}

/// Takes the socket of a completed upgrade: its write half goes to the connection's outgoing
/// side, its read half to the returned reader.
async fn attach_socket(
    host: &Host,
    connection: &Connection,
    upgrade: UpgradeFut,
) -> Option<FrameReader> {
    let upgraded = upgrade
        .await
        .map_err(|e| e.to_string())
        .and_then(|ws| take_socket(ws.into_inner()));
    match upgraded {
        Ok((stream, already_read)) => {
            let (read, write) = stream.into_split();
            // No frame may be larger than a whole message could be.
            let max_frame = host.limits.max_frame_size.min(host.limits.max_message_size);
            connection.outgoing.attach(write);
            Some(FrameReader::new(read, already_read, max_frame))
        }
        Err(error) => {
            tracing::debug!(connection = %connection.id, "upgrade failed: {error}");
            None
        }
    }
}

/// The connection is over: it leaves the table and its groups, on-close runs once, and what
/// is still committed drains to the peer.
async fn close(host: &Host, slot: &FunctionSlot, connection: &Arc<Connection>, ending: Ending) {
    let groups = host.connections.remove(connection);
    if let Some(cluster) = &host.cluster {
        cluster.connection_closed(&slot.scope.name, connection.id, &groups);
    }
    slot.scope.metrics.open_connections.dec();
    let ending = reported(ending, connection.outgoing.phase().host_close());
    slot.scope.logs.publish(|| LogEvent::Close {
        connection: connection.id_str().to_owned(),
        code: ending.code,
        reason: ending.reason.clone(),
    });
    tracing::debug!(connection = %connection.id, function = %slot.scope.name, code = ending.code, reason = %ending.reason, "connection closed");
    // A fault in on-close is logged and counted by the runtime; nothing is left to undo.
    let function = slot.current();
    let closed = Box::pin(function.on_close(connection, ending.code, &ending.reason)).await;
    finish_writing(connection, host.limits.close_timeout).await;
    // Told last, once the socket is released: nothing is waiting for it any more.
    if let Err(error) = closed
        && let Some(message) = function.error_message("on-close", &error)
    {
        report_failure(slot.current(), connection, &message).await;
    }
}

/// Runs on-error for a handler of `connection` that failed (see the `error` interface).
async fn report_failure(function: Arc<Function>, connection: &Arc<Connection>, message: &str) {
    // A fault in on-error is logged and counted by the runtime, and never reported again.
    let _ =
        Box::pin(function.on_error(connection.id_str(), Some(connection.clone()), message)).await;
}

/// Lets what is still committed reach the peer, but never waits on a peer that does not
/// read: past the close timeout the socket is released with whatever it still held.
async fn finish_writing(connection: &Connection, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while connection.outgoing.flush() == Flushed::Blocked {
        if tokio::time::timeout_at(deadline, connection.outgoing.writable())
            .await
            .is_err()
        {
            tracing::debug!(connection = %connection.id, "the peer did not take the last frames in time");
            break;
        }
    }
    connection.outgoing.release();
}

/// What on-close is told. A close handshake that completed reports the close the host started
/// if it started one (the peer's echo may carry another code), else the peer's. One that never
/// completed — the peer vanished, stopped answering pings or never answered our close — is
/// 1006, as a browser would report it, with the host's own reason kept in the text.
fn reported(ending: Ending, by_host: Option<&HostClose>) -> Ending {
    match by_host {
        None => ending,
        Some(close) if ending.code == 1006 => Ending::new(
            1006,
            format!(
                "{} (while closing with {}: {})",
                ending.reason, close.code, close.reason
            ),
        ),
        Some(close) => Ending::new(close.code, &*close.reason),
    }
}

/// The TCP stream under an upgraded connection, and any bytes already read from it.
///
/// Reading and writing the socket directly, as two owned halves, keeps the message path free
/// of the locking a shared stream would need.
fn take_socket(upgraded: TokioIo<hyper::upgrade::Upgraded>) -> Result<(TcpStream, Bytes), String> {
    match upgraded.into_inner().downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Ok((parts.io.into_inner(), parts.read_buf)),
        Err(_) => Err("the upgraded connection is not a TCP stream".into()),
    }
}

/// What the reading loop woke up for.
enum Woken {
    Frame(Result<Frame, ReadError>),
    Timer,
}

/// What the reading loop keeps between frames.
struct Reading {
    assembler: Assembler,
    liveness: Liveness,
    /// When a close the host started must have been answered by the peer.
    close_deadline: Option<Instant>,
    close_timeout: Duration,
}

/// Reads and handles frames until the connection is over, writing what is sent to it.
async fn read_until_closed(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    reader: &mut FrameReader,
) -> Ending {
    let mut reading = Reading {
        assembler: Assembler::new(host.limits.max_message_size),
        liveness: Liveness::new(&host.limits, Instant::now()),
        close_deadline: None,
        close_timeout: host.limits.close_timeout,
    };
    // One timer serves the liveness checks and the deadline of a close the host started.
    let timer = sleep_until(reading.liveness.next_check());
    tokio::pin!(timer);
    loop {
        let ended = match wait(&mut reading, connection, reader, timer.as_mut()).await {
            Woken::Frame(Ok(frame)) => on_frame(&mut reading, slot, connection, frame).await,
            Woken::Frame(Err(error)) => Some(fail(connection, &error)),
            Woken::Timer => on_timer(&mut reading, connection, timer.as_mut()),
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
            if let Poll::Ready(result) = reader.poll_next_frame(cx) {
                return Poll::Ready(Woken::Frame(result));
            }
            // Frames sent by other connections, groups, the operator or a timer, or the
            // socket taking more of what was committed.
            if connection.outgoing.poll_progress(cx).is_ready() {
                connection.outgoing.flush();
                continue;
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woken::Timer);
            }
            return Poll::Pending;
        }
    })
}

/// The timer fired: the close deadline passed, or a liveness check is due.
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
        Due::Gone => {
            // Tell the peer in case only its direction is broken, but do not wait for an
            // answer that is not coming.
            connection.start_close_now(1001, "ping timeout");
            return Some(Ending::new(1006, "the peer stopped answering pings"));
        }
    }
    let next = reading.liveness.next_check();
    timer.reset(
        reading
            .close_deadline
            .map_or(next, |deadline| deadline.min(next)),
    );
    None
}

/// Handles one frame from the peer; `Some` when it ended the connection.
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
            // After a close has started, data is no longer delivered (RFC 6455 §5.5.1).
            if connection.outgoing.kind().delivers_messages() {
                // Boxed: the guest call's state is only needed while a message is being
                // handled, and unboxed it would sit in every idle connection's task.
                let failure = Box::pin(deliver(slot, connection, message)).await;
                // What the event sent goes out now, without a hand-off to another task.
                connection.outgoing.flush();
                // After the 1011 went out, so on-error runs while the peer answers the close,
                // and before on-close, which waits for that answer.
                if let Some(message) = failure {
                    report_failure(slot.current(), connection, &message).await;
                }
            }
            reading.assembler.reset();
        }
    }
    None
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

/// Turns a read error into the connection's end, telling the peer why when it can listen.
fn fail(connection: &Connection, error: &ReadError) -> Ending {
    let code = match error {
        ReadError::Eof | ReadError::Io(_) => return Ending::new(1006, "connection lost"),
        ReadError::Frame(FrameError::TooLarge(_)) => CloseCode::TOO_BIG,
        ReadError::Frame(FrameError::Protocol(_)) => CloseCode::PROTOCOL_ERROR,
    };
    let reason = error.to_string();
    connection.start_close(code.0, &reason);
    Ending::new(code.0, reason)
}

/// Answers the peer's close frame (RFC 6455 §5.5.1, §7.4): a valid close is echoed; a
/// malformed one is answered with 1002, or 1007 for a reason that is not UTF-8.
fn answer_close(connection: &Connection, payload: &[u8]) -> Ending {
    match parse_close_payload(payload) {
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

#[cfg(test)]
mod tests {
    use super::{Ending, HostClose, reported};

    #[test]
    fn on_close_gets_the_close_that_completed_or_1006() {
        let peer_echo = Ending::new(1000, "");
        let by_host = HostClose {
            code: 4000,
            reason: "bye".into(),
        };
        let told = reported(peer_echo, Some(&by_host));
        assert_eq!((told.code, told.reason.as_str()), (4000, "bye"));

        let told = reported(Ending::new(1001, "going away"), None);
        assert_eq!((told.code, told.reason.as_str()), (1001, "going away"));

        let told = reported(
            Ending::new(1006, "the peer did not answer the close"),
            Some(&by_host),
        );
        assert_eq!(told.code, 1006);
        assert!(told.reason.contains("4000: bye"), "{}", told.reason);
    }
}
