//! Every Redis key and channel the cluster uses, in one place.
//!
//! All start with `wsfn:`; the key-value state of functions lives under `wsfn:kv:`, which this
//! module never touches. Function names cannot contain `:` or `/`, so a function name ends
//! where the next separator starts and group names (any bytes) can follow it.

use crate::connections::{ConnectionId, NodeId};

/// Sorted set: node id → time of its last heartbeat (Redis clock, ms).
pub const NODES: &str = "wsfn:nodes";
/// Hash: connection id → its record (JSON), for every open connection of the cluster.
pub const CONNECTIONS: &str = "wsfn:conns";
/// Set: names of the functions deployed to the cluster.
pub const FUNCTIONS: &str = "wsfn:functions";
/// String per node claimed as dead (prefix + node id), read once by that node if it was only
/// stalled, so it knows its connections were closed for it.
pub const TOMBSTONE_PREFIX: &str = "wsfn:dead:";
/// Channel: group publishes, heard by every node.
pub const PUBLISH_CHANNEL: &str = "wsfn:publish";
/// Channel: deploys, rollbacks and removals, heard by every node.
pub const CONTROL_CHANNEL: &str = "wsfn:control";

/// Channel: commands for the connections one node holds.
pub fn node_channel(node: NodeId) -> String {
    format!("wsfn:to:{node}")
}

/// Set: ids of the connections a node holds (what to clean up when it dies).
pub fn node_connections(node: NodeId) -> String {
    format!("wsfn:node:{node}:conns")
}

/// Set: ids of one function's open connections.
pub fn function_connections(function: &str) -> String {
    format!("wsfn:fconns:{function}")
}

/// Hash: connection id → attachment bytes, for one function.
pub fn attachments(function: &str) -> String {
    format!("wsfn:att:{function}")
}

/// Set: ids of the members of one group of one function.
pub fn group(function: &str, group: &str) -> String {
    format!("wsfn:group:{function}:{group}")
}

/// Set: groups one connection is in.
pub fn connection_groups(function: &str, id: ConnectionId) -> String {
    format!("wsfn:cgroups:{function}:{id}")
}

/// String: the version number a function serves.
pub fn current_version(function: &str) -> String {
    format!("wsfn:fn:{function}:current")
}

/// Counter: the last version number handed out for a function.
pub fn last_version(function: &str) -> String {
    format!("wsfn:fn:{function}:last-version")
}

/// Hash: version number → its metadata (JSON).
pub fn versions(function: &str) -> String {
    format!("wsfn:fn:{function}:versions")
}

/// String: the component bytes of one version.
pub fn component(function: &str, version: u64) -> String {
    format!("wsfn:fn:{function}:component:{version}")
}
