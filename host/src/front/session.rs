//! One accepted connection from its 101 to its on-close.
//!
//! The session task reads frames and runs the function's events one at a time, which is what
//! keeps a connection's messages in order. A second task writes (see `writer`). Whatever ends
//! the connection — peer close, a protocol error, a fault, a close started by the function or
//! by shutdown — the session ends the same way: the connection leaves the table and its groups,
//! then on-close runs exactly once. A handler that failed is reported to on-error once: a
//! failed on-message before on-close, a failed on-close after it.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::admission::Permit;
use super::assembler::{Assembled, Assembler, Message};
use super::liveness::{Due, Liveness};
use super::reader::{Frame, FrameReader, Opcode, ReadError};
use super::writer::{Flushed, Outgoing};
use crate::connections::{Connection, Outbound};
use crate::host::{FunctionSlot, Host};
use crate::observe::LogEvent;
use crate::runtime::Function;
use crate::runtime::bindings::wsfn::function::types::MessageParam;

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
    // The socket's halves live here, not in the reading loop's future: a value moved into an
    // async call is stored twice while it runs, and this state sits in every idle connection.
    let mut reader = None;
    let mut outgoing = None;
    match upgrade
        .await
        .map_err(|e| e.to_string())
        .and_then(|ws| take_socket(ws.into_inner()))
    {
        Ok((stream, already_read)) => {
            let (read, write) = stream.into_split();
            // No frame may be larger than a whole message could be.
            let max_frame = host.limits.max_frame_size.min(host.limits.max_message_size);
            reader = Some(FrameReader::new(read, already_read, max_frame));
            let write = Arc::new(write);
            // From here a group publish may write to the socket directly.
            connection.outbound.attach(write.clone());
            outgoing = Some(Outgoing::new(write));
        }
        Err(error) => {
            tracing::debug!(connection = %connection.id, "upgrade failed: {error}");
        }
    }
    let ending = match (&mut reader, &mut outgoing) {
        (Some(reader), Some(writer)) => {
            let ending = read_until_closed(&host, &slot, &connection, reader, writer).await;
            connection.outbound.finish();
            // The close frame (ours or the echo of the peer's) goes out before on-close runs.
            writer.flush(&connection.outbound);
            ending
        }
        _ => Ending::new(1006, "the upgrade did not complete"),
    };
    drop(reader.take());

    let groups = host.connections.remove(&connection);
    if let Some(cluster) = &host.cluster {
        cluster.connection_closed(&slot.scope.name, connection.id, &groups);
    }
    slot.scope.metrics.open_connections.dec();
    let ending = reported(ending, connection.initiated_close());
    slot.scope.logs.publish(|| LogEvent::Close {
        connection: connection.id_str().to_owned(),
        code: ending.code,
        reason: ending.reason.clone(),
    });
    tracing::debug!(connection = %connection.id, function = %slot.scope.name, code = ending.code, reason = %ending.reason, "connection closed");
    // A fault in on-close is logged and counted by the runtime; nothing is left to undo.
    let function = slot.current();
    let closed = Box::pin(function.on_close(&connection, ending.code, &ending.reason)).await;
    if let Some(writer) = outgoing {
        finish_writing(writer, &connection, host.limits.close_timeout).await;
    }
    // Told last, once the socket is released: nothing is waiting for it any more.
    if let Err(error) = closed
        && let Some(message) = function.error_message("on-close", &error)
    {
        report_failure(slot.current(), &connection, &message).await;
    }
}

/// Runs on-error for a handler of `connection` that failed (see the `error` interface).
async fn report_failure(function: Arc<Function>, connection: &Arc<Connection>, message: &str) {
    // A fault in on-error is logged and counted by the runtime, and never reported again.
    let _ =
        Box::pin(function.on_error(connection.id_str(), Some(connection.clone()), message)).await;
}

/// Lets what is still queued reach the peer, but never waits on a peer that does not read:
/// past the close timeout the socket is dropped with whatever it still held.
async fn finish_writing(mut writer: Outgoing, connection: &Connection, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while writer.flush(&connection.outbound) == Flushed::Blocked {
        match tokio::time::timeout_at(deadline, writer.writable()).await {
            Ok(Ok(())) => {}
            _ => {
                tracing::debug!(connection = %connection.id, "the peer did not take the last frames in time");
                return;
            }
        }
    }
}

/// What on-close is told. A close handshake that completed reports the close the host started
/// if it started one (the peer's echo may carry another code), else the peer's. One that never
/// completed — the peer vanished, stopped answering pings or never answered our close — is
/// 1006, as a browser would report it, with the host's own reason kept in the text.
fn reported(ending: Ending, initiated: Option<(u16, String)>) -> Ending {
    match initiated {
        None => ending,
        Some((code, reason)) if ending.code == 1006 => Ending::new(
            1006,
            format!("{} (while closing with {code}: {reason})", ending.reason),
        ),
        Some((code, reason)) => Ending { code, reason },
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

/// Reads and handles frames until the connection is over, writing what is sent to it.
async fn read_until_closed(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    reader: &mut FrameReader,
    writer: &mut Outgoing,
) -> Ending {
    let mut assembler = Assembler::new(host.limits.max_message_size);
    let mut close_deadline: Option<Instant> = None;
    let close_timeout = host.limits.close_timeout;
    let mut liveness = Liveness::new(&host.limits, Instant::now());
    // One timer serves the liveness checks and the deadline of a close the host started.
    let timer = sleep_until(liveness.next_check());
    tokio::pin!(timer);
    let queue = &connection.outbound;

    loop {
        // Waiting polls each source by hand rather than through `select!`, whose branch
        // futures (544 bytes) would sit in every idle connection's task; polling the socket's
        // readiness directly needs none.
        let woken = std::future::poll_fn(|cx| {
            loop {
                if close_deadline.is_none() && connection.is_closing() {
                    let deadline = Instant::now() + close_timeout;
                    close_deadline = Some(deadline);
                    if deadline < timer.deadline() {
                        timer.as_mut().reset(deadline);
                    }
                }
                if let Poll::Ready(result) = reader.poll_next_frame(cx) {
                    return Poll::Ready(Woken::Frame(result));
                }
                if !writer.is_done() {
                    let progress = if writer.is_blocked() {
                        // The peer is reading again after the socket pushed back.
                        writer.poll_writable(cx).is_ready()
                    } else {
                        // Frames sent by other connections, groups, the operator or a timer.
                        queue.poll_ready(cx).is_ready()
                    };
                    if progress {
                        writer.flush(queue);
                        continue;
                    }
                }
                // A close started by the function, the operator, a limit or shutdown.
                if close_deadline.is_none() && connection.poll_closing(cx).is_ready() {
                    continue;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woken::Timer);
                }
                return Poll::Pending;
            }
        })
        .await;
        let frame = match woken {
            Woken::Frame(Ok(frame)) => frame,
            Woken::Frame(Err(error)) => return fail(connection, &error),
            Woken::Timer => {
                let now = Instant::now();
                if close_deadline.is_some_and(|deadline| deadline <= now) {
                    return Ending::new(1006, "the peer did not answer the close");
                }
                match liveness.check(now) {
                    Due::Nothing => {}
                    Due::Ping => {
                        let _ = queue.push(Outbound::Ping(Bytes::new()));
                    }
                    Due::Idle => {
                        connection.start_close(1001, "idle timeout");
                    }
                    Due::Gone => {
                        // Tell the peer in case only its direction is broken, but do not
                        // wait for an answer that is not coming.
                        connection.start_close_now(1001, "ping timeout");
                        return Ending::new(1006, "the peer stopped answering pings");
                    }
                }
                let next = liveness.next_check();
                timer
                    .as_mut()
                    .reset(close_deadline.map_or(next, |deadline| deadline.min(next)));
                continue;
            }
        };
        let now = Instant::now();
        match frame.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => liveness.message(now),
            _ => liveness.heard(now),
        }
        match frame.opcode {
            Opcode::Close => return answer_close(connection, &frame),
            Opcode::Ping => {
                let _ = queue.push(Outbound::Pong(frame.payload.freeze()));
                writer.flush(queue);
            }
            Opcode::Pong => {}
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                let message = match assembler.push(&frame) {
                    Ok(Assembled::Complete(message)) => message,
                    Ok(Assembled::Partial) => continue,
                    Err(error) => {
                        let code = error.close_code();
                        let reason = error.to_string();
                        connection.start_close(code, &reason);
                        return Ending::new(code, reason);
                    }
                };
                // After a close has started, data is no longer delivered (RFC 6455 §5.5.1).
                if !connection.is_closing() {
                    // Boxed: the guest call's state is only needed while a message is being
                    // handled, and unboxed it would sit in every idle connection's task.
                    let failure = Box::pin(deliver(slot, connection, message)).await;
                    // What the event sent goes out now, without a hand-off to another task.
                    writer.flush(queue);
                    // After the 1011 went out, so on-error runs while the peer answers the
                    // close, and before on-close, which waits for that answer.
                    if let Some(message) = failure {
                        report_failure(slot.current(), connection, &message).await;
                    }
                }
                assembler.reset();
            }
        }
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
            connection.start_close(1011, "function error");
            function.error_message("on-message", &error)
        }
    }
}

/// Turns a read error into the connection's end, telling the peer why when it can listen.
fn fail(connection: &Connection, error: &ReadError) -> Ending {
    let code = match error {
        ReadError::Eof | ReadError::Io(_) => return Ending::new(1006, "connection lost"),
        ReadError::TooLarge(_) => 1009,
        ReadError::Protocol(_) => 1002,
    };
    let reason = error.to_string();
    connection.start_close(code, &reason);
    Ending::new(code, reason)
}

/// Answers the peer's close frame (RFC 6455 §5.5.1, §7.4): a valid close is echoed; a
/// malformed one is answered with 1002, or 1007 for a reason that is not UTF-8.
fn answer_close(connection: &Connection, frame: &Frame) -> Ending {
    let (code, reason) = match &frame.payload[..] {
        [] => (1005, ""),
        [_] => return reject_close(connection, 1002, "a close payload of one byte"),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_peer_close_code(code) {
                return reject_close(connection, 1002, "a close code a peer may not send");
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => (code, reason),
                Err(_) => {
                    return reject_close(connection, 1007, "a close reason that is not UTF-8");
                }
            }
        }
    };
    // Our echo: the same code (none for an empty close), so the handshake completes.
    connection.outbound.push_close(code, reason);
    Ending::new(code, reason)
}

fn reject_close(connection: &Connection, code: u16, what: &str) -> Ending {
    let reason = format!("protocol error: {what}");
    connection.start_close(code, &reason);
    Ending::new(code, reason)
}

/// Close codes a peer may put in a close frame (RFC 6455 §7.4.1, and the IANA registry).
fn is_valid_peer_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::{Ending, is_valid_peer_close_code, reported};

    #[test]
    fn on_close_gets_the_close_that_completed_or_1006() {
        let peer_echo = Ending::new(1000, "");
        let by_host = Some((4000, "bye".to_owned()));
        let told = reported(peer_echo, by_host.clone());
        assert_eq!((told.code, told.reason.as_str()), (4000, "bye"));

        let told = reported(Ending::new(1001, "going away"), None);
        assert_eq!((told.code, told.reason.as_str()), (1001, "going away"));

        let told = reported(
            Ending::new(1006, "the peer did not answer the close"),
            by_host,
        );
        assert_eq!(told.code, 1006);
        assert!(told.reason.contains("4000: bye"), "{}", told.reason);
    }

    #[test]
    fn close_codes_a_peer_may_send() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(is_valid_peer_close_code(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_peer_close_code(code), "{code}");
        }
    }
}
