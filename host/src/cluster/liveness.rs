//! Heartbeats, and closing the connections of nodes that stopped sending them.
//!
//! Every node stamps itself in one sorted set with Redis's clock (so the nodes' own clocks do
//! not matter) and, in the same script, claims the nodes whose stamp is older than the node
//! timeout: removing a node from the set is atomic, so exactly one survivor claims each dead
//! node and runs on-close for its connections. A dead node is noticed within the node timeout
//! plus one heartbeat interval (a third of the timeout).

use std::collections::HashSet;
use std::sync::Arc;

use super::Member;
use super::{ClusterError, ClusterLink, keys};
use crate::connections::NodeId;

/// KEYS: the node set, the dead set, the time of the last heartbeat of any node.
/// ARGV: this node, the timeout in ms.
///
/// A node claimed as dead is listed in the dead set for a day, so it can tell "declared dead"
/// (its connections' on-close already ran elsewhere) from "Redis lost its data" (nothing
/// ran; mirror again). When no node at all could beat for half the timeout, Redis itself was
/// away (down, stalled, failing over): every listed node gets a fresh stamp instead of being
/// judged on a silence it could not help, and a node that really died is claimed one timeout
/// later. All three keys share a hash tag, so the script runs on one shard.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local timeout = tonumber(ARGV[2])
local last_any = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('SET', KEYS[3], now)
if now - last_any > timeout / 2 then
  for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    redis.call('ZADD', KEYS[1], now, node)
  end
end
local was_listed = redis.call('ZSCORE', KEYS[1], ARGV[1])
local declared_dead = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - timeout)
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('ZADD', KEYS[2], now, node)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 86400000)
return {was_listed and 1 or 0, declared_dead, dead, redis.call('ZRANGE', KEYS[1], 0, -1)}
";

struct Beat {
    was_listed: bool,
    declared_dead: bool,
    dead: Vec<NodeId>,
    live: HashSet<NodeId>,
}

impl ClusterLink {
    async fn heartbeat(&self) -> Result<Beat, ClusterError> {
        let mut redis = self.redis();
        let timeout_ms = self.settings.node_timeout.as_millis() as u64;
        let (was_listed, declared_dead, dead, live): (u8, u8, Vec<String>, Vec<String>) = self
            .bounded(
                redis::Script::new(HEARTBEAT)
                    .key(keys::NODES)
                    .key(keys::DEAD)
                    .key(keys::LAST_BEAT)
                    .arg(self.node.to_string())
                    .arg(timeout_ms)
                    .invoke_async(&mut redis),
            )
            .await?;
        Ok(Beat {
            was_listed: was_listed == 1,
            declared_dead: declared_dead == 1,
            dead: dead.iter().filter_map(|n| n.parse().ok()).collect(),
            live: live.iter().filter_map(|n| n.parse().ok()).collect(),
        })
    }

    /// Sends the first heartbeat, so the node is known before it serves anyone.
    pub async fn register(&self) -> Result<(), ClusterError> {
        let beat = self.heartbeat().await?;
        self.set_live_nodes(beat.live, &beat.dead);
        Ok(())
    }

    /// Leaves the cluster on a graceful shutdown, after every connection closed, so no other
    /// node mistakes it for a dead one.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.flush().await;
        let mut redis = self.redis();
        self.bounded(redis::AsyncCommands::zrem(
            &mut redis,
            keys::NODES,
            self.node.to_string(),
        ))
        .await
    }
}

/// Beats until shutdown and closes the connections of the nodes this node claims as dead.
pub async fn run(node: Arc<dyn Member>, link: Arc<ClusterLink>) {
    let interval = link.settings.node_timeout / 3;
    let mut moves = link.redis.moves();
    loop {
        tokio::select! {
            _ = node.leaving().cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let beat = match link.heartbeat().await {
            Ok(beat) => beat,
            Err(error) => {
                tracing::warn!("cluster heartbeat failed: {error}");
                continue;
            }
        };
        if beat.declared_dead {
            // Another node took this one for dead (Redis or this process stalled past the node
            // timeout) and has run on-close for its connections: keeping them open would leave
            // connections the rest of the cluster no longer knows.
            tracing::error!(node = %link.node, "this node was declared dead by the cluster after missing heartbeats; closing its connections");
            for connection in node.connections() {
                connection.start_close(1001, "the node lost contact with the cluster");
            }
        } else if !beat.was_listed || primary_moved(&mut moves) {
            // Redis lost its data (a restart without persistence), or a failover promoted a
            // replica that may lack the last writes: nobody ran on-close for this node's
            // connections, so they stay, and the directory learns them again.
            tracing::warn!(node = %link.node, "the cluster's data in Redis was lost or may be incomplete; writing this node's connections again");
            for connection in node.connections() {
                let _ = link.connection_opened(&connection, &connection.memberships());
            }
            let node = node.clone();
            tokio::spawn(async move { node.offer_functions().await });
        }
        link.set_live_nodes(beat.live, &beat.dead);
        for dead in beat.dead {
            if dead != link.node {
                tokio::spawn(reap(node.clone(), link.clone(), dead));
            }
        }
        link.keep_histories(&node.connections());
        match link.take_expired_sessions().await {
            Ok(expired) => {
                for orphan in expired {
                    node.close_orphan(orphan).await;
                }
            }
            Err(error) => tracing::warn!("cannot end the sessions of dead nodes: {error}"),
        }
    }
}

/// Whether a Sentinel failover moved the primary since the last look.
fn primary_moved(moves: &mut Option<tokio::sync::watch::Receiver<u64>>) -> bool {
    moves.as_mut().is_some_and(|moves| {
        let moved = moves.has_changed().unwrap_or(false);
        moves.mark_unchanged();
        moved
    })
}

async fn reap(member: Arc<dyn Member>, link: Arc<ClusterLink>, node: NodeId) {
    let orphans = match link.take_orphans(node).await {
        Ok(orphans) => orphans,
        Err(error) => {
            tracing::error!(%node, "could not take over the connections of a dead node: {error}");
            return;
        }
    };
    tracing::warn!(%node, connections = orphans.len(), "node declared dead; running on-close for its connections (its resumable sessions wait for a resume elsewhere)");
    for orphan in orphans {
        member.close_orphan(orphan).await;
    }
}
