//! The WebSocket front: `ws://HOST:PORT/<function>` for every deployed function.

mod admission;
mod assembler;
mod handshake;
mod liveness;
mod reader;
mod session;
mod writer;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use admission::{Admission, Permit, Refusal};

use crate::host::Host;

/// The router of the public listener.
pub fn router(host: Arc<Host>) -> Router {
    Router::new()
        .route("/{function}", get(handshake::upgrade))
        .with_state(host)
}
