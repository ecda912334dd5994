//! Resuming a session on a new socket: the client proves it holds the session's secret in its
//! first frame, and the socket is handed to the session's task, which writes again what the
//! client had not received. Nothing of the function runs.
//!
//! A refusal (no such session here, a wrong secret, another function's session, a malformed
//! request) comes after the 101, as an `x` message and a close, so that browsers, which see no
//! HTTP status of a failed handshake, can tell it from a network error. A refused socket never
//! touches the session.

use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use tokio::net::tcp::OwnedWriteHalf;

use super::admission::Permit;
use super::reader::FrameReader;
use super::session::{max_frame, refuse_socket, take_socket};
use std::net::SocketAddr;

use super::claim::{self, Claim};
use crate::connections::{Compression, Connection, ConnectionId, Handover, PhaseKind};
use crate::host::Host;
use crate::protocol::session::{
    ClientFrame, HostControl, MAX_CONTROL, Refusal, parse_client_frame,
};
use crate::protocol::{Assembled, Assembler, Message};
use crate::protocol::{CloseCode, Opcode, write_frame};
use crate::reach::{Asker, Reach};

/// Where the session a resume names is.
pub enum Found {
    /// Served by this node.
    Here(Arc<Connection>),
    /// A journaled session not served here: the resume claims it from its journal.
    Journaled(ConnectionId),
}

/// The session `id` of `function` that a resume may take over: one that has not ended.
pub fn find(host: &Host, function: &str, id: &str) -> Result<Found, Refusal> {
    if let Ok(parsed) = id.parse::<ConnectionId>()
        && parsed.is_journaled()
        && host.cluster.is_some()
        && host.connections.get(parsed).is_none()
    {
        return Ok(Found::Journaled(parsed));
    }
    find_here(host, function, id).map(Found::Here)
}

fn find_here(host: &Host, function: &str, id: &str) -> Result<Arc<Connection>, Refusal> {
    let resumable = |connection: &Connection| {
        connection.session.is_some()
            && matches!(
                connection.outgoing.kind(),
                PhaseKind::Open | PhaseKind::Detached
            )
    };
    match host.resolver(Asker::Function(function)).resolve(id) {
        Reach::Here(connection) if resumable(&connection) => Ok(connection),
        Reach::Here(_) | Reach::Remote { .. } => Err(Refusal::Unknown),
        Reach::Gone => match host.resolver(Asker::Operator).resolve(id) {
            Reach::Here(connection) if resumable(&connection) => Err(Refusal::Function),
            _ => Err(Refusal::Unknown),
        },
    }
}

/// Runs once the 101 of a resume has been sent: reads the resume request and hands the socket
/// to the session, or refuses it. The socket holds `permit` under the connection caps until
/// then; a session of this node keeps its own, one taken over from another node takes it.
/// `subprotocol` is what the 101 confirmed.
pub async fn take_over(
    host: Arc<Host>,
    function: String,
    id: String,
    (upgrade, compression): (UpgradeFut, Option<Compression>),
    permit: Permit,
    subprotocol: Option<String>,
) {
    let socket = upgrade
        .await
        .map_err(|e| e.to_string())
        .and_then(|ws| take_socket(ws.into_inner()));
    let (stream, already_read) = match socket {
        Ok(socket) => socket,
        Err(error) => {
            tracing::debug!(session = %id, "resume upgrade failed: {error}");
            return;
        }
    };
    let remote = stream.peer_addr().ok();
    let (read, write) = stream.into_split();
    let found = find(&host, &function, &id);
    let limit = match &found {
        Ok(Found::Here(connection)) => max_frame(&host, connection),
        _ => host.limits.max_frame_size + 1,
    };
    let mut reader = FrameReader::new(read, already_read, limit, compression.is_some());
    let request = tokio::time::timeout(
        host.limits.handshake_timeout,
        read_resume_request(&mut reader),
    )
    .await;
    let Some((secret, received)) = request.ok().flatten() else {
        return refuse(&write, &function, &id, Refusal::Malformed);
    };
    let claim = |session| Claim {
        function: &function,
        id: session,
        secret: &secret,
        received,
        remote: remote.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        subprotocol,
    };
    // The session that takes the socket, and the task that will serve it if a new one must.
    let taker = match found {
        Err(refusal) => Err(refusal),
        Ok(Found::Here(connection)) => match connection.session.as_deref() {
            Some(session) if session.is_secret(&secret) => Ok((connection, None)),
            _ => Err(Refusal::Secret),
        },
        Ok(Found::Journaled(session)) => claim::claim(&host, claim(session))
            .await
            .map(|(slot, connection)| (connection, Some(slot))),
    };
    let (connection, taken_over) = match taker {
        Ok(taker) => taker,
        Err(refusal) => return refuse(&write, &function, &id, refusal),
    };
    let (read, buffered) = reader.into_parts();
    if let Some(session) = connection.session.as_deref() {
        session.hand_over(Handover {
            read,
            buffered,
            write,
            received,
            compression,
        });
    }
    match taken_over {
        // Its own task waits for the socket.
        None => connection.outgoing.nudge(),
        Some(slot) => {
            let task = super::session::run_taken_over(host.clone(), slot, connection, permit);
            host.tasks.spawn(task);
        }
    }
}

/// The resume request, the socket's first message: a text message, compressed or not, in one
/// frame or several; `None` for anything else.
async fn read_resume_request(reader: &mut FrameReader) -> Option<(String, u64)> {
    let mut assembler = Assembler::new(MAX_CONTROL + 1);
    loop {
        let frame = reader.next_frame().await.ok()?;
        if frame.opcode.is_control() {
            return None;
        }
        if let Assembled::Complete(message) = assembler.push(&frame).ok()? {
            let Message::Text(text) = message else {
                return None;
            };
            return match parse_client_frame(text.as_bytes(), true) {
                Ok(ClientFrame::Resume { secret, received }) => Some((secret.to_owned(), received)),
                _ => None,
            };
        }
    }
}

/// Tells a resuming client its session cannot continue, then closes the socket.
fn refuse(socket: &OwnedWriteHalf, function: &str, id: &str, refusal: Refusal) {
    tracing::debug!(session = %id, %function, reason = refusal.as_str(), "resume refused");
    let text = HostControl::Refused { reason: refusal }.encode();
    let mut frame = Vec::new();
    write_frame(&mut frame, Opcode::Text, Bytes::from(text).as_ref());
    let stream: &tokio::net::TcpStream = socket.as_ref();
    let _ = stream.try_write(&frame);
    let reason = format!("session refused: {}", refusal.as_str());
    refuse_socket(socket, CloseCode::POLICY_VIOLATION.0, &reason);
}
