//! The public listener: accepts TCP connections, serves their HTTP (the WebSocket handshake),
//! and at shutdown drains the WebSocket sessions.
//!
//! The accept loop is ours rather than `axum::serve` so the host decides what a slow or
//! silent client costs: a client gets `handshake_timeout` to send its request headers, and
//! every socket has Nagle's algorithm off, because a connection already batches what it writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::StaticFiles;
use crate::host::Host;

/// Serves WebSocket functions on `listener` until `host.shutdown` is cancelled, then waits
/// (up to the shutdown timeout) for every connection to close and run its on-close.
/// Returns the number of connections still open when the wait gave up. `static_files` are
/// served to plain HTTP requests beside the functions (`--static`).
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    static_files: Option<Arc<StaticFiles>>,
) -> std::io::Result<usize> {
    let router = super::router(host.clone(), static_files);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(host.limits.handshake_timeout)
        .keep_alive(true);

    loop {
        let (stream, remote) = tokio::select! {
            () = host.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: wait for some to be released rather
                    // than spinning on the error.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            router.clone().oneshot(request)
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = host.shutdown.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Requests in progress finish; upgraded connections are sessions by now
                    // and close themselves.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%remote, "HTTP connection ended: {error}");
            }
        });
    }

    // Every connection is told to close; those still in their handshake see the shutdown
    // when they are accepted (see `front::handshake`).
    // A session in a cluster is handed over instead: its client is told to resume elsewhere
    // (see `session::detached`).
    for connection in host.connections.all() {
        match connection.session.as_deref() {
            Some(session) if session.hand_off() => connection.outgoing.nudge(),
            _ => {
                connection.start_close(1001, "server shutting down");
            }
        }
    }
    host.tasks.close();
    let drained = tokio::time::timeout(host.limits.shutdown_timeout, host.tasks.wait()).await;
    Ok(if drained.is_ok() {
        0
    } else {
        host.connections.len()
    })
}
