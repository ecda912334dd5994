//! Write wsfn WebSocket functions in Rust.
//!
//! A function is a WebAssembly component that targets the `wsfn:function/function` world. This
//! crate hides the generated bindings behind one trait, [`Function`], and one macro,
//! [`export!`]: implement the handlers you need, export the type, build for `wasm32-wasip2`.
//!
//! Handlers of `impl Function for T` return `()` (and on-connect a [`Decision`]). Those of
//! `impl Function<E> for T` return `Result`s with the error type `E`, so `?` works in them: an
//! `Err` is logged, naming the handler, and the connection carries on (see [`Function`]).
//!
#![cfg_attr(feature = "json", doc = "```no_run")]
#![cfg_attr(not(feature = "json"), doc = "```ignore")]
//! use std::error::Error;
//!
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
//! // Every handler returns `Result<_, Box<dyn Error>>`, into which `?` converts any error.
//! impl Function<Box<dyn Error>> for Lobby {
//!     // Runs before the handshake completes: refuse here and the client never gets a socket.
//!     fn on_connect(request: ConnectRequest) -> Result<Decision, Box<dyn Error>> {
//!         Ok(match request.query_param("name") {
//!             Some(name) if !name.is_empty() => Decision::accept()
//!                 .join("lobby")
//!                 // The host keeps the attachment with the connection, so later events
//!                 // (and on_close) can find out who this is without any state in the guest.
//!                 .attachment(name),
//!             _ => Decision::reject(400, "missing ?name="),
//!         })
//!     }
//!
//!     fn on_message(conn: Connection, message: Message) -> Result<(), Box<dyn Error>> {
//!         let say: Say = match message.parse_json() {
//!             Ok(say) => say,
//!             // A malformed message is the client's mistake: tell it (`?` would only log it).
//!             Err(e) => {
//!                 conn.reply_json(&serde_json::json!({ "error": e.to_string() }))?;
//!                 return Ok(());
//!             }
//!         };
//!         // Anything else that fails is logged as `on-message failed: ...`, with the
//!         // connection, which stays open.
//!         let name = conn.attachment_text()?.unwrap_or_default();
//!         Group::new("lobby").publish_json(&Said { from: &name, text: &say.text })?;
//!         Ok(())
//!     }
//!
//!     fn on_close(conn: Connection, _code: u16, _reason: String) -> Result<(), Box<dyn Error>> {
//!         // The connection has already left its groups, so this reaches everyone else.
//!         let name = conn.attachment_text()?.unwrap_or_default();
//!         Group::new("lobby").publish(format!("{name} left"));
//!         Ok(())
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
//!   client controls into an error reply or a rejection instead, and return an `Err` (see
//!   [`Function`]) for failures of your own: it is logged and nothing else is lost.
//!
//! # Features
//!
//! `json` (on by default) adds the serde JSON helpers: `Message::json`,
//! `Message::parse_json`, `Connection::reply_json` and `send_json`, `Group::publish_json`,
//! `kv::Bucket::get_json` and `set_json`, the `attachment_json` family and the `Json` error
//! variants.
//! With `default-features = false` neither this crate nor the component uses serde
//! (wit-bindgen's code generator still builds it, for the compiler only).
//!
//! Anything this crate does not wrap is in [`bindings`], generated from the WIT package.

mod connect;
mod connection;
mod error;
mod export;
mod handler_error;
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
pub use handler_error::{HandlerError, NoError};

/// A WebSocket function: implement the handlers you need and pass the type to [`export!`].
///
/// Every handler has a default, so an implementation states only what it cares about.
///
/// # Handlers that return errors
///
/// `E` is the error type of the handlers. With the default, [`NoError`], they return `()`
/// (and on-connect a [`Decision`]):
///
/// ```
/// use wsfn_guest::{Connection, Function, Message};
///
/// struct Echo;
///
/// impl Function for Echo {
///     fn on_message(conn: Connection, message: Message) {
///         conn.reply(message)
///     }
/// }
/// ```
///
/// With any error type that implements `Display` they return `Result<(), E>` (and
/// `Result<Decision, E>`), so `?` works in them. `Box<dyn std::error::Error>` takes what `?`
/// meets most: every `std::error::Error` (this crate's errors among them), `String`, `&str`
/// and `anyhow::Error`. Code whose errors are `Box<dyn Error + Send + Sync>` can use that
/// type as `E` instead, and `anyhow::Error` works as `E` too:
///
/// ```
/// use std::error::Error;
///
/// use wsfn_guest::kv::Bucket;
/// use wsfn_guest::{Connection, Function, Message};
///
/// struct Counter;
///
/// impl Function<Box<dyn Error>> for Counter {
///     fn on_message(conn: Connection, message: Message) -> Result<(), Box<dyn Error>> {
///         let step: u64 = message.as_text().ok_or("expected text")?.trim().parse()?;
///         let total = Bucket::open_default()?.increment("total", step)?;
///         conn.send(total.to_string())?;
///         Ok(())
///     }
/// }
/// ```
///
/// What an `Err` does:
///
/// - From `on_message`, `on_close` or `on_error`: it is written to stderr as one line naming
///   the handler, `on-message failed: invalid digit found in string`, which the host logs
///   with the function and the connection. Nothing else happens: the connection stays open
///   and the next message is handled as usual. It is not a fault, so `on_error` does not run.
/// - From `on_connect`: it is logged the same way (`on-connect failed: ...`) and the client
///   is refused with HTTP 500 and the body "the function failed to accept the connection",
///   the answer it gets when on-connect traps. The error text stays in the log.
///
/// Only a trap, a deadline or an exhausted memory or stack is a fault (see
/// [`on_error`](Self::on_error)).
pub trait Function<E: HandlerError = NoError> {
    /// Decides whether a client gets a WebSocket, before the HTTP 101 is sent.
    ///
    /// The default accepts every connection with no subprotocol, groups or attachment.
    fn on_connect(request: ConnectRequest) -> E::Return<Decision> {
        let _ = request;
        E::success(Decision::accept())
    }

    /// Handles one complete message from `conn`.
    ///
    /// The default ignores it, which suits functions whose clients only listen (the host's
    /// admin API can push to them).
    fn on_message(conn: Connection, message: Message) -> E::Return<()> {
        let _ = (conn, message);
        E::success(())
    }

    /// Runs exactly once for every accepted connection, after it has closed.
    ///
    /// `code` is the WebSocket close code (1005 when the peer sent none, 1006 when the
    /// connection was lost). `conn` can no longer be sent to and has left its groups, but its
    /// attachment can still be read. The default does nothing.
    fn on_close(conn: Connection, code: u16, reason: String) -> E::Return<()> {
        let _ = (conn, code, reason);
        E::success(())
    }

    /// Runs once after another handler of `conn` failed (trapped, ran past its deadline, ran
    /// out of memory or overflowed its stack), on another instance than the one that failed;
    /// `message` names the handler and the fault, for example
    /// "on-message trapped: wasm `unreachable` instruction executed".
    ///
    /// The connection is already being closed with 1011 (or was refused during on-connect),
    /// so it cannot be replied to, but its attachment can be read and others can be told.
    /// After a failed `on_message` it runs before `on_close`; after a failed `on_close`, last.
    /// If it fails itself, the host only logs that. An `Err` returned by a handler is not such
    /// a failure and does not lead here. The default does nothing.
    fn on_error(conn: Connection, message: String) -> E::Return<()> {
        let _ = (conn, message);
        E::success(())
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

/// Exports a [`Function`] implementation, plain or with an error type, as the component's
/// handlers.
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
        // The const block keeps the adapter type and its impls out of the crate's namespace.
        // Each impl hands the event to the SDK with `_` for the handlers' error type, which
        // the compiler infers from the one `Function<E>` impl of `$function`.
        const _: () = {
            // Names the exported impls; it has no values.
            enum WsfnExport {}

            impl $crate::__private::ConnectGuest for WsfnExport {
                fn on_connect(request: $crate::ConnectRequest) -> $crate::__private::RawDecision {
                    $crate::__private::on_connect::<$function, _>(request)
                }
            }

            impl $crate::__private::message::Guest for WsfnExport {
                fn on_message(id: $crate::ConnectionId, message: $crate::Message) {
                    $crate::__private::on_message::<$function, _>(id, message)
                }
            }

            impl $crate::__private::close::Guest for WsfnExport {
                fn on_close(id: $crate::ConnectionId, code: u16, reason: ::std::string::String) {
                    $crate::__private::on_close::<$function, _>(id, code, reason)
                }
            }

            impl $crate::__private::error::Guest for WsfnExport {
                fn on_error(id: $crate::ConnectionId, message: ::std::string::String) {
                    $crate::__private::on_error::<$function, _>(id, message)
                }
            }

    $crate::bindings::export!(WsfnExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}
