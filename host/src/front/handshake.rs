//! The WebSocket handshake: find the function, check a signed URL, run on-connect, then answer
//! 101 or refuse.
//!
//! on-connect runs before the 101, so a rejected client never gets a WebSocket and the function
//! never hears of that connection again.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Refusal;
use super::session;
use crate::connections::{Connection, ConnectionId};
use crate::host::{FunctionSlot, Host};
use crate::imports::connections::{MAX_ATTACHMENT, MAX_GROUP_NAME};
use crate::observe::LogEvent;
use crate::runtime::bindings::exports::wsfn::function::websocket_connection::Accept;
use crate::runtime::{ConnectRequest, Decision};
use crate::signing::is_reserved;

/// Why a handshake was refused, kept on the response so the refusal can be counted and logged
/// in one place.
#[derive(Clone)]
struct RefusalReason(String);

/// A plain-text refusal; for a rejection by the function the body is exactly its reason.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let reason = RefusalReason(message.clone());
    (status, headers, axum::Extension(reason), message).into_response()
}

/// `GET /{function}` with an upgrade request.
pub async fn upgrade(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Some(slot) = host.function(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no function named `{name}`"));
    };
    let response = handshake(host, slot.clone(), name, remote, request).await;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        slot.scope.metrics.rejected(status.as_u16());
        slot.scope.logs.publish(|| LogEvent::Reject {
            status: status.as_u16(),
            remote: remote.to_string(),
            reason: response
                .extensions()
                .get::<RefusalReason>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
        });
    }
    response
}

/// Everything after the function is found; any answer but 101 is a refusal.
async fn handshake(
    host: Arc<Host>,
    slot: Arc<FunctionSlot>,
    name: String,
    remote: SocketAddr,
    mut request: Request,
) -> Response {
    if host.shutdown.is_cancelled() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the host is shutting down");
    }
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !host.limits.allowed_origins.is_empty()
        && !host
            .limits
            .allowed_origins
            .iter()
            .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        return refuse(StatusCode::FORBIDDEN, "this origin may not connect");
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        let mut response = refuse(
            StatusCode::UPGRADE_REQUIRED,
            format!("`/{name}` is a WebSocket function: connect with a WebSocket client"),
        );
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        return response;
    }
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(parts) => parts,
        Err(error) => {
            let mut response = refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid WebSocket handshake: {error}"),
            );
            // RFC 6455 §4.4: a refusal says which protocol version the server speaks.
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return response;
        }
    };

    // The place is taken before any guest code runs, so a flood of handshakes cannot make
    // the host run on-connect beyond its caps.
    let permit = match host.admission.admit(remote.ip()) {
        Ok(permit) => permit,
        Err(Refusal::HostFull) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the host has no room for more connections",
            );
        }
        Err(Refusal::TooManyFromAddress) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address",
            );
        }
    };
    let id = ConnectionId::random_on(host.node);
    let hex = id.to_hex();
    let query: Vec<(Cow<str>, Cow<str>)> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    let mut query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (&**k, &**v)).collect();
    // Checked before on-connect, so a forged, altered or expired URL runs no function code.
    let signed = match host.signing.verify(&name, &query, SystemTime::now()) {
        Ok(signed) => signed,
        Err(problem) => {
            tracing::debug!(function = %name, %remote, "signed URL refused: {problem}");
            return refuse(StatusCode::UNAUTHORIZED, problem.to_string());
        }
    };
    if signed {
        query.retain(|(name, _)| !is_reserved(name));
    }
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let offered: Vec<&str> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let remote_address = remote.to_string();
    let connect = ConnectRequest {
        id: hex.as_str(),
        path: request.uri().path(),
        query: &query,
        headers: &headers,
        subprotocols: &offered,
        remote_address: &remote_address,
        signed,
    };

    let function = slot.current();
    let accept = match function.on_connect(connect).await {
        Ok(None) => Accept {
            subprotocol: None,
            groups: Vec::new(),
            attachment: None,
        },
        Ok(Some(Decision::Accept(accept))) => accept,
        Ok(Some(Decision::Reject(reject))) => {
            let status = StatusCode::from_u16(reject.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::FORBIDDEN);
            tracing::debug!(function = %name, %remote, status = status.as_u16(), "connection rejected");
            return refuse(status, reject.reason);
        }
        Err(error) => {
            tracing::warn!(function = %name, %remote, "on-connect failed: {error}");
            if let Some(message) = function.error_message("on-connect", &error) {
                // Not awaited, so the refusal is not held up by on-error; the permit goes with
                // it, so failing handshakes cannot pile up on-error runs beyond the caps.
                let function = function.clone();
                host.tasks.spawn(async move {
                    let _permit = permit;
                    let _ = function.on_error(hex.as_str(), None, &message).await;
                });
            }
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the function failed to accept the connection",
            );
        }
    };
    if let Err(problem) = check_accept(&accept, &offered) {
        tracing::warn!(function = %name, "on-connect returned an unusable accept: {problem}");
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the function failed to accept the connection",
        );
    }

    let connection = Arc::new(Connection::new(
        id,
        slot.scope.clone(),
        remote,
        host.limits.outbound_queue_bytes,
        host.limits.slow_consumer,
        accept.attachment,
    ));
    host.connections.insert(connection.clone());
    // Shutdown closes the connections in the table; one inserted just after that sweep closes
    // itself here, so none is missed.
    if host.shutdown.is_cancelled() {
        connection.start_close(1001, "server shutting down");
    }
    for group in &accept.groups {
        slot.scope.groups.join(&connection, group);
    }
    if let Some(cluster) = &host.cluster
        && let Err(error) = cluster.connection_opened(&connection, &accept.groups)
    {
        // The socket works; only the cluster's view of it lags (see the outbox).
        tracing::warn!(connection = %id, "{error}");
    }
    let mut response = response.map(Body::new);
    if let Some(protocol) = accept
        .subprotocol
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    tracing::debug!(function = %name, connection = %id, %remote, "connection accepted");
    let metrics = &slot.scope.metrics;
    metrics.accepted.inc();
    metrics.open_connections.inc();
    slot.scope.logs.publish(|| LogEvent::Connect {
        connection: hex.as_str().to_owned(),
        remote: remote_address,
    });
    host.tasks.spawn(session::run(
        host.clone(),
        slot,
        connection,
        upgrade,
        permit,
    ));
    response
}

/// An accept must pick an offered subprotocol and stay within the host's limits.
fn check_accept(accept: &Accept, offered: &[&str]) -> Result<(), String> {
    if let Some(chosen) = &accept.subprotocol
        && !offered.contains(&chosen.as_str())
    {
        return Err(format!(
            "subprotocol `{chosen}` was not offered by the client"
        ));
    }
    if let Some(group) = accept
        .groups
        .iter()
        .find(|g| g.is_empty() || g.len() > MAX_GROUP_NAME)
    {
        return Err(format!(
            "group name `{group}` is not 1 to {MAX_GROUP_NAME} bytes"
        ));
    }
    if accept
        .attachment
        .as_ref()
        .is_some_and(|a| a.len() > MAX_ATTACHMENT)
    {
        return Err(format!("attachment larger than {MAX_ATTACHMENT} bytes"));
    }
    Ok(())
}
