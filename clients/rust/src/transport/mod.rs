//! The client side of the WebSocket protocol (RFC 6455) with permessage-deflate (RFC 7692),
//! over a plain TCP stream.
//!
//! The crate speaks WebSocket itself rather than through a general library because it is also
//! the load generator's client: the one copy a message needs on each side, frames written in
//! batches and flushed once, and compression that costs an idle connection nothing are easier
//! to have when the whole path is ours. The layout follows the protocol: [`url`] and
//! [`handshake`] open a connection, [`frame`] and [`mask`] are the wire format, [`deflate`]
//! the extension, and [`connection`] puts them together into a socket that reads messages and
//! writes frames.

mod connection;
mod deflate;
mod error;
mod frame;
mod handshake;
mod mask;
mod url;

pub(crate) use connection::{CloseFrame, Data, Incoming, Settings, WebSocket};
pub(crate) use error::ReadError;
pub(crate) use handshake::HandshakeError;
pub(crate) use url::WsUrl;
