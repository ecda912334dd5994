//! The connection table: ids, outbound queues, groups and attachments.
//!
//! Everything the host knows about a connection lives here, outside any guest instance, so an
//! idle connection costs a small record and its socket, and a hot swap or a recycled instance
//! loses nothing.

mod connection;
mod groups;
mod id;
mod outbound;
mod table;
pub mod wire;

pub use connection::Connection;
pub use groups::Groups;
pub use id::{ConnectionId, HexId, InvalidConnectionId, NodeId};
pub use outbound::{Outbound, OutboundQueue, QueueError};
pub use table::ConnectionTable;
