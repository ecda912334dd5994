//! The WebSocket front: `ws://HOST:PORT/<function>` for every deployed function, and with
//! `--static` the files of a directory over plain HTTP.

mod admission;
mod assembler;
mod handshake;
mod liveness;
mod reader;
mod session;
pub mod static_files;
mod writer;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use admission::{Admission, Permit, Refusal};
pub use static_files::StaticFiles;

use crate::host::Host;

/// The router of the public listener. Static files, when given, are looked up before the
/// function routes for requests that are not WebSocket upgrades.
pub fn router(host: Arc<Host>, static_files: Option<Arc<StaticFiles>>) -> Router {
    let router = Router::new()
        .route("/{function}", get(handshake::upgrade))
        .fallback(nothing_here)
        .with_state(host);
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
