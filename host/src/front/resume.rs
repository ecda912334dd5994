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
use crate::connections::{Compression, Connection, Handover, PhaseKind};
use crate::host::Host;
use crate::protocol::session::{ClientFrame, HostControl, Refusal, parse_client_frame};
use crate::protocol::{CloseCode, Opcode, write_frame};
use crate::reach::{Asker, Reach};

/// The session `id` of `function` that a resume may take over: one that has not ended.
pub fn find(host: &Host, function: &str, id: &str) -> Result<Arc<Connection>, Refusal> {
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
/// to the session, or refuses it. The socket holds `_permit` under the connection caps until
/// then; the session keeps its own.
pub async fn take_over(
    host: Arc<Host>,
    function: String,
    id: String,
    (upgrade, compression): (UpgradeFut, Option<Compression>),
    _permit: Permit,
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
    let (read, write) = stream.into_split();
    let connection = find(&host, &function, &id);
    let limit = connection
        .as_ref()
        .map_or(host.limits.max_frame_size, |c| max_frame(&host, c));
    let mut reader = FrameReader::new(read, already_read, limit, compression.is_some());
    let request = tokio::time::timeout(host.limits.handshake_timeout, reader.next_frame()).await;
    let received = match request {
        Ok(Ok(frame)) if frame.opcode == Opcode::Text && frame.fin => {
            match parse_client_frame(&frame.payload, true) {
                Ok(ClientFrame::Resume { secret, received }) => Some((secret.to_owned(), received)),
                _ => None,
            }
        }
        _ => None,
    };
    let verdict = match (connection, received) {
        (_, None) => Err(Refusal::Malformed),
        (Err(refusal), _) => Err(refusal),
        (Ok(connection), Some((secret, received))) => match connection.session.as_deref() {
            Some(session) if session.is_secret(&secret) => Ok((connection, received)),
            _ => Err(Refusal::Secret),
        },
    };
    match verdict {
        Ok((connection, received)) => {
            let (read, buffered) = reader.into_parts();
            if let Some(session) = connection.session.as_deref() {
                session.hand_over(Handover {
                    read,
                    buffered,
                    write,
                    received,
                    compression,
                });
                connection.outgoing.nudge();
            }
        }
        Err(refusal) => {
            tracing::debug!(session = %id, function = %function, reason = refusal.as_str(), "resume refused");
            refuse(&write, refusal);
        }
    }
}

/// Tells a resuming client its session cannot continue, then closes the socket.
fn refuse(socket: &OwnedWriteHalf, refusal: Refusal) {
    let text = HostControl::Refused { reason: refusal }.encode();
    let mut frame = Vec::new();
    write_frame(&mut frame, Opcode::Text, Bytes::from(text).as_ref());
    let stream: &tokio::net::TcpStream = socket.as_ref();
    let _ = stream.try_write(&frame);
    let reason = format!("session refused: {}", refusal.as_str());
    refuse_socket(socket, CloseCode::POLICY_VIOLATION.0, &reason);
}
