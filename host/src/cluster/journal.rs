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
use redis::Script;
use sha2::{Digest, Sha256};

use super::{ClusterError, ClusterLink, DecodeError, keys};
use crate::connections::{ConnectionId, NodeId, Outbound};

/// KEYS: record. ARGV: home, function, secret digest, retention bytes, subprotocol.
/// Returns 1 when created, 0 when the session already had a record.
const OPEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'home', ARGV[1], 'fn', ARGV[2], 'key', ARGV[3], 'limit', ARGV[4],
  'proto', ARGV[5], 'sent', 0, 'acked', 0, 'handled', 0, 'bytes', 0)
return 1
";

/// KEYS: record, log. ARGV: publish command, channel, kind (t or b), data, group, sender
/// node, sender's count ('' for a message that is not a group publish).
///
/// A session that holds something may not go over its limit; one that holds nothing takes
/// any single message (the message size limit bounds it), as on a single node. A message
/// that does not fit marks the session overflowed and announces it: the home ends it.
const APPEND: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
if redis.call('HEXISTS', KEYS[1], 'overflowed') == 1 then return {'full'} end
if ARGV[5] ~= '' then
  local field = 'g:' .. ARGV[6] .. ':' .. ARGV[5]
  local last = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if tonumber(ARGV[7]) <= last then return {'dup'} end
  redis.call('HSET', KEYS[1], field, ARGV[7])
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
/// Returns {'ok', previous home, handled, subprotocol, entries after `received`} or a refusal.
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
if state[2] ~= ARGV[1] then redis.call(ARGV[5], ARGV[6], 'm' .. ARGV[1]) end
return {'ok', state[2], state[5], state[7], redis.call('XRANGE', KEYS[2], (received + 1) .. '-0', '+')}
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

static OPEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OPEN));
static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND));
static ACKNOWLEDGE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{TRIM}{ACKNOWLEDGE}")));
static HANDLED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HANDLED));
static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{TRIM}{CLAIM}")));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
static PARK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PARK));

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

/// A group publish appended for a session: its group, the node it was published on, and that
/// node's count of publishes, which only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishMark<'a> {
    pub group: &'a str,
    pub origin: NodeId,
    pub count: u64,
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
    pub handled: u64,
    pub subprotocol: Option<String>,
    pub replay: Vec<(u64, Outbound)>,
}

/// What a node hears on a session's channel.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionNotice {
    /// A message was taken at this position.
    Message { position: u64, frame: Outbound },
    /// A resume on `to` took the session over.
    Moved { to: NodeId },
    /// A message did not fit the retention limit: the session ends.
    Overflowed,
}

impl SessionNotice {
    /// Reads a notice as the scripts write it.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        match payload.split_first() {
            Some((b'f', [])) => Ok(Self::Overflowed),
            Some((b'm', node)) => std::str::from_utf8(node)
                .ok()
                .and_then(|node| node.parse().ok())
                .map(|to| Self::Moved { to })
                .ok_or(DecodeError("a move to a node that is not a node id")),
            Some((b'd', rest)) => {
                let (kind, rest) = rest.split_first().ok_or(DecodeError("truncated"))?;
                let space = rest
                    .iter()
                    .position(|&b| b == b' ')
                    .ok_or(DecodeError("no position"))?;
                let position = parse_count(&rest[..space]).ok_or(DecodeError("bad position"))?;
                let data = Bytes::copy_from_slice(&rest[space + 1..]);
                Ok(Self::Message {
                    position,
                    frame: frame(*kind, data)?,
                })
            }
            _ => Err(DecodeError("not a session notice")),
        }
    }
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
        let _: u8 = self
            .bounded(
                OPEN_SCRIPT
                    .key(keys::session(start.id))
                    .arg(self.node.to_string())
                    .arg(start.function)
                    .arg(secret_digest(start.secret))
                    .arg(start.retention)
                    .arg(start.subprotocol.unwrap_or(""))
                    .invoke_async(&mut redis),
            )
            .await?;
        Ok(())
    }

    /// Appends a message to session `id`'s journal and announces it on its channel.
    pub async fn append_to_session(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        mark: Option<PublishMark<'_>>,
    ) -> Result<Appended, ClusterError> {
        let Some((kind, data)) = kind_and_data(frame) else {
            return Ok(Appended::Gone);
        };
        let mut redis = self.redis();
        let (group, origin, count) = match mark {
            Some(mark) => (mark.group, mark.origin.to_string(), mark.count.to_string()),
            None => ("", String::new(), String::new()),
        };
        let answer: Vec<redis::Value> = self
            .bounded(
                APPEND_SCRIPT
                    .key(keys::session(id))
                    .key(keys::session_log(id))
                    .arg(self.redis.publish_command())
                    .arg(keys::session_channel(id))
                    .arg(kind)
                    .arg(data.as_ref())
                    .arg(group)
                    .arg(origin)
                    .arg(count)
                    .invoke_async(&mut redis),
            )
            .await?;
        let verdict: String = field(&answer, 0)?;
        match verdict.as_str() {
            "ok" => Ok(Appended::At(field(&answer, 1)?)),
            "dup" => Ok(Appended::Duplicate),
            "full" => Ok(Appended::Full),
            "gone" => Ok(Appended::Gone),
            other => Err(malformed(format!("append answered {other:?}"))),
        }
    }

    /// Drops what the client of session `id` says it has received; answers the bytes freed.
    pub async fn acknowledge_session(
        &self,
        id: ConnectionId,
        received: u64,
    ) -> Result<Result<u64, AckRefusal>, ClusterError> {
        let mut redis = self.redis();
        let freed: i64 = self
            .bounded(
                ACKNOWLEDGE_SCRIPT
                    .key(keys::session(id))
                    .key(keys::session_log(id))
                    .arg(received)
                    .invoke_async(&mut redis),
            )
            .await?;
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
        let _: u8 = self
            .bounded(
                HANDLED_SCRIPT
                    .key(keys::session(id))
                    .arg(handled)
                    .invoke_async(&mut redis),
            )
            .await?;
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
        let answer: Vec<redis::Value> = self
            .bounded(
                CLAIM_SCRIPT
                    .key(keys::session(id))
                    .key(keys::session_log(id))
                    .arg(self.node.to_string())
                    .arg(function)
                    .arg(secret_digest(secret))
                    .arg(received)
                    .arg(self.redis.publish_command())
                    .arg(keys::session_channel(id))
                    .invoke_async(&mut redis),
            )
            .await?;
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
        let entries: Vec<(String, Vec<Vec<u8>>)> = field(&answer, 4)?;
        let mut replay = Vec::with_capacity(entries.len());
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
            replay.push((position, frame));
        }
        Ok(Ok(Claimed {
            previous_home: node_or_none(&previous),
            handled,
            subprotocol: (!subprotocol.is_empty()).then_some(subprotocol),
            replay,
        }))
    }

    /// Ends session `id`'s journal if `home` still serves it (`None`: it waits with no node).
    /// `true`: it ended here, and the caller runs on-close; `false`: a resume took it elsewhere.
    pub async fn release_session(
        &self,
        id: ConnectionId,
        home: Option<NodeId>,
    ) -> Result<bool, ClusterError> {
        let mut redis = self.redis();
        let released: u8 = self
            .bounded(
                RELEASE_SCRIPT
                    .key(keys::session(id))
                    .key(keys::session_log(id))
                    .arg(home.map(|n| n.to_string()).unwrap_or_default())
                    .invoke_async(&mut redis),
            )
            .await?;
        Ok(released == 1)
    }

    /// Leaves session `id` with no node, for a resume anywhere, if the dead node `home` still
    /// served it. `false`: it had moved (or ended) already.
    pub async fn park_session(&self, id: ConnectionId, home: NodeId) -> Result<bool, ClusterError> {
        let mut redis = self.redis();
        let parked: u8 = self
            .bounded(
                PARK_SCRIPT
                    .key(keys::session(id))
                    .arg(home.to_string())
                    .invoke_async(&mut redis),
            )
            .await?;
        Ok(parked == 1)
    }
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
            SessionNotice::decode(b"dt12 hello world"),
            Ok(SessionNotice::Message {
                position: 12,
                frame: Outbound::Text(Bytes::from_static(b"hello world")),
            })
        );
        assert_eq!(
            SessionNotice::decode(b"db1 "),
            Ok(SessionNotice::Message {
                position: 1,
                frame: Outbound::Binary(Bytes::new()),
            })
        );
        assert_eq!(
            SessionNotice::decode(b"m0000abcd"),
            Ok(SessionNotice::Moved {
                to: "0000abcd".parse().unwrap()
            })
        );
        assert_eq!(SessionNotice::decode(b"f"), Ok(SessionNotice::Overflowed));
        for bad in [&b""[..], b"dx1 a", b"dt a", b"dtx a", b"m12", b"fx", b"q"] {
            assert!(SessionNotice::decode(bad).is_err(), "{bad:?}");
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
