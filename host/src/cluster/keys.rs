//! Every Redis key and channel the cluster uses, in one place.
//!
//! All start with `wsfn:` and carry a hash tag, so on a Redis Cluster each request and script
//! touches one shard: `{c}` for what the whole cluster shares (the node list, the function
//! list, the control channel), `{n:<node>}` for one node's connections and channel,
//! `{f:<function>}` for one function's directory and deployed versions, `{s:<id>}` for one
//! resumable session's journal, and one tag per group for the group's publish channel, so publishes spread over the shards. The key-value
//! state of functions lives under `wsfn:kv:`, which this module never touches.
//!
//! Function names cannot contain `:` or `/`, so a function name ends where the next
//! separator starts and group names (any bytes) can follow it.

use crate::connections::{ConnectionId, NodeId};

/// Sorted set: node id → time of its last heartbeat (Redis clock, ms).
pub const NODES: &str = "wsfn:{c}:nodes";
/// Sorted set: node id → when it was claimed as dead (Redis clock, ms). A node finds itself
/// here if it was only stalled, so it knows its connections were closed for it.
pub const DEAD: &str = "wsfn:{c}:dead";
/// String: when any node last beat (Redis clock, ms), to tell a silent node from a silent Redis.
pub const LAST_BEAT: &str = "wsfn:{c}:last-beat";
/// Sorted set: journaled sessions whose node died, waiting for a resume → when their resume
/// window ends (Redis clock, ms).
pub const PARKED: &str = "wsfn:{c}:parked";
/// Set: names of the functions deployed to the cluster.
pub const FUNCTIONS: &str = "wsfn:{c}:functions";
/// Channel: deploys, rollbacks and removals, heard by every node.
pub const CONTROL_CHANNEL: &str = "wsfn:{c}:control";

/// Channel: commands for the connections one node holds.
pub fn node_channel(node: NodeId) -> String {
    format!("wsfn:{{n:{node}}}:to")
}

/// Hash: id → function of each connection a node holds (what to clean up when it dies).
pub fn node_connections(node: NodeId) -> String {
    format!("wsfn:{{n:{node}}}:conns")
}

/// Hash: connection id → its record (JSON), for one function's open connections.
pub fn function_connections(function: &str) -> String {
    format!("wsfn:{{f:{function}}}:conns")
}

/// Hash: connection id → attachment bytes, for one function.
pub fn attachments(function: &str) -> String {
    format!("wsfn:{{f:{function}}}:att")
}

/// Set: ids of the members of one group of one function.
pub fn group(function: &str, group: &str) -> String {
    format!("wsfn:{{f:{function}}}:g:{group}")
}

/// Set: groups one connection is in.
pub fn connection_groups(function: &str, id: ConnectionId) -> String {
    format!("wsfn:{{f:{function}}}:cg:{id}")
}

/// Hash: the record of a resumable session in a cluster (see `journal`).
pub fn session(id: ConnectionId) -> String {
    format!("wsfn:{{s:{id}}}:rec")
}

/// Stream: the messages a resumable session holds for its client, by position.
pub fn session_log(id: ConnectionId) -> String {
    format!("wsfn:{{s:{id}}}:log")
}

/// Channel: what is appended to a session's journal, and its moves, heard by its home.
pub fn session_channel(id: ConnectionId) -> String {
    format!("wsfn:{{s:{id}}}:to")
}

/// The session whose channel `channel` is, if it is a session's channel.
pub fn session_of_channel(channel: &str) -> Option<ConnectionId> {
    channel
        .strip_prefix("wsfn:{s:")?
        .strip_suffix("}:to")?
        .parse()
        .ok()
}

/// Stream: the recent publishes to one group (as long as a session waits for a resume), so a
/// session taken over from a node that died gets what it missed. Same slot as the channel.
pub fn group_history(function: &str, group: &str) -> String {
    format!("wsfn:h:{{{function}:{group}}}")
}

/// String, expiring: set while a group has journaled sessions among its members (refreshed by
/// the nodes serving them); only then does a publish to the group go into its history.
pub fn group_sessions(function: &str, group: &str) -> String {
    format!("wsfn:hs:{{{function}:{group}}}")
}

/// Channel: the publishes to one group, heard by the nodes that hold members of it.
pub fn group_channel(function: &str, group: &str) -> String {
    format!("wsfn:p:{{{function}:{group}}}")
}

/// String: the version number a function serves.
pub fn current_version(function: &str) -> String {
    format!("wsfn:{{f:{function}}}:current")
}

/// Counter: the last version number handed out for a function.
pub fn last_version(function: &str) -> String {
    format!("wsfn:{{f:{function}}}:last-version")
}

/// Hash: version number → its metadata (JSON).
pub fn versions(function: &str) -> String {
    format!("wsfn:{{f:{function}}}:versions")
}

/// String: the component bytes of one version.
pub fn component(function: &str, version: u64) -> String {
    format!("wsfn:{{f:{function}}}:component:{version}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backplane::slot_of;

    fn slot(key: &str) -> Option<redis::cluster_routing::Slot> {
        slot_of(&redis::cmd("GET").arg(key).clone())
    }

    #[test]
    fn a_session_s_keys_and_channel_share_a_slot_and_the_channel_names_it() {
        let id = ConnectionId::journaled_on(NodeId::random());
        assert_eq!(slot(&session(id)), slot(&session_log(id)));
        assert_eq!(slot(&session(id)), slot(&session_channel(id)));
        assert_eq!(session_of_channel(&session_channel(id)), Some(id));
        assert_eq!(session_of_channel(&node_channel(NodeId::random())), None);
        assert_eq!(session_of_channel(&group_channel("f", "}:to")), None);
        assert_eq!(
            slot(&group_history("f", "g")),
            slot(&group_channel("f", "g"))
        );
    }

    #[test]
    fn one_function_s_keys_share_a_slot_whatever_its_groups_are_called() {
        let id = ConnectionId::random_on(NodeId::random());
        let function = "chat";
        let shared = slot(&function_connections(function));
        for key in [
            attachments(function),
            group(function, "room}{x"),
            connection_groups(function, id),
            current_version(function),
            last_version(function),
            versions(function),
            component(function, 7),
        ] {
            assert_eq!(slot(&key), shared, "{key}");
        }
    }

    #[test]
    fn the_cluster_s_own_keys_share_a_slot() {
        assert_eq!(slot(NODES), slot(DEAD));
        assert_eq!(slot(NODES), slot(LAST_BEAT));
        assert_eq!(slot(NODES), slot(FUNCTIONS));
    }

    #[test]
    fn group_channels_spread_over_slots() {
        let slots: std::collections::HashSet<_> = (0..64)
            .map(|n| slot(&group_channel("chat", &format!("room-{n}"))))
            .collect();
        assert!(slots.len() > 32, "{} distinct slots", slots.len());
    }
}
