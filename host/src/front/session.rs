//! One accepted connection from its 101 to its on-close.
//!
//! The session task reads frames and runs the function's events one at a time (see
//! `reading`), which is what keeps a connection's messages in order, and writes what is sent
//! to the connection (see `connections::Outgoing`) without a task of its own. Whatever ends
//! the connection — peer close, a protocol error, a fault, a close started by the function or
//! by shutdown — the session ends the same way: the connection leaves the table and its groups,
//! then on-close runs exactly once. A handler that failed is reported to on-error once: a
//! failed on-message before on-close, a failed on-close after it.
//!
//! A resumable session outlives its sockets: when one is lost the connection detaches and this
//! task waits, holding nothing but the connection, for a resume to hand it a new socket
//! (`resume`), or for the resume window to pass.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::admission::Permit;
use super::reader::FrameReader;
use super::reading::{Ending, read_until_closed};
use crate::cluster::ClusterLink;
use crate::connections::{
    Compression, Connection, Flushed, Handover, HostClose, Outbound, PhaseKind, Session,
};
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::observe::LogEvent;
use crate::protocol::session::HostControl;
use crate::protocol::{CloseCode, write_close_frame};
use crate::runtime::Function;

/// Runs a connection to its end. `upgrade` resolves once the 101 has been sent. The
/// connection keeps its place under the connection caps (`_permit`) until on-close has run.
pub async fn run(
    host: Arc<Host>,
    slot: Arc<FunctionSlot>,
    connection: Arc<Connection>,
    upgrading: (UpgradeFut, Option<Compression>),
    permit: Permit,
) {
    let reader = attach_socket(&host, &connection, upgrading)
        .await
        .ok_or_else(|| Ending::new(1006, "the upgrade did not complete"));
    serve(host, slot, connection, reader, permit).await;
}

/// Runs a journaled session taken over from another node (see `claim`) to its end, starting
/// with the resume that claimed it, whose socket its session holds.
pub async fn run_taken_over(
    host: Arc<Host>,
    slot: Arc<FunctionSlot>,
    connection: Arc<Connection>,
    permit: Permit,
) {
    let handover = connection
        .session
        .as_deref()
        .and_then(Session::take_handover);
    let reader = match handover {
        Some(handover) => resume(&host, &slot, &connection, handover),
        None => Err(Ending::new(1006, "the resume's socket was lost")),
    };
    serve(host, slot, connection, reader, permit).await;
}

/// Serves a connection from its first socket (or how that ended) to its end.
async fn serve(
    host: Arc<Host>,
    slot: Arc<FunctionSlot>,
    connection: Arc<Connection>,
    first: Result<FrameReader, Ending>,
    _permit: Permit,
) {
    // The reader lives here, not in the reading loop's future: a value moved into an async
    // call is stored twice while it runs, and this state sits in every idle connection.
    let (mut reader, mut ended) = match first {
        Ok(reader) => (Some(reader), None),
        Err(ending) => (None, Some(ending)),
    };
    let ending = loop {
        let ending = match (&mut reader, ended.take()) {
            (Some(reader), _) => read_until_closed(&host, &slot, &connection, reader).await,
            (None, ending) => ending.unwrap_or_else(|| Ending::new(1006, "no socket")),
        };
        drop(reader.take());
        if !(ending.lost && connection.session.is_some()) {
            break ending;
        }
        // Boxed, like closing below: waiting for a resume and ending the connection happen
        // once, and their state would otherwise sit in every open connection's task.
        match Box::pin(detached(&host, &slot, &connection, ending)).await {
            Ok(resumed) => reader = Some(resumed),
            Err(ending) => break ending,
        }
    };
    if connection
        .session
        .as_deref()
        .is_some_and(Session::has_moved)
    {
        Box::pin(moved_away(&host, &slot, &connection)).await;
        return;
    }
    if ending.handed_off {
        Box::pin(handed_off(&host, &slot, &connection)).await;
        return;
    }
    let released = connection.outgoing.end();
    slot.scope
        .metrics
        .session_bytes_held
        .dec_by(released as i64);
    // The close frame (ours or the echo of the peer's) goes out before on-close runs.
    connection.outgoing.flush();
    Box::pin(close(&host, &slot, &connection, ending)).await;
}

/// Takes the socket of a completed upgrade: its write half goes to the connection's outgoing
/// side (with the compression its handshake negotiated), its read half to the returned reader.
async fn attach_socket(
    host: &Host,
    connection: &Connection,
    (upgrade, compression): (UpgradeFut, Option<Compression>),
) -> Option<FrameReader> {
    let upgraded = upgrade
        .await
        .map_err(|e| e.to_string())
        .and_then(|ws| take_socket(ws.into_inner()));
    match upgraded {
        Ok((stream, already_read)) => {
            let (read, write) = stream.into_split();
            connection.outgoing.attach(write, compression);
            Some(FrameReader::new(
                read,
                already_read,
                max_frame(host, connection),
                compression.is_some(),
            ))
        }
        Err(error) => {
            tracing::debug!(connection = %connection.id, "upgrade failed: {error}");
            None
        }
    }
}

/// The largest frame this connection accepts: no frame may be larger than a whole message
/// could be (a session's message with its type byte).
pub(super) fn max_frame(host: &Host, connection: &Connection) -> usize {
    let limits = &host.limits;
    limits.max_frame_size.min(limits.max_message_size) + usize::from(connection.session.is_some())
}

/// A session lost its socket (`lost` says how): it waits detached for a resume. Gives the
/// resumed socket's reader, or how the connection ended: not resumed within the window,
/// closed by the host meanwhile (the function, the operator, shutdown, an overflow).
async fn detached(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Connection,
    lost: Ending,
) -> Result<FrameReader, Ending> {
    let Some(session) = connection.session.as_deref() else {
        return Err(lost);
    };
    if session.is_handing_off() && !session.has_moved() {
        // The client resumes on another node, which takes the session over.
        connection
            .outgoing
            .close_socket(CloseCode::SERVICE_RESTART.0, HAND_OFF_REASON);
        connection.outgoing.flush();
    } else if lost.taken_over {
        // Best effort: the old socket may still be read by a client that has moved on.
        connection
            .outgoing
            .close_socket(CloseCode::POLICY_VIOLATION.0, "session resumed elsewhere");
        connection.outgoing.flush();
    }
    if !connection.outgoing.detach() {
        return Err(lost);
    }
    tracing::debug!(connection = %connection.id, "session detached: {}", lost.reason);
    let metrics = &slot.scope.metrics;
    metrics.sessions_detached.inc();
    let waited = wait_for_resume(host, connection, session).await;
    metrics.sessions_detached.dec();
    match waited {
        Waited::Handover(handover) => resume(host, slot, connection, handover),
        Waited::Ended(Some(close)) => Err(Ending::new(close.code, &*close.reason)),
        Waited::Ended(None) | Waited::Moved => Err(lost),
        Waited::HandedOff => Err(Ending {
            handed_off: true,
            ..lost
        }),
        Waited::Expired => {
            metrics.sessions_expired.inc();
            Err(Ending::new(
                1006,
                "the session was not resumed within the resume window",
            ))
        }
    }
}

/// This node stops serving a journaled session that lives on elsewhere: no publish delivered
/// here is appended after this, nothing more is written, and it leaves the table and its
/// groups here (not the directory's: they are still its). No on-close. Returns those groups.
fn stop_serving(host: &Host, slot: &FunctionSlot, connection: &Connection) -> Vec<Box<str>> {
    if let Some(session) = connection.session.as_deref() {
        session.stop_publishes();
    }
    let released = connection.outgoing.end();
    let metrics = &slot.scope.metrics;
    metrics.session_bytes_held.dec_by(released as i64);
    connection.outgoing.flush();
    connection.outgoing.release();
    let groups = host.connections.remove(connection);
    metrics.open_connections.dec();
    groups
}

/// A resume on another node took the session over: this node lets it go without on-close,
/// once its function has handled what it read, and tells the other node how much that was.
async fn moved_away(host: &Host, slot: &FunctionSlot, connection: &Arc<Connection>) {
    let groups = stop_serving(host, slot, connection);
    let (Some(session), Some(cluster)) = (connection.session.as_deref(), &host.cluster) else {
        return;
    };
    cluster.session_moved_away(connection, &groups);
    let handled = session.handled();
    let claim = session.moved_by().unwrap_or(0);
    cluster
        .session_released(connection.id, handled, claim)
        .await;
    tracing::debug!(connection = %connection.id, handled, "session moved to another node");
}

/// What a session's client is told when its node shuts down in a cluster.
const HAND_OFF_REASON: &str = "the node is restarting: resume the session on another";

/// How long a node shutting down waits for its sessions' clients to resume elsewhere before
/// leaving them to wait in the cluster: most of the shutdown timeout, so on-close of the
/// connections that do end still fits.
fn hand_off_wait(host: &Host) -> Duration {
    (host.limits.shutdown_timeout * 3 / 4).min(host.limits.resume_window)
}

/// The node shut down and no resume took the session over in time: it waits, with no node,
/// for a resume on any (its journal and directory entries stay; a survivor runs its on-close
/// once if its resume window passes).
async fn handed_off(host: &Host, slot: &FunctionSlot, connection: &Arc<Connection>) {
    let groups = stop_serving(host, slot, connection);
    let (Some(session), Some(cluster)) = (connection.session.as_deref(), &host.cluster) else {
        return;
    };
    if let Err(error) = cluster.park_here(connection.id, session.handled()).await {
        tracing::warn!(connection = %connection.id, "cannot leave a session to wait in the cluster: {error}");
    }
    cluster.session_moved_away(connection, &groups);
    tracing::debug!(connection = %connection.id, "session left to wait for a resume on another node");
}

/// What a detached session's wait ended with.
enum Waited {
    Handover(Handover),
    /// Closed by the host meanwhile, with the close it started.
    Ended(Option<HostClose>),
    Expired,
    /// A resume on another node took it over.
    Moved,
    /// The node shuts down and no resume elsewhere came in time.
    HandedOff,
}

/// Waits for a resume's socket, the end of the connection, or the resume window to pass.
async fn wait_for_resume(host: &Host, connection: &Connection, session: &Session) -> Waited {
    let expiry = sleep_until(Instant::now() + host.limits.resume_window);
    tokio::pin!(expiry);
    // Set when the node starts handing the session over.
    let mut hand_off: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        // Registers the session for wake-ups: a hand-over or a close wakes it like a frame.
        let _ = connection.outgoing.poll_progress(cx);
        if session.has_moved() {
            return Poll::Ready(Waited::Moved);
        }
        if let Some(handover) = session.take_handover() {
            return Poll::Ready(Waited::Handover(handover));
        }
        if connection.outgoing.kind() == PhaseKind::Ended {
            let close = connection.outgoing.phase().host_close().cloned();
            return Poll::Ready(Waited::Ended(close));
        }
        if session.is_handing_off() {
            let deadline = hand_off
                .get_or_insert_with(|| Box::pin(sleep_until(Instant::now() + hand_off_wait(host))));
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Waited::HandedOff);
            }
        }
        expiry.as_mut().poll(cx).map(|()| Waited::Expired)
    })
    .await
}

/// Gives a detached session the socket a resume handed over: what the client had not
/// received is written again first, then what was queued meanwhile.
fn resume(
    host: &Host,
    slot: &FunctionSlot,
    connection: &Connection,
    handover: Handover,
) -> Result<FrameReader, Ending> {
    let handled = connection.session.as_deref().map_or(0, |s| s.handled());
    let hello = Outbound::Control(Bytes::from(
        HostControl::Resumed { handled }.encode().into_bytes(),
    ));
    let Handover {
        read,
        buffered,
        write,
        received,
        compression,
    } = handover;
    match connection
        .outgoing
        .resume(write, compression, received, hello)
    {
        Ok((replayed, freed)) => {
            let metrics = &slot.scope.metrics;
            metrics.sessions_resumed.inc();
            metrics.messages_replayed.inc_by(replayed as u64);
            metrics.session_bytes_held.dec_by(freed as i64);
            tracing::debug!(connection = %connection.id, received, replayed, "session resumed");
            connection.outgoing.flush();
            Ok(FrameReader::new(
                read,
                buffered.freeze(),
                max_frame(host, connection),
                compression.is_some(),
            ))
        }
        Err((error, socket)) => {
            let reason = format!("protocol error: the resume {error}");
            refuse_socket(&socket, CloseCode::PROTOCOL_ERROR.0, &reason);
            Err(Ending::new(CloseCode::PROTOCOL_ERROR.0, reason))
        }
    }
}

/// Says why on a socket that will not be used, without waiting for it.
pub(super) fn refuse_socket(socket: &tokio::net::tcp::OwnedWriteHalf, code: u16, reason: &str) {
    let mut frame = Vec::new();
    write_close_frame(&mut frame, code, reason);
    let socket: &TcpStream = socket.as_ref();
    let _ = socket.try_write(&frame);
}

/// The connection is over: it leaves the table and its groups, on-close runs once, and what
/// is still committed drains to the peer.
async fn close(host: &Host, slot: &FunctionSlot, connection: &Arc<Connection>, ending: Ending) {
    let groups = host.connections.remove(connection);
    if let Some(cluster) = &host.cluster {
        if connection.journal().is_some() && !ends_journal_here(cluster, connection).await {
            // A resume on another node took it over as it ended here: it lives on there.
            slot.scope.metrics.open_connections.dec();
            cluster.session_moved_away(connection, &groups);
            finish_writing(connection, host.limits.close_timeout).await;
            return;
        }
        cluster.connection_closed(connection, &groups);
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

/// Ends a journaled session's journal, if this node still serves it: false when a resume
/// on another node took it over first, which then serves it and runs its on-close in time.
/// When Redis cannot say, the session ends here (its on-close runs) rather than never.
async fn ends_journal_here(cluster: &ClusterLink, connection: &Connection) -> bool {
    cluster.flush().await;
    match cluster
        .release_session(connection.id, Some(cluster.node))
        .await
    {
        Ok(released) => released,
        Err(error) => {
            tracing::warn!(connection = %connection.id, "cannot end a session's journal: {error}");
            true
        }
    }
}

/// Runs on-error for a handler of `connection` that failed (see the `error` interface).
pub(super) async fn report_failure(
    function: Arc<Function>,
    connection: &Arc<Connection>,
    message: &str,
) {
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
pub(super) fn take_socket(
    upgraded: TokioIo<hyper::upgrade::Upgraded>,
) -> Result<(TcpStream, Bytes), String> {
    match upgraded.into_inner().downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Ok((parts.io.into_inner(), parts.read_buf)),
        Err(_) => Err("the upgraded connection is not a TCP stream".into()),
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
