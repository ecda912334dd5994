//! The cluster-wide directory of connections, groups and attachments, mirrored into Redis.
//!
//! Each node writes only about the connections it holds, through its outbox, so the mirror
//! follows local state in order. Reads serve what a node cannot know locally: the members of a
//! group on every node, another node's connection, the connection list for the admin API.

use std::time::{Duration, Instant, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::keys;
use super::outbox::OutboxFull;
use super::{ClusterError, ClusterLink};
use crate::connections::{Connection, ConnectionId, NodeId};

/// What the cluster knows about one open connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: String,
    pub function: String,
    pub node: String,
    pub remote: String,
    pub connected_at_ms: u64,
}

impl ConnectionRecord {
    fn of(connection: &Connection, node: NodeId) -> Self {
        Self {
            id: connection.id.to_string(),
            function: connection.scope.name.to_string(),
            node: node.to_string(),
            remote: connection.remote.to_string(),
            connected_at_ms: connection
                .connected_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

/// A connection of a dead node, taken out of the directory so it can be closed for it.
#[derive(Debug)]
pub struct Orphan {
    pub record: ConnectionRecord,
    pub attachment: Option<Vec<u8>>,
    /// Why it ended, for its on-close (with 1006).
    pub reason: &'static str,
}

/// What a dead node's connection ended with.
pub const NODE_STOPPED: &str = "the node holding the connection stopped";
/// What a session of a dead node ended with, when no resume came within the window.
pub const NOT_RESUMED: &str = "the session was not resumed within the resume window";

/// How old a group's member count may be when a publish reports it. A publish is delivered to
/// every member whatever the count says; only the number returned to the caller may lag.
pub const GROUP_SIZE_MAX_AGE: Duration = Duration::from_secs(1);
/// Most group counts remembered before old ones are dropped.
const MAX_CACHED_GROUP_SIZES: usize = 100_000;

/// KEYS: the parked list. ARGV: a session, its window in ms (from Redis's clock now).
const LIST_PARKED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
";

/// KEYS: the parked list. ARGV: most to take. Removes and returns the sessions whose window
/// ended: one script, so each is taken by exactly one node.
const TAKE_EXPIRED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(expired) do redis.call('ZREM', KEYS[1], id) end
return expired
";

/// Most expired sessions one heartbeat ends.
const EXPIRED_AT_ONCE: usize = 256;

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

impl ClusterLink {
    /// Mirrors a newly accepted connection with the groups it joined on connect.
    pub fn connection_opened(
        &self,
        connection: &Connection,
        groups: &[String],
    ) -> Result<(), OutboxFull> {
        let record = ConnectionRecord::of(connection, self.node);
        let function = record.function.as_str();
        let id = connection.id;
        let json = serde_json::to_string(&record).unwrap_or_default();
        let mut commands = vec![
            cmd("HSET")
                .arg(keys::node_connections(self.node))
                .arg(&record.id)
                .arg(function)
                .clone(),
            cmd("HSET")
                .arg(keys::function_connections(function))
                .arg(&record.id)
                .arg(json)
                .clone(),
        ];
        if let Some(attachment) = connection.attachment() {
            commands.push(
                cmd("HSET")
                    .arg(keys::attachments(function))
                    .arg(&record.id)
                    .arg(attachment)
                    .clone(),
            );
        }
        for group in groups {
            commands.extend(join_commands(function, id, group));
        }
        let written = self.outbox.commands(commands);
        for group in groups {
            if connection.journal().is_some() {
                self.queue_stamp(id, function, group);
            }
            self.watch_group(&connection.scope, group);
        }
        written
    }

    /// Removes a closed connection (which has already left `groups`) from the directory.
    pub fn connection_closed(&self, connection: &Connection, groups: &[Box<str>]) {
        let function = &*connection.scope.name;
        let id = connection.id;
        let text = id.to_string();
        let mut commands: Vec<redis::Cmd> = groups
            .iter()
            .map(|g| cmd("SREM").arg(keys::group(function, g)).arg(&text).clone())
            .collect();
        commands.extend([
            cmd("DEL")
                .arg(keys::connection_groups(function, id))
                .clone(),
            cmd("HDEL")
                .arg(keys::function_connections(function))
                .arg(&text)
                .clone(),
            cmd("HDEL")
                .arg(keys::attachments(function))
                .arg(&text)
                .clone(),
            cmd("HDEL")
                .arg(keys::node_connections(self.node))
                .arg(&text)
                .clone(),
        ]);
        if self.outbox.commands(commands).is_err() {
            tracing::warn!(connection = %id, "the cluster link is backed up; the closed connection stays listed until Redis catches up or its node is declared dead");
        }
        for group in groups {
            self.watch_group(&connection.scope, group);
        }
    }

    /// Mirrors a journaled session this node took over from another: listed under this node,
    /// its record naming it. Its groups and attachment are the function's, and stay.
    pub fn session_moved_here(&self, connection: &Connection) -> Result<(), OutboxFull> {
        let record = ConnectionRecord::of(connection, self.node);
        let json = serde_json::to_string(&record).unwrap_or_default();
        self.outbox.commands(vec![
            cmd("HSET")
                .arg(keys::node_connections(self.node))
                .arg(&record.id)
                .arg(&record.function)
                .clone(),
            cmd("HSET")
                .arg(keys::function_connections(&record.function))
                .arg(&record.id)
                .arg(json)
                .clone(),
        ])
    }

    /// A journaled session this node held moved to another node (which has already written
    /// its record): no longer listed under this node. It has left `groups` here.
    pub fn session_moved_away(&self, connection: &Connection, groups: &[Box<str>]) {
        let written = self.outbox.commands(vec![
            cmd("HDEL")
                .arg(keys::node_connections(self.node))
                .arg(connection.id.to_string())
                .clone(),
        ]);
        if written.is_err() {
            tracing::warn!(connection = %connection.id, "the cluster link is backed up; a session that moved stays listed under this node until Redis catches up");
        }
        for group in groups {
            self.watch_group(&connection.scope, group);
        }
        self.watch_session(connection.id);
    }

    /// The groups the directory lists connection `id` of `function` in.
    pub async fn connection_groups(
        &self,
        function: &str,
        id: ConnectionId,
    ) -> Result<Vec<String>, ClusterError> {
        let mut redis = self.redis();
        self.bounded(redis.smembers(keys::connection_groups(function, id)))
            .await
    }

    /// Leaves session `id`, which this node served, waiting with no node for a resume on any
    /// (this node is shutting down), listed until its resume window ends; its function handled
    /// `handled` of the client's messages.
    pub async fn park_here(&self, id: ConnectionId, handled: u64) -> Result<(), ClusterError> {
        crate::connections::SessionJournal::handled(self, id, handled);
        self.flush().await;
        if self.park_session(id, self.node).await? {
            self.list_parked(id).await?;
        }
        Ok(())
    }

    /// Lists parked session `id` until its resume window ends.
    async fn list_parked(&self, id: ConnectionId) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        let window = self.settings.session_window.as_millis() as u64;
        let list = redis::cmd("EVAL")
            .arg(LIST_PARKED)
            .arg(1)
            .arg(keys::PARKED)
            .arg(id.to_string())
            .arg(window)
            .clone();
        let () = self.bounded(list.query_async(&mut redis)).await?;
        Ok(())
    }

    /// Takes the parked sessions whose resume window ended (each is taken by one node) and
    /// ends those no resume took: their on-close runs here.
    pub async fn take_expired_sessions(&self) -> Result<Vec<Orphan>, ClusterError> {
        let mut redis = self.redis();
        let take = redis::cmd("EVAL")
            .arg(TAKE_EXPIRED)
            .arg(1)
            .arg(keys::PARKED)
            .arg(EXPIRED_AT_ONCE)
            .clone();
        let expired: Vec<String> = self.bounded(take.query_async(&mut redis)).await?;
        let mut orphans = Vec::new();
        for text in expired {
            let Ok(id) = text.parse::<ConnectionId>() else {
                continue;
            };
            let function: Option<String> =
                self.bounded(redis.hget(keys::session(id), "fn")).await?;
            let Some(function) = function else {
                continue;
            };
            if self.release_session(id, None).await?
                && let Some(orphan) = self.take_orphan(&text, &function, NOT_RESUMED).await?
            {
                orphans.push(orphan);
            }
        }
        Ok(orphans)
    }

    /// Mirrors a join of a connection this node holds.
    pub fn joined(&self, connection: &Connection, group: &str) -> Result<(), OutboxFull> {
        let written =
            self.outbox
                .commands(join_commands(&connection.scope.name, connection.id, group));
        if connection.journal().is_some() {
            self.queue_stamp(connection.id, &connection.scope.name, group);
        }
        self.watch_group(&connection.scope, group);
        written
    }

    /// Mirrors a leave of a connection this node holds.
    pub fn left(&self, connection: &Connection, group: &str) -> Result<(), OutboxFull> {
        let function = &*connection.scope.name;
        let mut commands = vec![
            cmd("SREM")
                .arg(keys::group(function, group))
                .arg(connection.id.to_string())
                .clone(),
            cmd("SREM")
                .arg(keys::connection_groups(function, connection.id))
                .arg(group)
                .clone(),
        ];
        if connection.journal().is_some() {
            commands.push(Self::unstamp_command(connection.id, group));
        }
        let written = self.outbox.commands(commands);
        self.watch_group(&connection.scope, group);
        written
    }

    pub fn attachment_set(
        &self,
        function: &str,
        id: ConnectionId,
        value: Option<&[u8]>,
    ) -> Result<(), OutboxFull> {
        let command = match value {
            Some(value) => cmd("HSET")
                .arg(keys::attachments(function))
                .arg(id.to_string())
                .arg(value)
                .clone(),
            None => cmd("HDEL")
                .arg(keys::attachments(function))
                .arg(id.to_string())
                .clone(),
        };
        self.outbox.commands(vec![command])
    }

    /// The members of a group on every node.
    pub async fn group_members(
        &self,
        function: &str,
        group: &str,
    ) -> Result<Vec<String>, ClusterError> {
        let mut redis = self.redis();
        self.bounded(redis.smembers(keys::group(function, group)))
            .await
    }

    /// How many members a group has on every node, as the directory counts them. Read from
    /// Redis at most once per [`GROUP_SIZE_MAX_AGE`] per group; in between, the last count.
    pub async fn group_size(&self, function: &str, group: &str) -> Result<usize, ClusterError> {
        let key = keys::group(function, group);
        if let Some(entry) = self.group_sizes.get(&key)
            && entry.0.elapsed() < GROUP_SIZE_MAX_AGE
        {
            return Ok(entry.1);
        }
        let mut redis = self.redis();
        let size: usize = self.bounded(redis.scard(&key)).await?;
        if self.group_sizes.len() >= MAX_CACHED_GROUP_SIZES {
            self.group_sizes
                .retain(|_, (read, _)| read.elapsed() < GROUP_SIZE_MAX_AGE);
        }
        self.group_sizes.insert(key, (Instant::now(), size));
        Ok(size)
    }

    /// The record of an open connection anywhere in the cluster; when the asker's function is
    /// not given, the connection's node says which function it belongs to.
    pub async fn record(
        &self,
        id: ConnectionId,
        function: Option<&str>,
    ) -> Result<Option<ConnectionRecord>, ClusterError> {
        let mut redis = self.redis();
        let text = id.to_string();
        let function = match function {
            Some(function) => function.to_owned(),
            None => {
                // A journaled session may have moved from the node its id names; its journal
                // knows its function wherever it is.
                let listed_under = if id.is_journaled() {
                    redis.hget(keys::session(id), "fn")
                } else {
                    redis.hget(keys::node_connections(id.node()), &text)
                };
                let found: Option<String> = self.bounded(listed_under).await?;
                match found {
                    Some(function) => function,
                    None => return Ok(None),
                }
            }
        };
        let json: Option<String> = self
            .bounded(redis.hget(keys::function_connections(&function), &text))
            .await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| ClusterError::Malformed(e.to_string())))
            .transpose()
    }

    /// The attachment of a connection of `function` held by any node; `None` when no such
    /// connection is open.
    pub async fn attachment(
        &self,
        function: &str,
        id: ConnectionId,
    ) -> Result<Option<Option<Vec<u8>>>, ClusterError> {
        let mut redis = self.redis();
        let (exists, attachment): (bool, Option<Vec<u8>>) = self
            .bounded(
                redis::pipe()
                    .cmd("HEXISTS")
                    .arg(keys::function_connections(function))
                    .arg(id.to_string())
                    .cmd("HGET")
                    .arg(keys::attachments(function))
                    .arg(id.to_string())
                    .query_async(&mut redis),
            )
            .await?;
        Ok(exists.then_some(attachment))
    }

    /// Every open connection of a function in the cluster, with its groups.
    pub async fn connections_of(
        &self,
        function: &str,
    ) -> Result<Vec<(ConnectionRecord, Vec<String>)>, ClusterError> {
        let mut redis = self.redis();
        let records: Vec<(String, String)> = self
            .bounded(redis.hgetall(keys::function_connections(function)))
            .await?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &records {
            let id: ConnectionId = id
                .parse()
                .map_err(|_| ClusterError::Malformed(format!("connection id `{id}`")))?;
            pipe.cmd("SMEMBERS")
                .arg(keys::connection_groups(function, id));
        }
        let groups: Vec<Vec<String>> = self.bounded(pipe.query_async(&mut redis)).await?;
        Ok(records
            .into_iter()
            .zip(groups)
            .filter_map(|((_, record), groups)| {
                let record = serde_json::from_str(&record).ok()?;
                Some((record, groups))
            })
            .collect())
    }

    /// Takes every connection of a dead node out of the directory (its groups, its record,
    /// its attachment), returning them so on-close can run for each.
    pub async fn take_orphans(&self, node: NodeId) -> Result<Vec<Orphan>, ClusterError> {
        let mut redis = self.redis();
        let held: Vec<(String, String)> = self
            .bounded(redis.hgetall(keys::node_connections(node)))
            .await?;
        let mut orphans = Vec::with_capacity(held.len());
        for (text, function) in held {
            match text.parse::<ConnectionId>() {
                // A session keeps its journal and directory entries, waiting for a resume
                // anywhere; one that moved away or ended is no longer this node's.
                Ok(id) if id.is_journaled() => {
                    if self.park_session(id, node).await? {
                        self.list_parked(id).await?;
                    }
                }
                _ => {
                    if let Some(orphan) = self.take_orphan(&text, &function, NODE_STOPPED).await? {
                        orphans.push(orphan);
                    }
                }
            }
            let () = self
                .bounded(redis.hdel(keys::node_connections(node), &text))
                .await?;
        }
        Ok(orphans)
    }

    /// Takes one connection of a dead node out of its function's directory.
    async fn take_orphan(
        &self,
        text: &str,
        function: &str,
        reason: &'static str,
    ) -> Result<Option<Orphan>, ClusterError> {
        let Ok(id) = text.parse::<ConnectionId>() else {
            return Ok(None);
        };
        let mut redis = self.redis();
        let (json, attachment, groups): (Option<String>, Option<Vec<u8>>, Vec<String>) = self
            .bounded(
                redis::pipe()
                    .cmd("HGET")
                    .arg(keys::function_connections(function))
                    .arg(text)
                    .cmd("HGET")
                    .arg(keys::attachments(function))
                    .arg(text)
                    .cmd("SMEMBERS")
                    .arg(keys::connection_groups(function, id))
                    .query_async(&mut redis),
            )
            .await?;
        let mut pipe = redis::pipe();
        for group in &groups {
            pipe.cmd("SREM")
                .arg(keys::group(function, group))
                .arg(text)
                .ignore();
        }
        pipe.cmd("DEL")
            .arg(keys::connection_groups(function, id))
            .ignore()
            .cmd("HDEL")
            .arg(keys::function_connections(function))
            .arg(text)
            .ignore()
            .cmd("HDEL")
            .arg(keys::attachments(function))
            .arg(text)
            .ignore();
        let () = self.bounded(pipe.query_async(&mut redis)).await?;
        let record = json.and_then(|j| serde_json::from_str::<ConnectionRecord>(&j).ok());
        Ok(record.map(|record| Orphan {
            record,
            attachment,
            reason,
        }))
    }
}

fn join_commands(function: &str, id: ConnectionId, group: &str) -> Vec<redis::Cmd> {
    vec![
        cmd("SADD")
            .arg(keys::group(function, group))
            .arg(id.to_string())
            .clone(),
        cmd("SADD")
            .arg(keys::connection_groups(function, id))
            .arg(group)
            .clone(),
    ]
}
