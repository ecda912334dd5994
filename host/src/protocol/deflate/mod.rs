//! permessage-deflate (RFC 7692): negotiating it in the handshake, and compressing and
//! inflating messages with it.
//!
//! The host always asks for no context takeover in both directions (§7.1.1), so no
//! compression state outlives a message: compressors and decompressors come from a pool for
//! one message and go back, and an idle connection holds none. A fan-out compresses a message
//! once for every member that negotiated the same parameters.

mod codec;
mod negotiation;

pub use codec::{InflateError, Inflater, deflate};
pub use negotiation::{Deflate, negotiate};
