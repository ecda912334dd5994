//! The WebSocket front: the public listener, `ws://HOST:PORT/<function>` for every deployed
//! function, and with `--static` the files of a directory over plain HTTP.
//!
//! A connection passes through here in order: the accept loop (`server`), the handshake and
//! on-connect (`handshake`, with the caps of `admission`), then its session (`session`), which
//! reads frames (`reader`), keeps the peer alive (`liveness`) and writes through the
//! connection's outgoing side.

mod admission;
mod claim;
mod handshake;
mod liveness;
mod reader;
mod reading;
mod resume;
mod server;
mod session;
pub mod static_files;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use admission::{Admission, Permit, Refusal};
#[doc(hidden)]
pub use handshake::{RequestRead, read_request};
pub use server::serve;
pub use static_files::StaticFiles;

use crate::host::Host;

/// What the handlers of the public listener share.
#[derive(Clone)]
pub struct Front {
    pub host: Arc<Host>,
    /// Caps on connections in all and per client address.
    pub admission: Arc<Admission>,
}

/// The router of the public listener. Static files, when given, are looked up before the
/// function routes for requests that are not WebSocket upgrades.
pub fn router(host: Arc<Host>, static_files: Option<Arc<StaticFiles>>) -> Router {
    let admission = Arc::new(Admission::new(
        host.limits.max_connections,
        host.limits.max_connections_per_ip,
    ));
    let router = Router::new()
        .route("/{function}", get(handshake::upgrade))
        .fallback(nothing_here)
        .with_state(Front { host, admission });
    match static_files {
        Some(files) => router.layer(axum::middleware::from_fn_with_state(
            files,
            static_files::serve_or_pass,
        )),
        None => router,
    }
}

/// A path that is neither a function nor a file.
async fn nothing_here(uri: Uri) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let message = format!("nothing at `{}`", uri.path());
    (StatusCode::NOT_FOUND, headers, message).into_response()
}
