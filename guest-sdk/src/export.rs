//! The glue between the generated `Guest` traits and [`Function`]: one function per handler,
//! which [`export!`](crate::export!) calls from the `Guest` impls it writes.
//!
//! The impls themselves are written by the macro, in the function's crate, because only there
//! can the compiler infer which `Function<E>` the exported type implements (`_` in
//! `on_message::<T, _>`); a generic impl here would leave `E` unconstrained.

use crate::bindings::exports::wsfn::function::websocket_connection;
use crate::{ConnectRequest, Connection, Function, HandlerError, Message};

pub use crate::bindings::exports::wsfn::function::{close, error, message};
pub use websocket_connection::{Decision as RawDecision, Guest as ConnectGuest};

pub fn on_connect<F: Function<E>, E: HandlerError>(request: ConnectRequest) -> RawDecision {
    E::decision(F::on_connect(request)).into_raw()
}

pub fn on_message<F: Function<E>, E: HandlerError>(id: String, message: Message) {
    E::finish(
        "on-message",
        F::on_message(Connection::current(id), message),
    )
}

pub fn on_close<F: Function<E>, E: HandlerError>(id: String, code: u16, reason: String) {
    // Not the "current" connection: it is gone, so nothing can be replied to it.
    E::finish(
        "on-close",
        F::on_close(Connection::from_id(id), code, reason),
    )
}

pub fn on_error<F: Function<E>, E: HandlerError>(id: String, message: String) {
    E::finish("on-error", F::on_error(Connection::from_id(id), message))
}
