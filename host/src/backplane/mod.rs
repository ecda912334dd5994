//! The Redis deployment the nodes share, whatever its shape: one server, a Redis Cluster, or a
//! primary watched by Sentinels.
//!
//! The cluster's directory and channels and the key-value store talk to Redis only through
//! this module: one connection type that sends each command where its key lives and follows
//! the deployment as it changes, one subscriber for channels, and the rule that keeps a
//! pipeline to one slot.

mod address;
mod connection;
mod slots;
mod subscriber;

pub use address::{Address, AddressError};
pub use connection::{CONNECT_TIMEOUT, ConnectError, RedisConnection, Shape};
pub use slots::{pipelines, slot_of};
pub use subscriber::{Heard, Subscriber};
