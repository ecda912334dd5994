//! The glue between the generated `Guest` traits and [`Function`].

use core::marker::PhantomData;

use crate::bindings::exports::wsfn::function::{close, error, message, websocket_connection};
use crate::{ConnectRequest, Connection, Function, Message};

/// Implements the three exported interfaces for any [`Function`].
///
/// It is generic so the trait impls can live here, next to the bindings, instead of being
/// generated into every function crate by [`export!`](crate::export!).
pub struct Export<F>(PhantomData<F>);

impl<F: Function> websocket_connection::Guest for Export<F> {
    fn on_connect(request: ConnectRequest) -> websocket_connection::Decision {
        F::on_connect(request).into_raw()
    }
}

impl<F: Function> message::Guest for Export<F> {
    fn on_message(id: String, message: Message) {
        F::on_message(Connection::current(id), message)
    }
}

impl<F: Function> close::Guest for Export<F> {
    fn on_close(id: String, code: u16, reason: String) {
        // Not the "current" connection: it is gone, so nothing can be replied to it.
        F::on_close(Connection::from_id(id), code, reason)
    }
}

impl<F: Function> error::Guest for Export<F> {
    fn on_error(id: String, message: String) {
        F::on_error(Connection::from_id(id), message)
    }
}
