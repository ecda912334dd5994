//! A group publish, on one node or across the cluster.

use super::ClusterLink;
use super::codec::GroupPublish;
use crate::connections::FunctionScope;
use crate::connections::{ConnectionId, Outbound};

/// Delivers `frame` to the members of `group` held here and, in a cluster, tells every other
/// node to deliver it to theirs (queued in order on the node's outbox; the event does not wait
/// for Redis). Returns how many members were sent to: those reached here plus the directory's
/// count of members elsewhere, which may be up to a second old (`except` is not subtracted
/// when it is remote; the count is what callers are told, not a delivery receipt). When Redis
/// cannot be reached the publish reaches this node's members only, and says so in the log.
pub async fn publish(
    scope: &FunctionScope,
    cluster: Option<&ClusterLink>,
    group: &str,
    frame: Outbound,
    except: Option<ConnectionId>,
) -> u32 {
    // Journaled sessions among the members (in a cluster) take it from the group's channel,
    // with its id in the group's history, like those on other nodes (and are counted here).
    let delivered = scope.groups.publish(group, &frame, except, None);
    let Some(cluster) = cluster else {
        return delivered;
    };
    let local_members = scope.groups.member_count(group);
    let publish = GroupPublish {
        origin: cluster.node,
        function: scope.name.to_string(),
        group: group.to_owned(),
        except,
        frame,
    };
    if let Err(error) = cluster.publish_to_group(&publish) {
        tracing::warn!(function = %scope.name, "a publish reached this node only: {error}");
        return delivered;
    }
    match cluster.group_size(&scope.name, group).await {
        Ok(members) => {
            let remote = members.saturating_sub(local_members);
            delivered.saturating_add(u32::try_from(remote).unwrap_or(u32::MAX))
        }
        Err(error) => {
            tracing::warn!(function = %scope.name, "a publish counts this node's members only: {error}");
            delivered
        }
    }
}
