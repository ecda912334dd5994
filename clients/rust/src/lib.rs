//! A WebSocket client for wsfn functions that survives dropped sockets.
//!
//! By default it asks the host for a *resumable session* (the session protocol of the
//! repository's README, version 1): when a socket drops, the client reconnects with backoff
//! and resumes the same connection, so every message in either direction arrives exactly once
//! and in order. The application sees messages and a few events saying what happened to
//! continuity; see [`Event`]. The crate speaks WebSocket itself (`ws://` only) and offers
//! permessage-deflate compression unless [`Options::deflate`] turns it off.
//!
//! ```no_run
//! use wsfn_client::{Event, Options, Session};
//!
//! # async fn example() -> Result<(), wsfn_client::Error> {
//! let mut session = Session::connect(Options::new("ws://127.0.0.1:8080/counter")).await?;
//! session.send_text("increment")?;
//! while let Some(event) = session.next_event().await {
//!     match event {
//!         Event::Text(text) => {
//!             println!("the counter is at {text}");
//!             break;
//!         }
//!         Event::Resumed { .. } => {}
//!         Event::Reset { .. } => println!("continuity lost: state may have to be fetched again"),
//!         Event::Closed { code, reason } => println!("closed: {code} {reason}"),
//!         _ => {}
//!     }
//! }
//! session.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! The layout: [`Session`] and [`Sender`] are the application's handles; a background task
//! (`driver`) owns the socket, `wire` reads and writes the session protocol's frames, `outbox`
//! keeps sent messages until the host confirms them, `endpoint` picks the URL of each attempt,
//! and `transport` is the WebSocket protocol itself (RFC 6455, with permessage-deflate).

mod driver;
mod endpoint;
mod error;
mod event;
mod options;
mod outbox;
mod reconnect;
mod session;
mod socket;
mod traffic;
mod transport;
mod wire;

pub use bytes::Bytes;
pub use error::Error;
pub use event::{Event, Refusal, ResetReason};
pub use options::Options;
pub use reconnect::Reconnect;
pub use session::{Sender, Session};
pub use traffic::Traffic;
