//! The WebSocket handshake: find the function, check the request and a signed URL, take a
//! place under the connection caps, run on-connect, then answer 101 or refuse.
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
use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;

use super::admission::{Permit, Refusal};
use super::resume::Found;
use super::{Front, session};
use crate::cluster::SessionStart;
use crate::connections::rules;
use crate::connections::{Compression, Connection, ConnectionId, Outbound, Push, Session};
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::observe::LogEvent;
use crate::protocol::deflate;
use crate::protocol::session::{HostControl, RESUME_PARAM, SESSION_PARAM, SESSION_VERSION};
use crate::runtime::bindings::exports::wsfn::function::websocket_connection::Accept;
use crate::runtime::{ConnectRequest, Decision};
use crate::signing::{UrlSigning, is_reserved};

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

/// A refusal on its way out of the handshake's steps (boxed: a response is large, and most
/// steps succeed).
type Refused = Box<Response>;

/// The refusal of a handshake whose on-connect failed or returned something unusable.
fn function_failed() -> Response {
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the function failed to accept the connection",
    )
}

/// `GET /{function}` with an upgrade request.
pub async fn upgrade(
    State(front): State<Front>,
    Path(name): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Some(slot) = front.host.functions.get(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no function named `{name}`"));
    };
    let response = match handshake(&front, &slot, &name, remote, request).await {
        Ok(response) => response,
        Err(refused) => *refused,
    };
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

/// Everything after the function is found; the `Err` answers are refusals.
async fn handshake(
    front: &Front,
    slot: &Arc<FunctionSlot>,
    name: &str,
    remote: SocketAddr,
    mut request: Request,
) -> Result<Response, Refused> {
    let host = &front.host;
    check_request(host, name, &request)?;
    if SessionAsk::of(&request) == SessionAsk::Unsupported {
        return Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "this host speaks version {SESSION_VERSION} of the session protocol: connect \
                 with {SESSION_PARAM}={SESSION_VERSION}"
            ),
        )));
    }
    let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request).map_err(|error| {
        let mut response = refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid WebSocket handshake: {error}"),
        );
        // RFC 6455 §4.4: a refusal says which protocol version the server speaks.
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        Box::new(response)
    })?;
    // The place is taken before any guest code runs, so a flood of handshakes cannot make
    // the host run on-connect beyond its caps.
    let permit = front
        .admission
        .admit(remote.ip())
        .map_err(|refusal| match refusal {
            Refusal::HostFull => refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the host has no room for more connections",
            ),
            Refusal::TooManyFromAddress => refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address",
            ),
        })?;
    let (response, compression) = negotiate_compression(host, name, &request, response);
    let asked = SessionAsk::of(&request);
    if let SessionAsk::Resume(session) = asked {
        let resuming = Resuming {
            response,
            upgrade: (upgrade, compression),
            permit,
        };
        let offered = offered_subprotocols(&request)
            .into_iter()
            .map(str::to_owned)
            .collect();
        drop(request);
        return Ok(resume(front, name, &session, offered, resuming).await);
    }
    // A session in a cluster keeps its messages in a journal any node can take it over from.
    let id = match (&host.cluster, asked == SessionAsk::New) {
        (Some(_), true) => ConnectionId::journaled_on(host.node),
        _ => ConnectionId::random_on(host.node),
    };
    let offer = Offer::read(&host.signing, name, remote, &request)?;
    let (accept, permit) = decide(host, slot, name, id, &offer, permit).await?;
    check_accept(&accept, &offer.subprotocols).map_err(|problem| {
        tracing::warn!(function = %name, "on-connect returned an unusable accept: {problem}");
        Box::new(function_failed())
    })?;
    let upgrading = Upgrading {
        response,
        upgrade: (upgrade, compression),
        permit,
        session: asked == SessionAsk::New,
    };
    Ok(open_when_heard(host, slot, id, remote, accept, upgrading).await)
}

/// Opens the connection; in a cluster, the 101 goes out once this node hears the groups
/// joined on connect, so a publish made anywhere after the client saw its connection open
/// reaches it.
async fn open_when_heard(
    host: &Arc<Host>,
    slot: &Arc<FunctionSlot>,
    id: ConnectionId,
    remote: SocketAddr,
    mut accept: Accept,
    upgrading: Upgrading,
) -> Response {
    let journaled = id.is_journaled() && upgrading.session;
    let Some(cluster) = host
        .cluster
        .clone()
        .filter(|_| journaled || !accept.groups.is_empty())
    else {
        return open(host, slot, id, remote, accept, upgrading);
    };
    let groups = accept.groups.clone();
    if !journaled {
        let response = open(host, slot, id, remote, accept, upgrading);
        cluster.await_listening(&slot.scope.name, &groups).await;
        return response;
    }
    let connection =
        new_connection(host, slot, id, remote, &mut accept, true).journaled(cluster.clone());
    let Some(secret) = connection.session.as_deref().map(Session::secret_hex) else {
        return function_failed();
    };
    // The journal exists before anything can be sent to the session.
    let start = SessionStart {
        id,
        function: &slot.scope.name,
        secret: &secret,
        retention: host.functions.session_retention(&slot.scope.name),
        subprotocol: accept.subprotocol.as_deref(),
    };
    if let Err(error) = cluster.open_session(&start).await {
        tracing::warn!(function = %slot.scope.name, "cannot start a resumable session: {error}");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster cannot keep a resumable session now (Redis is unreachable)",
        );
    }
    let connection = Arc::new(connection);
    let response = open_connection(host, slot, connection.clone(), accept, upgrading);
    cluster.watch_session(id);
    cluster
        .await_session_listening(id, &slot.scope.name, &groups)
        .await;
    // Anything appended before this node listened is read from the journal.
    host.catch_up_session(&connection).await;
    response
}

/// Refusals that need no more than the request: a host shutting down, a browser from an
/// origin that is not allowed, a plain HTTP request to a function's path.
fn check_request(host: &Host, name: &str, request: &Request) -> Result<(), Refused> {
    if host.shutdown.is_cancelled() {
        return Err(Box::new(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the host is shutting down",
        )));
    }
    let allowed = &host.limits.allowed_origins;
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !allowed.is_empty()
        && !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes())
    {
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "this origin may not connect",
        )));
    }
    if !fastwebsockets::upgrade::is_upgrade_request(request) {
        let mut response = refuse(
            StatusCode::UPGRADE_REQUIRED,
            format!("`/{name}` is a WebSocket function: connect with a WebSocket client"),
        );
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        return Err(Box::new(response));
    }
    Ok(())
}

/// What on-connect is told about the request, read from it once.
struct Offer<'r> {
    path: &'r str,
    query: Vec<(Cow<'r, str>, Cow<'r, str>)>,
    headers: Vec<(&'r str, &'r str)>,
    subprotocols: Vec<&'r str>,
    remote: String,
    signed: bool,
}

impl<'r> Offer<'r> {
    /// Reads the request, checking a signed URL first, so a forged, altered or expired URL
    /// runs no function code.
    fn read(
        signing: &UrlSigning,
        name: &str,
        remote: SocketAddr,
        request: &'r Request,
    ) -> Result<Self, Refused> {
        let mut query: Vec<(Cow<str>, Cow<str>)> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
            .unwrap_or_default();
        // The session's own parameters are the host's: a client adds them to any URL, signed
        // or not, and the function never sees them.
        query.retain(|(name, _)| name != SESSION_PARAM && name != RESUME_PARAM);
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (&**k, &**v)).collect();
        let signed = signing
            .verify(name, &pairs, SystemTime::now())
            .map_err(|problem| {
                tracing::debug!(function = %name, %remote, "signed URL refused: {problem}");
                Box::new(refuse(StatusCode::UNAUTHORIZED, problem.to_string()))
            })?;
        if signed {
            query.retain(|(name, _)| !is_reserved(name));
        }
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let subprotocols = offered_subprotocols(request);
        Ok(Self {
            path: request.uri().path(),
            query,
            headers,
            subprotocols,
            remote: remote.to_string(),
            signed,
        })
    }

    /// The query pairs as on-connect's argument borrows them.
    fn query_pairs(&self) -> Vec<(&str, &str)> {
        self.query.iter().map(|(k, v)| (&**k, &**v)).collect()
    }
}

/// Runs on-connect and turns its decision into an accept, or a refusal. A failure of the
/// function is reported to its on-error beside the refusal; the place under the caps goes
/// with that report, so failing handshakes cannot pile up on-error runs beyond the caps.
async fn decide(
    host: &Host,
    slot: &FunctionSlot,
    name: &str,
    id: ConnectionId,
    offer: &Offer<'_>,
    permit: Permit,
) -> Result<(Accept, Permit), Refused> {
    let hex = id.to_hex();
    let query = offer.query_pairs();
    let request = ConnectRequest {
        id: hex.as_str(),
        path: offer.path,
        query: &query,
        headers: &offer.headers,
        subprotocols: &offer.subprotocols,
        remote_address: &offer.remote,
        signed: offer.signed,
    };
    let function = slot.current();
    match function.on_connect(request).await {
        Ok(None) => Ok((
            Accept {
                subprotocol: None,
                groups: Vec::new(),
                attachment: None,
            },
            permit,
        )),
        Ok(Some(Decision::Accept(accept))) => Ok((accept, permit)),
        Ok(Some(Decision::Reject(reject))) => {
            let status = StatusCode::from_u16(reject.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::FORBIDDEN);
            tracing::debug!(function = %name, remote = %offer.remote, status = status.as_u16(), "connection rejected");
            Err(Box::new(refuse(status, reject.reason)))
        }
        Err(error) => {
            tracing::warn!(function = %name, remote = %offer.remote, "on-connect failed: {error}");
            if let Some(message) = function.error_message("on-connect", &error) {
                // Not awaited, so the refusal is not held up by on-error.
                let function = function.clone();
                host.tasks.spawn(async move {
                    let _permit = permit;
                    let _ = function.on_error(hex.as_str(), None, &message).await;
                });
            }
            Err(Box::new(function_failed()))
        }
    }
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
    for group in &accept.groups {
        rules::check_group(group).map_err(|e| format!("group `{group}`: {e}"))?;
    }
    if let Some(attachment) = &accept.attachment {
        rules::check_attachment(attachment).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Answers the client's permessage-deflate offers, when the function compresses: the 101
/// names what was accepted, and the connection compresses with it.
fn negotiate_compression(
    host: &Host,
    name: &str,
    request: &Request,
    response: hyper::Response<http_body_util::Empty<Bytes>>,
) -> (Response, Option<Compression>) {
    let mut response = response.map(Body::new);
    let Some(threshold) = host.functions.deflate_threshold(name) else {
        return (response, None);
    };
    let Some((answer, compression)) = compression_answer(request, threshold) else {
        return (response, None);
    };
    response
        .headers_mut()
        .insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
    (response, Some(compression))
}

/// The first acceptable permessage-deflate offer of the request: the header to answer it
/// with, and how the connection compresses.
fn compression_answer(request: &Request, threshold: usize) -> Option<(HeaderValue, Compression)> {
    let offers = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let (deflate, answer) = deflate::negotiate(offers)?;
    let answer = HeaderValue::from_str(&answer).ok()?;
    let compression = Compression {
        window_bits: deflate.server_window_bits,
        threshold,
    };
    Some((answer, compression))
}

/// What a client asked of sessions, in its query (see `protocol::session`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SessionAsk {
    /// A plain connection.
    Plain,
    /// A new resumable session.
    New,
    /// Resume the session with this id.
    Resume(String),
    /// A session protocol version this host does not speak.
    Unsupported,
}

impl SessionAsk {
    fn of(request: &Request) -> Self {
        let Some(query) = request.uri().query() else {
            return SessionAsk::Plain;
        };
        let (mut version, mut resume) = (None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name == SESSION_PARAM {
                version = Some(value);
            } else if name == RESUME_PARAM {
                resume = Some(value);
            }
        }
        match (version, resume) {
            (None, None) => SessionAsk::Plain,
            (Some(version), _) if version != SESSION_VERSION => SessionAsk::Unsupported,
            (Some(_), None) => SessionAsk::New,
            (_, Some(id)) => SessionAsk::Resume(id.into_owned()),
        }
    }
}

/// A resume's upgrade on its way.
struct Resuming {
    response: Response,
    upgrade: (UpgradeFut, Option<Compression>),
    permit: Permit,
}

/// Answers a resume with the 101 (confirming the subprotocol the session was opened with,
/// when offered again) and leaves the rest to `resume::take_over`, after the 101: a refusal
/// must reach browsers, which see no HTTP status of a failed handshake.
async fn resume(
    front: &Front,
    name: &str,
    session: &str,
    offered: Vec<String>,
    resuming: Resuming,
) -> Response {
    let Resuming {
        mut response,
        upgrade,
        permit,
    } = resuming;
    let host = &front.host;
    let protocol = match super::resume::find(host, name, session) {
        Ok(Found::Here(connection)) => connection
            .session
            .as_deref()
            .and_then(|s| s.subprotocol.as_deref().map(str::to_owned)),
        Ok(Found::Journaled(id)) => match &host.cluster {
            Some(cluster) => cluster
                .session_subprotocol(id, name)
                .await
                .ok()
                .flatten()
                .flatten(),
            None => None,
        },
        Err(_) => None,
    };
    let protocol = protocol.filter(|p| offered.contains(p));
    if let Some(value) = protocol
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    host.tasks.spawn(super::resume::take_over(
        host.clone(),
        name.to_owned(),
        session.to_owned(),
        upgrade,
        permit,
        protocol,
    ));
    response
}

/// The subprotocols a client offers, in its order.
fn offered_subprotocols(request: &Request) -> Vec<&str> {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// An upgrade on its way: the 101 to answer, the socket once it is sent, and the place the
/// connection holds under the caps.
struct Upgrading {
    response: Response,
    upgrade: (UpgradeFut, Option<Compression>),
    permit: Permit,
    /// The client asked for a resumable session.
    session: bool,
}

/// The record of an accepted connection (taking the attachment on-connect gave it): a
/// resumable session's when the client asked for one, with its first frame queued before
/// anything a group or the function may send.
fn new_connection(
    host: &Host,
    slot: &FunctionSlot,
    id: ConnectionId,
    remote: SocketAddr,
    accept: &mut Accept,
    session: bool,
) -> Connection {
    let connection = Connection::new(
        id,
        slot.scope.clone(),
        remote,
        host.limits.outbound_queue_bytes,
        host.limits.slow_consumer,
        accept.attachment.take(),
    );
    if !session {
        return connection;
    }
    let connection = connection.with_session(
        host.functions.session_retention(&slot.scope.name),
        accept.subprotocol.as_deref(),
    );
    if let Some(session) = connection.session.as_deref() {
        let started = HostControl::Started {
            id: connection.id_str(),
            secret: &session.secret_hex(),
        }
        .encode();
        let _ = connection.outgoing.push(
            Outbound::Control(Bytes::from(started.into_bytes())),
            Push {
                drop_oldest: false,
                direct: false,
            },
        );
    }
    connection
}

/// Opens an accepted connection: into the table and its groups, its session started, and the
/// 101 answered (with the chosen subprotocol).
fn open(
    host: &Arc<Host>,
    slot: &Arc<FunctionSlot>,
    id: ConnectionId,
    remote: SocketAddr,
    mut accept: Accept,
    upgrading: Upgrading,
) -> Response {
    let Upgrading {
        response,
        upgrade,
        permit,
        session,
    } = upgrading;
    let connection = new_connection(host, slot, id, remote, &mut accept, session);
    open_connection(
        host,
        slot,
        Arc::new(connection),
        accept,
        Upgrading {
            response,
            upgrade,
            permit,
            session,
        },
    )
}

/// Opens `connection`, made by [`new_connection`]: see [`open`].
fn open_connection(
    host: &Arc<Host>,
    slot: &Arc<FunctionSlot>,
    connection: Arc<Connection>,
    accept: Accept,
    upgrading: Upgrading,
) -> Response {
    let Upgrading {
        mut response,
        upgrade,
        permit,
        session: _,
    } = upgrading;
    let (id, remote) = (connection.id, connection.remote);
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
    if let Some(protocol) = accept
        .subprotocol
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    tracing::debug!(function = %slot.scope.name, connection = %id, %remote, "connection accepted");
    let metrics = &slot.scope.metrics;
    metrics.accepted.inc();
    metrics.open_connections.inc();
    slot.scope.logs.publish(|| LogEvent::Connect {
        connection: connection.id_str().to_owned(),
        remote: remote.to_string(),
    });
    host.tasks.spawn(session::run(
        host.clone(),
        slot.clone(),
        connection,
        upgrade,
        permit,
    ));
    response
}

/// What the handshake makes of a request it accepts, before on-connect runs.
#[doc(hidden)]
#[derive(Debug)]
pub struct RequestRead {
    /// The `Sec-WebSocket-Extensions` answer and the compression it sets up, if any.
    pub compression: Option<(HeaderValue, Compression)>,
    /// The client asked for a new session.
    pub new_session: bool,
    /// The session a resume names.
    pub resume: Option<String>,
    /// The query as on-connect would see it.
    pub query: Vec<(String, String)>,
    /// The subprotocols offered, in the client's order.
    pub subprotocols: Vec<String>,
    /// The URL carried a valid signature.
    pub signed: bool,
}

/// The steps of a handshake that read nothing but the request, in the order the handshake
/// takes them: the upgrade checks, the session parameters, the WebSocket key, the
/// compression offers, and the signed URL with the query on-connect is given. `Err` is the
/// status of the refusal. The connection caps, the function and the socket are left out.
#[doc(hidden)]
pub fn read_request(
    signing: &UrlSigning,
    name: &str,
    remote: SocketAddr,
    mut request: Request,
) -> Result<RequestRead, StatusCode> {
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return Err(StatusCode::UPGRADE_REQUIRED);
    }
    let asked = SessionAsk::of(&request);
    if asked == SessionAsk::Unsupported {
        return Err(StatusCode::BAD_REQUEST);
    }
    fastwebsockets::upgrade::upgrade(&mut request).map_err(|_| StatusCode::BAD_REQUEST)?;
    let compression = compression_answer(&request, 0);
    let (new_session, resume) = match asked {
        SessionAsk::Resume(session) => (false, Some(session)),
        other => (other == SessionAsk::New, None),
    };
    let offer = Offer::read(signing, name, remote, &request).map_err(|refused| refused.status())?;
    Ok(RequestRead {
        compression,
        new_session,
        resume,
        query: offer
            .query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        subprotocols: offer.subprotocols.iter().map(|p| p.to_string()).collect(),
        signed: offer.signed,
    })
}
