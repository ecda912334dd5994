//! Runs the public listener until shutdown, then drains the connections.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::front;
use crate::host::Host;

/// Serves WebSocket functions on `listener` until `host.shutdown` is cancelled, then waits
/// (up to the shutdown timeout) for every connection to close and run its on-close.
/// Returns the number of connections still open when the wait gave up.
pub async fn serve(host: Arc<Host>, listener: TcpListener) -> std::io::Result<usize> {
    let app = front::router(host.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = host.shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    host.tasks.close();
    let drained = tokio::time::timeout(host.limits.shutdown_timeout, host.tasks.wait()).await;
    Ok(if drained.is_ok() {
        0
    } else {
        host.connections.len()
    })
}
