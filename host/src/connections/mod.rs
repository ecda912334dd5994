//! The connection table: ids, each connection's outgoing side and state, groups and
//! attachments.
//!
//! Everything the host knows about a connection lives here, outside any guest instance, so an
//! idle connection costs a small record and its socket, and a hot swap or a recycled instance
//! loses nothing.

mod connection;
mod groups;
mod id;
mod journal;
mod lifecycle;
mod outbound;
pub mod rules;
mod scope;
mod session;
mod table;

pub use connection::Connection;
pub use groups::Groups;
pub use id::{ConnectionId, HexId, InvalidConnectionId, NodeId};
pub use journal::{PublishMark, SessionJournal};
pub use lifecycle::{HostClose, Phase, PhaseKind};
pub use outbound::{
    Compression, Flushed, Outbound, Outgoing, Push, QueueError, ResumeError, SharedMessage,
};
pub use scope::FunctionScope;
pub use session::{Handover, HeldPublish, Session};
pub use table::ConnectionTable;
