//! Write wsfn WebSocket functions in Rust.
//!
//! A function is a WebAssembly component that targets the `wsfn:function/function` world. This
//! crate hides the generated bindings behind one trait, [`Function`], and one macro,
//! [`export!`]: implement the handlers you need, export the type, build for `wasm32-wasip2`.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wsfn_guest::{ConnectRequest, Connection, Decision, Function, Group, Message};
//!
//! /// What a client sends: `{"text": "..."}`.
//! #[derive(Deserialize)]
//! struct Say {
//!     text: String,
//! }
//!
//! /// What the room receives.
//! #[derive(Serialize)]
//! struct Said<'a> {
//!     from: &'a str,
//!     text: &'a str,
//! }
//!
//! struct Lobby;
//!
//! impl Function for Lobby {
//!     // Runs before the handshake completes: refuse here and the client never gets a socket.
//!     fn on_connect(request: ConnectRequest) -> Decision {
//!         match request.query_param("name") {
//!             Some(name) if !name.is_empty() => Decision::accept()
//!                 .join("lobby")
//!                 // The host keeps the attachment with the connection, so later events
//!                 // (and on_close) can find out who this is without any state in the guest.
//!                 .attachment(name),
//!             _ => Decision::reject(400, "missing ?name="),
//!         }
//!     }
//!
//!     fn on_message(conn: Connection, message: Message) {
//!         let say: Say = match message.parse_json() {
//!             Ok(say) => say,
//!             Err(e) => {
//!                 // A malformed client message is the client's problem: tell it, don't trap.
//!                 let _ = conn.reply_json(&serde_json::json!({ "error": e.to_string() }));
//!                 return;
//!             }
//!         };
//!         let name = conn.attachment_text().ok().flatten().unwrap_or_default();
//!         let _ = Group::new("lobby").publish_json(&Said { from: &name, text: &say.text });
//!     }
//!
//!     fn on_close(conn: Connection, _code: u16, _reason: String) {
//!         // The connection has already left its groups, so this reaches everyone else.
//!         let name = conn.attachment_text().ok().flatten().unwrap_or_default();
//!         Group::new("lobby").publish(format!("{name} left"));
//!     }
//! }
//!
//! wsfn_guest::export!(Lobby);
//! ```
//!
//! # The model, and why the API looks like this
//!
//! - Handlers are associated functions, not methods: the host may run each event on a
//!   different instance and may replace an instance at any time, so nothing in `self` would
//!   survive. Keep what must last in the key-value store ([`kv`]) or in the connection's
//!   attachment.
//! - Events of one connection arrive one at a time and in order; different connections run
//!   concurrently on different instances, so use [`kv::Bucket::increment`] or
//!   [`kv::Bucket::compare_and_swap`] for shared counters and the like.
//! - Sends are queued by the host and never block on the peer.
//! - A panic traps the instance: the host discards it and the event is lost. Turn anything a
//!   client controls into an error reply or a rejection instead.
//!
//! Anything this crate does not wrap is in [`bindings`], generated from the WIT package.

mod connect;
mod connection;
mod error;
mod export;
pub mod kv;
mod message;

/// The raw bindings generated from the `wsfn:function` WIT package, for anything the wrappers
/// do not cover.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "wsfn:function/function",
        path: "../wit",
        // Functions live in other crates, so the generated export macro must be usable from
        // there; `export!` in this crate is the front door to it.
        pub_export_macro: true,
        default_bindings_module: "wsfn_guest::bindings",
        additional_derives: [PartialEq, Eq],
        generate_all,
    });
}

pub use bindings::wsfn::function::types::{ConnectionError, ConnectionId, Message};
pub use connect::{ConnectRequest, Decision};
pub use connection::{Connection, Group, send_many};
pub use error::Error;

/// A WebSocket function: implement the handlers you need and pass the type to [`export!`].
///
/// Every handler has a default, so an implementation states only what it cares about.
pub trait Function {
    /// Decides whether a client gets a WebSocket, before the HTTP 101 is sent.
    ///
    /// The default accepts every connection with no subprotocol, groups or attachment.
    fn on_connect(request: ConnectRequest) -> Decision {
        let _ = request;
        Decision::accept()
    }

    /// Handles one complete message from `conn`.
    ///
    /// The default ignores it, which suits functions whose clients only listen (the host's
    /// admin API can push to them).
    fn on_message(conn: Connection, message: Message) {
        let _ = (conn, message);
    }

    /// Runs exactly once for every accepted connection, after it has closed.
    ///
    /// `code` is the WebSocket close code (1005 when the peer sent none, 1006 when the
    /// connection was lost). `conn` can no longer be sent to and has left its groups, but its
    /// attachment can still be read. The default does nothing.
    fn on_close(conn: Connection, code: u16, reason: String) {
        let _ = (conn, code, reason);
    }

    /// Runs once after another handler of `conn` failed (trapped, ran past its deadline, ran
    /// out of memory or overflowed its stack), on another instance than the one that failed;
    /// `message` names the handler and the fault, for example
    /// "on-message trapped: wasm `unreachable` instruction executed".
    ///
    /// The connection is already being closed with 1011 (or was refused during on-connect),
    /// so it cannot be replied to, but its attachment can be read and others can be told.
    /// After a failed `on_message` it runs before `on_close`; after a failed `on_close`, last.
    /// If it fails itself, the host only logs that. The default does nothing.
    fn on_error(conn: Connection, message: String) {
        let _ = (conn, message);
    }
}

/// A signed URL for this function: a path and query that the host accepts only until
/// `ttl_ms` milliseconds from now and only with exactly these query pairs. Prefix it with the
/// host's `ws://` or `wss://` address. Fails when the host has no signing key.
///
/// A function that requires signed URLs sees `ConnectRequest::signed == true` for them.
pub fn signed_url(query: &[(&str, &str)], ttl_ms: u64) -> Result<String, String> {
    let pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    bindings::wsfn::function::signing::signed_url(&pairs, ttl_ms)
}

/// Exports a [`Function`] implementation as the component's handlers.
///
/// Use it once, at the top level of a `cdylib` crate:
///
/// ```ignore
/// struct Echo;
/// impl wsfn_guest::Function for Echo {
///     fn on_message(conn: wsfn_guest::Connection, msg: wsfn_guest::Message) {
///         conn.reply(msg)
///     }
/// }
/// wsfn_guest::export!(Echo);
/// ```
#[macro_export]
macro_rules! export {
    ($function:ty) => {
        // The generated export macro only takes a plain identifier, so name the adapter type
        // with an alias first. The const block keeps both out of the crate's namespace.
        const _: () = {
            type WsfnExport = $crate::__private::Export<$function>;
    $crate::bindings::export!(WsfnExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::Export;
}
