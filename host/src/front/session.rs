//! One accepted connection from its 101 to its on-close.
//!
//! The session task reads frames and runs the function's events one at a time, which is what
//! keeps a connection's messages in order. A second task writes (see `writer`). Whatever ends
//! the connection — peer close, a protocol error, a fault, a close started by the function or
//! by shutdown — the session ends the same way: the connection leaves the table and its groups,
//! then on-close runs exactly once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use fastwebsockets::{Frame, OpCode, Role, WebSocketError};
use tokio::time::{Instant, sleep_until};

use super::admission::Permit;
use super::assembler::{Assembled, Assembler, Message};
use super::liveness::{Due, Liveness};
use super::writer::write_frames;
use crate::connections::{Connection, Outbound};
use crate::host::{FunctionSlot, Host};
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
    let peer_ending = match upgrade.await {
        Ok(socket) => {
            let (read, write) = tokio::io::split(socket.into_inner());
            let writer = tokio::spawn(write_frames(connection.clone(), write));
            let ending = read_until_closed(&host, &slot, &connection, read).await;
            connection.outbound.finish();
            Some((ending, writer))
        }
        Err(error) => {
            tracing::debug!(connection = %connection.id, "upgrade failed: {error}");
            None
        }
    };

    host.connections.remove(&connection);
    let (ending, writer) = match peer_ending {
        Some((ending, writer)) => (ending, Some(writer)),
        None => (Ending::new(1006, "the upgrade did not complete"), None),
    };
    // A close the host started names the real cause, even if the peer echoed another code.
    let ending = match connection.initiated_close() {
        Some((code, reason)) => Ending { code, reason },
        None => ending,
    };
    tracing::debug!(connection = %connection.id, function = %slot.scope.name, code = ending.code, reason = %ending.reason, "connection closed");
    // A fault in on-close is logged and counted by the runtime; nothing is left to undo.
    let _ = slot
        .current()
        .on_close(&connection, ending.code, &ending.reason)
        .await;
    if let Some(writer) = writer {
        // Let the close frame and anything before it reach the peer, but never wait on a
        // peer that does not read.
        if tokio::time::timeout(host.limits.close_timeout, writer)
            .await
            .is_err()
        {
            tracing::debug!(connection = %connection.id, "writer did not finish in time");
        }
    }
}

/// Reads and handles frames until the connection is over.
async fn read_until_closed<R>(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    read: R,
) -> Ending
where
    R: tokio::io::AsyncRead + Unpin,
{
    let (mut reader, _) =
        fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Server);
    // The limit is checked per message by the assembler; fastwebsockets refuses a single frame
    // at or above its own limit, so it is set one past ours.
    reader.set_max_message_size(host.limits.max_frame_size.saturating_add(1));
    let mut assembler = Assembler::new(host.limits.max_message_size);
    let mut close_deadline: Option<Instant> = None;
    let mut shutdown_seen = false;
    let close_timeout = host.limits.close_timeout;
    let mut liveness = Liveness::new(&host.limits, Instant::now());
    let liveness_timer = sleep_until(liveness.next_check());
    tokio::pin!(liveness_timer);

    // Control frames fastwebsockets must answer (pong, close echo) go through the same queue
    // as everything else, so they stay in order with data frames.
    let mut answer = |frame: Frame<'_>| {
        match frame.opcode {
            OpCode::Pong => {
                let _ = connection
                    .outbound
                    .push(Outbound::Pong(Bytes::copy_from_slice(&frame.payload)));
            }
            OpCode::Close => {
                let (code, reason) = parse_close(&frame.payload);
                connection.outbound.push_close(code, &reason);
            }
            _ => {}
        }
        std::future::ready(Ok::<(), Infallible>(()))
    };

    loop {
        if close_deadline.is_none() && connection.is_closing() {
            close_deadline = Some(Instant::now() + close_timeout);
        }
        // The read future is kept across wake-ups: reading a frame is not cancel-safe, so it
        // is only dropped when the connection is being abandoned.
        let read = reader.read_frame(&mut answer);
        tokio::pin!(read);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut read => break Ok(result),
                () = host.shutdown.cancelled(), if !shutdown_seen => {
                    shutdown_seen = true;
                    connection.start_close(1001, "server shutting down");
                }
                () = connection.close_started.notified(), if close_deadline.is_none() => {}
                () = sleep_until(close_deadline.unwrap_or_else(far_future)), if close_deadline.is_some() => {
                    break Err(Ending::new(1006, "the peer did not answer the close"));
                }
                () = &mut liveness_timer => {
                    match liveness.check(Instant::now()) {
                        Due::Nothing => {}
                        Due::Ping => {
                            let _ = connection.outbound.push(Outbound::Ping(Bytes::new()));
                        }
                        Due::Idle => {
                            connection.start_close(1001, "idle timeout");
                        }
                        Due::Gone => {
                            // Tell the peer in case only its direction is broken, but do not
                            // wait for an answer that is not coming.
                            connection.start_close_now(1001, "ping timeout");
                            break Err(Ending::new(1006, "the peer stopped answering pings"));
                        }
                    }
                    liveness_timer.as_mut().reset(liveness.next_check());
                }
            }
            if close_deadline.is_none() && connection.is_closing() {
                close_deadline = Some(Instant::now() + close_timeout);
            }
        };
        let frame = match result {
            Ok(Ok(frame)) => frame,
            Ok(Err(error)) => return fail(connection, &error),
            Err(ending) => return ending,
        };
        let now = Instant::now();
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => liveness.message(now),
            _ => liveness.heard(now),
        }
        match frame.opcode {
            OpCode::Close => {
                let (code, reason) = parse_close(&frame.payload);
                return Ending { code, reason };
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
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
                    deliver(slot, connection, message).await;
                }
                assembler.reset();
            }
            OpCode::Ping | OpCode::Pong => {}
        }
    }
}

/// Runs on-message; a fault closes the connection with 1011 and leaves the others alone.
async fn deliver(slot: &FunctionSlot, connection: &Arc<Connection>, message: Message<'_>) {
    let message = match message {
        Message::Text(text) => MessageParam::Text(text),
        Message::Binary(bytes) => MessageParam::Binary(bytes),
    };
    // The fault itself is logged and counted where it happened, in the runtime.
    if slot
        .current()
        .on_message(connection, message)
        .await
        .is_err()
    {
        connection.start_close(1011, "function error");
    }
}

/// Turns a read error into the connection's end, telling the peer why when it can listen.
fn fail(connection: &Connection, error: &WebSocketError) -> Ending {
    let code = match error {
        WebSocketError::UnexpectedEOF
        | WebSocketError::IoError(_)
        | WebSocketError::ConnectionClosed => {
            return Ending::new(1006, "connection lost");
        }
        WebSocketError::FrameTooLarge => 1009,
        WebSocketError::InvalidUTF8 => 1007,
        _ => 1002,
    };
    let reason = error.to_string();
    connection.start_close(code, &reason);
    Ending::new(code, reason)
}

/// Reads a close frame's code and reason; an empty payload means "no status" (1005).
fn parse_close(payload: &[u8]) -> (u16, String) {
    match payload {
        [hi, lo, reason @ ..] => (
            u16::from_be_bytes([*hi, *lo]),
            String::from_utf8_lossy(reason).into_owned(),
        ),
        _ => (1005, String::new()),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
