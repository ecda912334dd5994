//! wsfn-host: a host for WebSocket serverless functions written as WebAssembly components.
//!
//! Data flows one way: socket → [`front`] (accept loop, handshake, session) → [`runtime`] (a
//! guest instance runs the event) → [`imports`] (what the guest may call) → [`reach`] (where
//! a connection is) → [`connections`] (the table, groups, each connection's outgoing side and
//! state) → socket. The WebSocket protocol's rules live in [`protocol`], apart from any I/O.
//! [`functions`] changes which code serves a function (deploy, rollback, restore), and
//! [`host`] holds the parts together for the front and the [`admin`] API. Key-value state sits
//! in [`state`] behind one trait so backends can be swapped. With Redis, [`cluster`] routes
//! sends, closes and group publishes to the node holding each connection, and keeps deploys
//! and the connection directory cluster-wide.
//!
//! [`launch`] starts a whole host (store, cluster, functions, both listeners) from settings
//! that [`options`] reads from the command line, `WSFN_*` variables and the config file.

pub mod admin;
pub mod backplane;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod front;
pub mod functions;
pub mod host;
pub mod imports;
pub mod launch;
pub mod observe;
pub mod options;
pub mod protocol;
pub mod reach;
pub mod runtime;
pub mod scaffold;
pub mod signing;
pub mod state;
pub mod stats;

/// Entry points for the fuzz targets (`fuzz/`) into steps the host otherwise only takes
/// inside its request handlers. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::front::{RequestRead, read_request};
}
