//! The journal of a resumable session in a cluster: what it must keep so that any node can
//! carry it on, in Redis, where the node that holds it cannot take it down with it.
//!
//! Per session, under one hash tag (`{s:<id>}`, so every script runs on one shard):
//! - a hash, the session's record: its home (the node serving it, or none while it waits
//!   for a resume with no node), its function, a digest of its secret, the positions sent and
//!   acknowledged, how many of the client's messages the function handled, the bytes held
//!   against its retention limit, and the last group publish taken from each sender;
//! - a stream, the messages sent and not yet acknowledged, each with its position as its id;
//! - a channel, on which every message taken is announced with its position, and a move to
//!   another node is announced to the node it leaves.
//!
//! Redis numbers the messages: whoever sends to the session appends, and the script gives the
//! position, so every node that serves it sees one order. A group publish is appended by each
//! node that delivers the group to the session (two of them while it moves); the sender's
//! node and its per-node count ride along, and an append that is not newer than the last one
//! taken from that node for that group is a duplicate, so the session gets it once.
//!
//! Who may end a session is decided here too: releasing it succeeds only for its home, so a
//! node whose session was taken over by a resume elsewhere never runs on-close for it.

use std::sync::LazyLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ClusterError, ClusterLink, DecodeError, keys};
use crate::connections::{ConnectionId, NodeId, Outbound, PublishMark, QueueError, SessionJournal};

/// KEYS: record. ARGV: home, function, secret digest, retention bytes, subprotocol.
/// Returns 1 when created, 0 when the session already had a record.
const OPEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'home', ARGV[1], 'fn', ARGV[2], 'key', ARGV[3], 'limit', ARGV[4],
  'proto', ARGV[5], 'sent', 0, 'acked', 0, 'handled', 0, 'bytes', 0)
return 1
";

/// KEYS: record, log. ARGV: publish command, channel, kind (t or b), data, group and the
/// publish's id in the group's history ('' for a message that is not a group publish), the
/// sending function ('' for the operator, who may send to any).
///
/// A session that holds something may not go over its limit; one that holds nothing takes
/// any single message (the message size limit bounds it), as on a single node. A message
/// that does not fit marks the session overflowed and announces it: the home ends it. A
/// group publish not newer than the last one taken from that group (or than the session's
/// joining, see `stamp_join`) is skipped; one without a history id (`0-0`: published before
/// the group was marked as having sessions) is taken as it comes.
const APPEND: &str = r"
local function newer(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local owner = redis.call('HGET', KEYS[1], 'fn')
if not owner or (ARGV[7] ~= '' and owner ~= ARGV[7]) then return {'gone'} end
if redis.call('HEXISTS', KEYS[1], 'overflowed') == 1 then return {'full'} end
if ARGV[5] ~= '' and ARGV[6] ~= '0-0' then
  local field = 'g:' .. ARGV[5]
  local last = redis.call('HGET', KEYS[1], field)
  if last and not newer(ARGV[6], last) then return {'dup'} end
  redis.call('HSET', KEYS[1], field, ARGV[6])
end
local size = string.len(ARGV[4])
local held = tonumber(redis.call('HGET', KEYS[1], 'bytes'))
if held > 0 and held + size > tonumber(redis.call('HGET', KEYS[1], 'limit')) then
  redis.call('HSET', KEYS[1], 'overflowed', 1)
  redis.call(ARGV[1], ARGV[2], 'f')
  return {'full'}
end
local position = redis.call('HINCRBY', KEYS[1], 'sent', 1)
redis.call('XADD', KEYS[2], position .. '-0', 'k', ARGV[3], 'd', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'bytes', size)
redis.call(ARGV[1], ARGV[2], 'd' .. ARGV[3] .. position .. ' ' .. ARGV[4])
return {'ok', position}
";

/// KEYS: record. ARGV: group, the last id of the group's history when the session joined.
/// Marks where the session's membership starts, unless a publish of the group was taken
/// already.
const STAMP_JOIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'g:' .. ARGV[1], ARGV[2])
";

/// Shared by the scripts that drop what the client has received: frees the entries up to
/// `received` and records the acknowledgement. Expects `received` checked against the record.
const TRIM: &str = r"
local function trim(record, log, received)
  local freed = 0
  for _, entry in ipairs(redis.call('XRANGE', log, '-', received .. '-0')) do
    freed = freed + string.len(entry[2][4])
  end
  redis.call('XTRIM', log, 'MINID', (received + 1) .. '-0')
  redis.call('HSET', record, 'acked', received)
  redis.call('HINCRBY', record, 'bytes', -freed)
  return freed
end
";

/// KEYS: record, log. ARGV: the client's count of received messages.
/// Returns the bytes freed, -1 for no such session, -2 for more than was sent.
const ACKNOWLEDGE: &str = r"
local state = redis.call('HMGET', KEYS[1], 'sent', 'acked')
if not state[1] then return -1 end
local received = tonumber(ARGV[1])
if received > tonumber(state[1]) then return -2 end
if received <= tonumber(state[2]) then return 0 end
return trim(KEYS[1], KEYS[2], received)
";

/// KEYS: record. ARGV: how many of the client's messages the function has handled.
const HANDLED: &str = r"
local handled = tonumber(redis.call('HGET', KEYS[1], 'handled') or '-1')
if handled < 0 then return 0 end
if tonumber(ARGV[1]) > handled then redis.call('HSET', KEYS[1], 'handled', ARGV[1]) end
return 1
";

/// KEYS: record, log. ARGV: claiming node, function, secret digest, received, publish
/// command, channel.
/// Returns {'ok', previous home, handled, subprotocol, entries after `received`, the claim's
/// number} or a refusal. The node it leaves hears the claim's number, and answers with it.
const CLAIM: &str = r"
local state = redis.call('HMGET', KEYS[1], 'key', 'home', 'sent', 'acked', 'handled', 'fn',
  'proto', 'overflowed')
if not state[1] or state[8] then return {'unknown'} end
if state[6] ~= ARGV[2] then return {'function'} end
if state[1] ~= ARGV[3] then return {'secret'} end
local received = tonumber(ARGV[4])
if received > tonumber(state[3]) or received < tonumber(state[4]) then return {'gap'} end
if received > tonumber(state[4]) then trim(KEYS[1], KEYS[2], received) end
redis.call('HSET', KEYS[1], 'home', ARGV[1])
local claim = redis.call('HINCRBY', KEYS[1], 'claims', 1)
if state[2] ~= ARGV[1] then redis.call(ARGV[5], ARGV[6], 'm' .. ARGV[1] .. ' ' .. claim) end
return {'ok', state[2], state[5], state[7], redis.call('XRANGE', KEYS[2], (received + 1) .. '-0', '+'),
  claim}
";

/// KEYS: record, log. ARGV: the home the caller expects ('' for none).
/// Deletes the session if that is its home: 1, and the caller runs on-close; else 0.
const RELEASE: &str = r"
local home = redis.call('HGET', KEYS[1], 'home')
if home ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// KEYS: record. ARGV: the home the caller expects (a node declared dead).
/// Leaves the session with no home, waiting for a resume: 1 if it was that node's, else 0.
const PARK: &str = r"
if redis.call('HGET', KEYS[1], 'home') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'home', '')
return 1
";

/// The scripts that drop what the client received, with the function they share.
static ACKNOWLEDGE_SCRIPT: LazyLock<String> = LazyLock::new(|| format!("{TRIM}{ACKNOWLEDGE}"));
static CLAIM_SCRIPT: LazyLock<String> = LazyLock::new(|| format!("{TRIM}{CLAIM}"));

/// A script call with its keys. Scripts travel whole (`EVAL`): Redis keeps the compiled
/// script by its digest, and a primary that has just taken over after a failover needs
/// nothing loaded first.
fn script(body: &str, keys: &[String]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(body).arg(keys.len());
    for key in keys {
        command.arg(key);
    }
    command
}

fn record_and_log(id: ConnectionId) -> [String; 2] {
    [keys::session(id), keys::session_log(id)]
}

/// What a new clustered session is opened with.
#[derive(Debug, Clone)]
pub struct SessionStart<'a> {
    pub id: ConnectionId,
    pub function: &'a str,
    /// The secret as the client was given it.
    pub secret: &'a str,
    /// Bytes the session may hold unacknowledged (see `--session-retention`).
    pub retention: usize,
    pub subprotocol: Option<&'a str>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Taken, at this position (counting from 1).
    At(u64),
    /// A group publish this session already has.
    Duplicate,
    /// Over the retention limit: the session ends.
    Full,
    /// No such session (it ended, or never was clustered).
    Gone,
}

/// Why a resume may not take a session over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefusal {
    #[error("no such session")]
    Unknown,
    #[error("the session belongs to another function")]
    Function,
    #[error("wrong secret")]
    Secret,
    #[error("the client's count does not fit what was sent")]
    Gap,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckRefusal {
    #[error("no such session")]
    Unknown,
    #[error("acknowledges more than was sent")]
    TooMany,
}

/// A session taken over by a resume: where it was, what the client sent that the function
/// handled, and the messages to write again, with their positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The node that served it before (`None`: it waited with no node).
    pub previous_home: Option<NodeId>,
    /// This claim's number among the session's claims.
    pub claim: u64,
    pub handled: u64,
    pub subprotocol: Option<String>,
    pub replay: Vec<(u64, Outbound)>,
}

/// What a node hears on a session's channel.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionNotice {
    /// A message was taken at this position.
    Message { position: u64, frame: Outbound },
    /// A resume on `to` took the session over, by the claim numbered `claim`.
    Moved { to: NodeId, claim: u64 },
    /// A message did not fit the retention limit: the session ends.
    Overflowed,
    /// The node it moved from let it go after claim `claim`, its function having handled
    /// this many of the client's messages.
    Released { handled: u64, claim: u64 },
    /// A command for the session from another node (close, join, leave, attachment).
    Command(super::NodeCommand),
}

impl SessionNotice {
    /// Reads a notice as the scripts write it; a message's data stays in `payload`'s buffer.
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        match payload.split_first() {
            Some((b'f', [])) => Ok(Self::Overflowed),
            Some((b'h', rest)) => two_counts(rest)
                .map(|(handled, claim)| Self::Released { handled, claim })
                .ok_or(DecodeError("a release without its counts")),
            Some((b'c', command)) => super::NodeCommand::decode(command).map(Self::Command),
            Some((b'm', rest)) => std::str::from_utf8(rest)
                .ok()
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(node, claim)| Some((node.parse().ok()?, claim.parse().ok()?)))
                .map(|(to, claim)| Self::Moved { to, claim })
                .ok_or(DecodeError("a move without a node id and a claim")),
            Some((b'd', rest)) => {
                let (kind, rest) = rest.split_first().ok_or(DecodeError("truncated"))?;
                let space = rest
                    .iter()
                    .position(|&b| b == b' ')
                    .ok_or(DecodeError("no position"))?;
                let position = parse_count(&rest[..space]).ok_or(DecodeError("bad position"))?;
                // The data starts after the kind, the position and the space.
                let data = payload.slice(space + 3..);
                Ok(Self::Message {
                    position,
                    frame: frame(*kind, data)?,
                })
            }
            _ => Err(DecodeError("not a session notice")),
        }
    }
}

fn two_counts(text: &[u8]) -> Option<(u64, u64)> {
    let space = text.iter().position(|&b| b == b' ')?;
    Some((
        parse_count(&text[..space])?,
        parse_count(&text[space + 1..])?,
    ))
}

fn parse_count(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn frame(kind: u8, data: Bytes) -> Result<Outbound, DecodeError> {
    match kind {
        b't' => Ok(Outbound::Text(data)),
        b'b' => Ok(Outbound::Binary(data)),
        _ => Err(DecodeError("a message that is neither text nor binary")),
    }
}

/// The kind and payload of a data frame; `None` for control frames, which are never kept.
fn kind_and_data(frame: &Outbound) -> Option<(&'static str, &Bytes)> {
    match frame {
        Outbound::Text(data) => Some(("t", data)),
        Outbound::Binary(data) => Some(("b", data)),
        Outbound::Shared(message) if message.binary => Some(("b", &message.raw)),
        Outbound::Shared(message) => Some(("t", &message.raw)),
        Outbound::Ping(_) | Outbound::Pong(_) | Outbound::Control(_) => None,
    }
}

/// The digest of a session's secret that the journal keeps, so that reading Redis does not
/// give anyone the secret itself.
fn secret_digest(secret: &str) -> String {
    let digest = Sha256::digest(secret.to_ascii_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_or_none(text: &str) -> Option<NodeId> {
    text.parse().ok()
}

impl ClusterLink {
    /// Starts the journal of a new session served by this node. Waited for before the client
    /// is told the session exists, so a session the client knows of always has a journal.
    pub async fn open_session(&self, start: &SessionStart<'_>) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        let open = script(OPEN, &[keys::session(start.id)])
            .arg(self.node.to_string())
            .arg(start.function)
            .arg(secret_digest(start.secret))
            .arg(start.retention)
            .arg(start.subprotocol.unwrap_or(""))
            .clone();
        let _: u8 = self.bounded(open.query_async(&mut redis)).await?;
        Ok(())
    }

    /// The script call that appends `frame` to session `id`'s journal and announces it;
    /// `None` for frames a journal never keeps (pings, pongs, control messages).
    fn append_command(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        published: Option<(&str, PublishMark)>,
        function: Option<&str>,
    ) -> Option<redis::Cmd> {
        let (kind, data) = kind_and_data(frame)?;
        let (group, mark) = match published {
            Some((group, mark)) => (group, mark.to_string()),
            None => ("", String::new()),
        };
        Some(
            script(APPEND, &record_and_log(id))
                .arg(self.redis.publish_command())
                .arg(keys::session_channel(id))
                .arg(kind)
                .arg(data.as_ref())
                .arg(group)
                .arg(mark)
                .arg(function.unwrap_or(""))
                .clone(),
        )
    }

    /// Appends a message to session `id`'s journal and announces it on its channel, waiting
    /// for the answer. `function`: only a session of that function takes it (`None`: the
    /// operator's, any session).
    pub async fn append_to_session(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        published: Option<(&str, PublishMark)>,
        function: Option<&str>,
    ) -> Result<Appended, ClusterError> {
        let Some(append) = self.append_command(id, frame, published, function) else {
            return Ok(Appended::Gone);
        };
        let mut redis = self.redis();
        let answer: Vec<redis::Value> = self.bounded(append.query_async(&mut redis)).await?;
        let verdict: String = field(&answer, 0)?;
        match verdict.as_str() {
            "ok" => Ok(Appended::At(field(&answer, 1)?)),
            "dup" => Ok(Appended::Duplicate),
            "full" => Ok(Appended::Full),
            "gone" => Ok(Appended::Gone),
            other => Err(malformed(format!("append answered {other:?}"))),
        }
    }

    /// Queues an append on the outbox: in order with this node's other writes, without
    /// waiting. A sender learns nothing of a session that ended, as with any connection
    /// held elsewhere.
    pub(super) fn queue_append(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        published: Option<(&str, PublishMark)>,
        function: Option<&str>,
    ) -> Result<(), super::OutboxFull> {
        match self.append_command(id, frame, published, function) {
            Some(append) => self.outbox.commands(vec![append]),
            None => Ok(()),
        }
    }

    fn acknowledge_command(id: ConnectionId, received: u64) -> redis::Cmd {
        script(&ACKNOWLEDGE_SCRIPT, &record_and_log(id))
            .arg(received)
            .clone()
    }

    fn handled_command(id: ConnectionId, handled: u64) -> redis::Cmd {
        script(HANDLED, &[keys::session(id)]).arg(handled).clone()
    }

    /// Drops what the client of session `id` says it has received; answers the bytes freed.
    pub async fn acknowledge_session(
        &self,
        id: ConnectionId,
        received: u64,
    ) -> Result<Result<u64, AckRefusal>, ClusterError> {
        let mut redis = self.redis();
        let acknowledge = Self::acknowledge_command(id, received);
        let freed: i64 = self.bounded(acknowledge.query_async(&mut redis)).await?;
        Ok(match freed {
            -1 => Err(AckRefusal::Unknown),
            -2 => Err(AckRefusal::TooMany),
            freed => Ok(u64::try_from(freed).unwrap_or(0)),
        })
    }

    /// Records that the function has handled `handled` of the client's messages, so a resume
    /// elsewhere asks the client for the rest only.
    pub async fn note_session_handled(
        &self,
        id: ConnectionId,
        handled: u64,
    ) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        let note = Self::handled_command(id, handled);
        let _: u8 = self.bounded(note.query_async(&mut redis)).await?;
        Ok(())
    }

    /// Takes session `id` over for this node, for a resume whose client proved `secret` and
    /// has received `received` messages. The node that served it hears that it moved.
    pub async fn claim_session(
        &self,
        id: ConnectionId,
        function: &str,
        secret: &str,
        received: u64,
    ) -> Result<Result<Claimed, ClaimRefusal>, ClusterError> {
        let mut redis = self.redis();
        let claim = script(&CLAIM_SCRIPT, &record_and_log(id))
            .arg(self.node.to_string())
            .arg(function)
            .arg(secret_digest(secret))
            .arg(received)
            .arg(self.redis.publish_command())
            .arg(keys::session_channel(id))
            .clone();
        let answer: Vec<redis::Value> = self.bounded(claim.query_async(&mut redis)).await?;
        let verdict: String = field(&answer, 0)?;
        let refusal = match verdict.as_str() {
            "ok" => None,
            "unknown" => Some(ClaimRefusal::Unknown),
            "function" => Some(ClaimRefusal::Function),
            "secret" => Some(ClaimRefusal::Secret),
            "gap" => Some(ClaimRefusal::Gap),
            other => return Err(malformed(format!("claim answered {other:?}"))),
        };
        if let Some(refusal) = refusal {
            return Ok(Err(refusal));
        }
        let previous: String = field(&answer, 1)?;
        let handled: u64 = field(&answer, 2)?;
        let subprotocol: String = field(&answer, 3)?;
        let entries: Vec<JournalEntry> = field(&answer, 4)?;
        let number: u64 = field(&answer, 5)?;
        Ok(Ok(Claimed {
            previous_home: node_or_none(&previous),
            claim: number,
            handled,
            subprotocol: (!subprotocol.is_empty()).then_some(subprotocol),
            replay: entries_of(entries)?,
        }))
    }

    /// The messages of session `id`'s journal from position `from` to `to` (inclusive, or
    /// the last) that it still holds, to fill a gap in what this node heard.
    pub async fn read_session_log(
        &self,
        id: ConnectionId,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<(u64, Outbound)>, ClusterError> {
        let mut redis = self.redis();
        let read = redis::cmd("XRANGE")
            .arg(keys::session_log(id))
            .arg(format!("{from}-0"))
            .arg(to.map_or_else(|| "+".to_owned(), |to| format!("{to}-0")))
            .clone();
        let entries: Vec<JournalEntry> = self.bounded(read.query_async(&mut redis)).await?;
        entries_of(entries)
    }

    /// The subprotocol session `id` was opened with (for the answer to a resume that reached
    /// this node), if it is a session of `function` in the journal.
    pub async fn session_subprotocol(
        &self,
        id: ConnectionId,
        function: &str,
    ) -> Result<Option<Option<String>>, ClusterError> {
        let mut redis = self.redis();
        let read = redis::cmd("HMGET")
            .arg(keys::session(id))
            .arg("fn")
            .arg("proto")
            .clone();
        let (owner, proto): (Option<String>, Option<String>) =
            self.bounded(read.query_async(&mut redis)).await?;
        Ok((owner.as_deref() == Some(function)).then(|| proto.filter(|p| !p.is_empty())))
    }

    /// Tells the node that took session `id` over that this node let it go, with how many of
    /// the client's messages its function handled; sent once everything this node queued
    /// before (its directory writes, its appends) has reached Redis.
    pub async fn session_released(&self, id: ConnectionId, handled: u64, claim: u64) {
        self.outbox.flush().await;
        let released = self
            .outbox
            .commands(vec![Self::handled_command(id, handled)])
            .and_then(|()| {
                self.outbox.publish(
                    keys::session_channel(id),
                    format!("h{handled} {claim}").into_bytes(),
                )
            });
        if let Err(error) = released {
            tracing::warn!(connection = %id, "cannot tell the node that took a session over that it may go on: {error}");
        }
    }

    /// Sends a command for session `id` on its channel, where whichever node serves it hears
    /// it.
    pub(super) fn queue_session_command(
        &self,
        id: ConnectionId,
        command: &super::NodeCommand,
    ) -> Result<(), super::OutboxFull> {
        let mut payload = vec![b'c'];
        payload.extend_from_slice(&command.encode());
        self.outbox.publish(keys::session_channel(id), payload)
    }

    /// Ends session `id`'s journal if `home` still serves it (`None`: it waits with no node).
    /// `true`: it ended here, and the caller runs on-close; `false`: a resume took it elsewhere.
    pub async fn release_session(
        &self,
        id: ConnectionId,
        home: Option<NodeId>,
    ) -> Result<bool, ClusterError> {
        let mut redis = self.redis();
        let release = script(RELEASE, &record_and_log(id))
            .arg(home.map(|n| n.to_string()).unwrap_or_default())
            .clone();
        let released: u8 = self.bounded(release.query_async(&mut redis)).await?;
        Ok(released == 1)
    }

    /// Leaves session `id` with no node, for a resume anywhere, if the dead node `home` still
    /// served it. `false`: it had moved (or ended) already.
    pub async fn park_session(&self, id: ConnectionId, home: NodeId) -> Result<bool, ClusterError> {
        let mut redis = self.redis();
        let park = script(PARK, &[keys::session(id)])
            .arg(home.to_string())
            .clone();
        let parked: u8 = self.bounded(park.query_async(&mut redis)).await?;
        Ok(parked == 1)
    }
}

impl ClusterLink {
    /// Asks for the start of journaled session `id`'s membership of `group` to be marked in
    /// its journal once this node listens to the group (see `stamp_joins`).
    pub(super) fn queue_stamp(&self, id: ConnectionId, function: &str, group: &str) {
        self.stamps.lock().push(super::Stamp {
            id,
            function: function.to_owned(),
            group: group.to_owned(),
        });
    }

    /// Marks where the memberships queued by `queue_stamp` start in their groups' histories:
    /// the last publish there when this node listens to the group. A session taken over
    /// from a node that died reads each group's history from its mark on (see
    /// `read_group_history`), so it gets what it missed and nothing from before it joined.
    pub(super) async fn stamp_joins(&self) {
        let stamps = std::mem::take(&mut *self.stamps.lock());
        let mut later = Vec::new();
        for stamp in stamps {
            if !self
                .listening
                .read()
                .contains(&keys::group_channel(&stamp.function, &stamp.group))
            {
                later.push(stamp);
                continue;
            }
            if let Err(error) = self.stamp_join(&stamp).await {
                tracing::warn!(session = %stamp.id, "cannot mark where a session joined a group: {error}");
            }
        }
        self.stamps.lock().extend(later);
    }

    async fn stamp_join(&self, stamp: &super::Stamp) -> Result<(), ClusterError> {
        let mut redis = self.redis();
        // The group keeps a history from now on; its last entry is where the session starts.
        let (_, last): ((), Vec<JournalEntry>) = self
            .bounded(
                redis::pipe()
                    .add_command(self.keep_history_command(&stamp.function, &stamp.group))
                    .cmd("XREVRANGE")
                    .arg(keys::group_history(&stamp.function, &stamp.group))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut redis),
            )
            .await?;
        let last = last
            .first()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
        let mark = script(STAMP_JOIN, &[keys::session(stamp.id)])
            .arg(&stamp.group)
            .arg(last)
            .clone();
        let _: u8 = self.bounded(mark.query_async(&mut redis)).await?;
        Ok(())
    }

    /// The command that marks `group` as having journaled sessions for two resume windows,
    /// so its publishes are kept in its history for at least one window after the last
    /// session left or its node died.
    fn keep_history_command(&self, function: &str, group: &str) -> redis::Cmd {
        let window = self.settings.session_window.as_millis() as u64;
        redis::cmd("SET")
            .arg(keys::group_sessions(function, group))
            .arg(1)
            .arg("PX")
            .arg((window * 2).max(1))
            .clone()
    }

    /// Marks again the groups of the journaled sessions this node serves (`connections`),
    /// each at most every half resume window.
    pub(super) fn keep_histories(
        &self,
        connections: &[std::sync::Arc<crate::connections::Connection>],
    ) {
        let window = self.settings.session_window;
        let now = std::time::Instant::now();
        let mut wanted = std::collections::HashSet::new();
        for connection in connections {
            let serving = connection
                .session
                .as_deref()
                .is_some_and(|session| session.journal().is_some() && !session.has_moved());
            if serving {
                for group in connection.memberships() {
                    wanted.insert((connection.scope.name.clone(), group));
                }
            }
        }
        let mut kept = self.histories_kept.lock();
        let mut commands = Vec::new();
        for (function, group) in wanted {
            let key = keys::group_sessions(&function, &group);
            if kept
                .get(&key)
                .is_none_or(|at| now.duration_since(*at) >= window / 2)
            {
                commands.push(self.keep_history_command(&function, &group));
                kept.insert(key, now);
            }
        }
        kept.retain(|_, at| now.duration_since(*at) < window * 2);
        drop(kept);
        if !commands.is_empty() && self.outbox.commands(commands).is_err() {
            tracing::warn!(
                "the cluster link is backed up; groups of sessions were not marked again"
            );
        }
    }

    /// The command that forgets where session `id`'s membership of `group` started (it left).
    pub(super) fn unstamp_command(id: ConnectionId, group: &str) -> redis::Cmd {
        redis::cmd("HDEL")
            .arg(keys::session(id))
            .arg(format!("g:{group}"))
            .clone()
    }

    /// The publishes to `group` after the last one session `id` took (or after it joined),
    /// from the group's history, with their ids: what a node that died may not have
    /// delivered to it. Empty when the session's start in the group is not known.
    pub async fn read_group_history(
        &self,
        id: ConnectionId,
        function: &str,
        group: &str,
    ) -> Result<Vec<(PublishMark, super::GroupPublish)>, ClusterError> {
        let mut redis = self.redis();
        let mark: Option<String> = self
            .bounded(redis::AsyncCommands::hget(
                &mut redis,
                keys::session(id),
                format!("g:{group}"),
            ))
            .await?;
        let Some(mark) = mark else {
            return Ok(Vec::new());
        };
        let read = redis::cmd("XRANGE")
            .arg(keys::group_history(function, group))
            .arg(format!("({mark}"))
            .arg("+")
            .clone();
        let entries: Vec<JournalEntry> = self.bounded(read.query_async(&mut redis)).await?;
        let mut publishes = Vec::with_capacity(entries.len());
        for (entry, fields) in entries {
            let (Ok(mark), [_, publish]) = (entry.parse::<PublishMark>(), fields.as_slice()) else {
                continue;
            };
            if let Ok(publish) = super::GroupPublish::decode(publish) {
                publishes.push((mark, publish));
            }
        }
        Ok(publishes)
    }
}

impl SessionJournal for ClusterLink {
    fn append(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        published: Option<(&str, PublishMark)>,
    ) -> Result<(), QueueError> {
        self.queue_append(id, frame, published, None)
            .map_err(|_| QueueError::Full)
    }

    fn acknowledged(&self, id: ConnectionId, received: u64) {
        let _ = self
            .outbox
            .commands(vec![Self::acknowledge_command(id, received)]);
    }

    fn handled(&self, id: ConnectionId, handled: u64) {
        let _ = self
            .outbox
            .commands(vec![Self::handled_command(id, handled)]);
    }

    fn persisted(&self) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async {
            tokio::time::timeout(self.settings.request_timeout, self.outbox.flush())
                .await
                .is_ok()
        })
    }
}

/// A stream entry as Redis returns it: its id and its fields and values.
type JournalEntry = (String, Vec<Vec<u8>>);

/// Reads journal entries as a script or `XRANGE` returns them.
fn entries_of(entries: Vec<JournalEntry>) -> Result<Vec<(u64, Outbound)>, ClusterError> {
    let mut messages = Vec::with_capacity(entries.len());
    for (entry_id, fields) in entries {
        let position = entry_id
            .split_once('-')
            .and_then(|(position, _)| position.parse().ok())
            .ok_or_else(|| malformed(format!("a journal entry with the id {entry_id:?}")))?;
        let [k, kind, d, data] = <[Vec<u8>; 4]>::try_from(fields)
            .map_err(|_| malformed("a journal entry without its two fields".into()))?;
        if k != b"k" || d != b"d" || kind.len() != 1 {
            return Err(malformed("a journal entry with unknown fields".into()));
        }
        let frame = frame(kind[0], Bytes::from(data)).map_err(|e| malformed(e.to_string()))?;
        messages.push((position, frame));
    }
    Ok(messages)
}

fn malformed(what: String) -> ClusterError {
    ClusterError::Malformed(what)
}

fn field<T: redis::FromRedisValue>(answer: &[redis::Value], at: usize) -> Result<T, ClusterError> {
    let value = answer
        .get(at)
        .ok_or_else(|| malformed(format!("a script's answer without item {at}")))?;
    redis::from_redis_value_ref(value).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_as_the_scripts_write_them() {
        assert_eq!(
            SessionNotice::decode(Bytes::from_static(b"dt12 hello world")),
            Ok(SessionNotice::Message {
                position: 12,
                frame: Outbound::Text(Bytes::from_static(b"hello world")),
            })
        );
        assert_eq!(
            SessionNotice::decode(Bytes::from_static(b"db1 ")),
            Ok(SessionNotice::Message {
                position: 1,
                frame: Outbound::Binary(Bytes::new()),
            })
        );
        assert_eq!(
            SessionNotice::decode(Bytes::from_static(b"m0000abcd 3")),
            Ok(SessionNotice::Moved {
                to: "0000abcd".parse().unwrap(),
                claim: 3
            })
        );
        assert_eq!(
            SessionNotice::decode(Bytes::from_static(b"f")),
            Ok(SessionNotice::Overflowed)
        );
        assert_eq!(
            SessionNotice::decode(Bytes::from_static(b"h42 7")),
            Ok(SessionNotice::Released {
                handled: 42,
                claim: 7
            })
        );
        for bad in [
            &b""[..],
            b"dx1 a",
            b"dt a",
            b"dtx a",
            b"m12",
            b"m0000abcd",
            b"fx",
            b"q",
            b"h",
            b"h4",
            b"hx 1",
            b"c",
        ] {
            let notice = SessionNotice::decode(Bytes::from_static(bad));
            assert!(notice.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_journal_keeps_a_digest_of_the_secret_in_any_case() {
        let digest = secret_digest("00ff");
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, secret_digest("00FF"));
        assert_ne!(digest, secret_digest("00fe"));
        assert!(!digest.contains("00ff"));
    }
}
