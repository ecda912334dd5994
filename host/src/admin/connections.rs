//! Admin routes for connections and groups: list, push a message, close, publish.
//!
//! These let systems outside the function reach its users — for example a backend notifying
//! one user (publish to their group) without any client being involved.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::Body;
use super::error::{ApiError, ErrorBody};
use crate::cluster::NodeCommand;
use crate::connections::rules;
use crate::connections::{Connection, NodeId, Outbound, PhaseKind, QueueError};
use crate::host::Host;
use crate::reach::{Asker, Reach};

/// An open connection.
#[derive(Serialize, ToSchema)]
pub struct ConnectionSummary {
    pub id: String,
    /// The node holding the connection (the first 8 hex digits of its id).
    pub node: String,
    /// The peer's address.
    pub remote: String,
    /// Groups the connection is in.
    pub groups: Vec<String>,
    /// When the connection was accepted, in milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
    /// Present when the connection is a resumable session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSummary>,
    /// Whether its socket negotiated permessage-deflate (absent for connections on other
    /// nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate: Option<bool>,
}

/// Where a resumable session stands.
#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    /// `attached` (its socket is open) or `detached` (waiting for its client to resume).
    pub state: &'static str,
    /// Payload bytes held for the client: queued, or sent and not yet acknowledged.
    pub held_bytes: usize,
    /// The client's messages the function has handled.
    pub handled: u64,
}

/// The answer to a push.
#[derive(Serialize, ToSchema)]
pub struct Delivered {
    /// Connections the message was queued for.
    pub delivered: u32,
}

/// Close code and reason for closing a connection.
// Said to be query parameters: the handler takes them through a `Result` to answer a bad
// query in JSON, and the document cannot tell where they come from through that.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseParams {
    /// 1000 or 3000-4999; default 1000.
    pub code: Option<u16>,
    /// At most 123 bytes; default "closed by the operator".
    pub reason: Option<String>,
}

/// The answer to a close.
#[derive(Serialize, ToSchema)]
pub struct Closing {
    pub id: String,
    pub code: u16,
}

fn summary(connection: &Connection) -> ConnectionSummary {
    ConnectionSummary {
        id: connection.id.to_string(),
        node: connection.id.node().to_string(),
        remote: connection.remote.to_string(),
        groups: connection.memberships(),
        connected_at_ms: connection
            .connected_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        session: connection.session.as_deref().map(|session| SessionSummary {
            state: match connection.outgoing.kind() {
                PhaseKind::Detached => "detached",
                _ => "attached",
            },
            held_bytes: connection.outgoing.held_bytes(),
            handled: session.handled(),
        }),
        deflate: Some(connection.outgoing.compression().is_some()),
    }
}

/// A request body as a frame: `application/octet-stream` is binary, anything else is text.
fn frame_of(host: &Host, headers: &HeaderMap, body: Bytes) -> Result<Outbound, ApiError> {
    if body.len() > host.limits.max_message_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "messages are at most {} bytes",
                host.limits.max_message_size
            ),
        ));
    }
    let binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    if binary {
        return Ok(Outbound::Binary(body));
    }
    std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request(
            "a text message must be UTF-8; send binary as application/octet-stream",
        )
    })?;
    Ok(Outbound::Text(body))
}

fn cluster_unavailable(error: crate::cluster::ClusterError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

fn route(host: &Host, node: NodeId, command: NodeCommand) -> Result<(), ApiError> {
    match &host.cluster {
        Some(cluster) => cluster
            .command(node, &command)
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        None => Err(ApiError::not_found("no such connection")),
    }
}

/// Where the connection `id` is, as the operator reaches it; a remote one is confirmed by
/// the cluster's directory, so a connection that closed anywhere is gone.
async fn locate(host: &Host, id: &str) -> Result<Reach, ApiError> {
    host.resolver(Asker::Operator)
        .resolve_confirmed(id)
        .await
        .map_err(cluster_unavailable)
}

fn gone(id: &str) -> ApiError {
    ApiError::not_found(format!("no open connection `{id}`"))
}

/// Lists the open connections of a function.
#[utoipa::path(get, path = "/v1/functions/{name}/connections", tag = "connections",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = [ConnectionSummary]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_connections(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ConnectionSummary>>, ApiError> {
    let slot = host
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no function named `{name}`")))?;
    let mut connections: Vec<_> = match &host.cluster {
        Some(cluster) => cluster
            .connections_of(&name)
            .await
            .map_err(cluster_unavailable)?
            .into_iter()
            .map(|(record, groups)| ConnectionSummary {
                id: record.id,
                node: record.node,
                remote: record.remote,
                groups,
                connected_at_ms: record.connected_at_ms,
                session: None,
                deflate: None,
            })
            .collect(),
        None => host
            .connections
            .of(&slot.scope)
            .iter()
            .map(|c| summary(c))
            .collect(),
    };
    connections.sort_by_key(|c| c.connected_at_ms);
    Ok(Json(connections))
}

/// Sends a message to one connection: a text frame, or a binary frame for
/// `application/octet-stream`.
#[utoipa::path(post, path = "/v1/connections/{id}/send", tag = "connections",
    params(("id" = String, Path, description = "Connection id")),
    request_body(content = String, content_type = "text/plain", description = "The message; send application/octet-stream for a binary frame"),
    responses(
        (status = 200, body = Delivered),
        (status = 400, description = "Text that is not UTF-8", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such open connection", body = ErrorBody),
        (status = 413, description = "Larger than the message size limit", body = ErrorBody),
        (status = 429, description = "The client is not reading; it is being closed with 1008", body = ErrorBody)))]
pub async fn send_to_connection(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Delivered>, ApiError> {
    let frame = frame_of(&host, &headers, body)?;
    let connection = match locate(&host, &id).await? {
        Reach::Here(connection) => connection,
        Reach::Remote { id: remote, node } => {
            let command = NodeCommand::Send {
                function: None,
                id: remote,
                frame,
            };
            route(&host, node, command)?;
            return Ok(Json(Delivered { delivered: 1 }));
        }
        Reach::Gone => return Err(gone(&id)),
    };
    match connection.send(frame) {
        Ok(()) => Ok(Json(Delivered { delivered: 1 })),
        Err(QueueError::Closing) => {
            Err(ApiError::not_found(format!("connection `{id}` is closing")))
        }
        Err(QueueError::Full) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("connection `{id}` is not reading; it is being closed with 1008"),
        )),
    }
}

/// Closes a connection; its on-close runs once the close completes.
#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "Connection id"), CloseParams),
    responses(
        (status = 202, description = "The close handshake has started", body = Closing),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn close_connection(
    State(host): State<Arc<Host>>,
    Path(id): Path<String>,
    params: Result<Query<CloseParams>, QueryRejection>,
) -> Result<(StatusCode, Json<Closing>), ApiError> {
    // Refused as JSON like every other admin error, not with the extractor's plain text.
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let code = params.code.unwrap_or(1000);
    let reason = params
        .reason
        .unwrap_or_else(|| "closed by the operator".into());
    rules::check_close(code, &reason).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let connection = match locate(&host, &id).await? {
        Reach::Here(connection) => connection,
        Reach::Remote { id: remote, node } => {
            let command = NodeCommand::Close {
                function: None,
                id: remote,
                code,
                reason,
            };
            route(&host, node, command)?;
            return Ok((StatusCode::ACCEPTED, Json(Closing { id, code })));
        }
        Reach::Gone => return Err(gone(&id)),
    };
    if !connection.start_close(code, &reason) {
        return Err(ApiError::not_found(format!(
            "connection `{id}` is already closing"
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(Closing { id, code })))
}

/// Publishes a message to every member of one of a function's groups.
#[utoipa::path(post, path = "/v1/functions/{name}/groups/{group}/send", tag = "connections",
    params(("name" = String, Path, description = "Function name"), ("group" = String, Path, description = "Group name")),
    request_body(content = String, content_type = "text/plain", description = "The message; send application/octet-stream for a binary frame"),
    responses(
        (status = 200, body = Delivered),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn publish_to_group(
    State(host): State<Arc<Host>>,
    Path((name, group)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Delivered>, ApiError> {
    let slot = host
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no function named `{name}`")))?;
    rules::check_group(&group).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let frame = frame_of(&host, &headers, body)?;
    Ok(Json(Delivered {
        delivered: crate::cluster::publish(
            &slot.scope,
            host.cluster.as_deref(),
            &group,
            frame,
            None,
        )
        .await,
    }))
}
