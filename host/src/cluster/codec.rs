//! The messages nodes send each other over Redis pub/sub, in a compact binary form.
//!
//! Payloads are WebSocket messages of up to the message size limit, so they travel as raw
//! bytes rather than inside JSON. Every field is length-prefixed; decoding checks every length,
//! so a malformed message is refused rather than misread.

use bytes::Bytes;

use crate::connections::{ConnectionId, NodeId, Outbound};

/// What one node asks another to do to a connection it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeCommand {
    /// Queue a message. `function` is checked against the connection's function so a guest
    /// reaches only its own connections; the admin API sends none.
    Send {
        function: Option<String>,
        id: ConnectionId,
        frame: Outbound,
    },
    Close {
        function: Option<String>,
        id: ConnectionId,
        code: u16,
        reason: String,
    },
    Join {
        function: String,
        id: ConnectionId,
        group: String,
    },
    Leave {
        function: String,
        id: ConnectionId,
        group: String,
    },
    SetAttachment {
        function: String,
        id: ConnectionId,
        value: Option<Vec<u8>>,
    },
}

/// A group publish, heard by every node; each delivers to the members it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPublish {
    pub origin: NodeId,
    pub function: String,
    pub group: String,
    pub except: Option<ConnectionId>,
    pub frame: Outbound,
}

/// A change to which code serves a function; receivers read the new state from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionChanged {
    pub origin: NodeId,
    pub function: String,
}

/// A message that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed cluster message: {0}")]
pub struct DecodeError(pub(super) &'static str);

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Payloads are bounded by the message size limit, far below 4 GiB.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
        self
    }
    fn id(&mut self, id: ConnectionId) -> &mut Self {
        self.bytes(id.to_hex().as_str().as_bytes())
    }
    fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.u8(1).bytes(v.as_bytes()),
            None => self.u8(0),
        }
    }
    fn frame(&mut self, frame: &Outbound) -> &mut Self {
        match frame {
            Outbound::Text(b) => self.u8(0).bytes(b),
            Outbound::Binary(b) => self.u8(1).bytes(b),
            Outbound::Shared(message) if message.binary => self.u8(1).bytes(&message.raw),
            Outbound::Shared(message) => self.u8(0).bytes(&message.raw),
            // Only data frames are routed between nodes.
            _ => self.u8(2),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| DecodeError("text is not UTF-8"))
    }
    fn id(&mut self) -> Result<ConnectionId, DecodeError> {
        std::str::from_utf8(self.bytes()?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(DecodeError("bad connection id"))
    }
    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(DecodeError("bad option tag")),
        }
    }
    fn frame(&mut self) -> Result<Outbound, DecodeError> {
        match self.u8()? {
            0 => {
                let bytes = self.bytes()?;
                std::str::from_utf8(bytes).map_err(|_| DecodeError("text is not UTF-8"))?;
                Ok(Outbound::Text(Bytes::copy_from_slice(bytes)))
            }
            1 => Ok(Outbound::Binary(Bytes::copy_from_slice(self.bytes()?))),
            _ => Err(DecodeError("bad frame kind")),
        }
    }
    fn node(&mut self) -> Result<NodeId, DecodeError> {
        std::str::from_utf8(self.bytes()?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(DecodeError("bad node id"))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

impl NodeCommand {
    /// The connection the command is for.
    pub fn id(&self) -> ConnectionId {
        match self {
            Self::Send { id, .. }
            | Self::Close { id, .. }
            | Self::Join { id, .. }
            | Self::Leave { id, .. }
            | Self::SetAttachment { id, .. } => *id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            NodeCommand::Send {
                function,
                id,
                frame,
            } => w.u8(0).opt_str(function.as_deref()).id(*id).frame(frame),
            NodeCommand::Close {
                function,
                id,
                code,
                reason,
            } => w
                .u8(1)
                .opt_str(function.as_deref())
                .id(*id)
                .u16(*code)
                .bytes(reason.as_bytes()),
            NodeCommand::Join {
                function,
                id,
                group,
            } => w
                .u8(2)
                .bytes(function.as_bytes())
                .id(*id)
                .bytes(group.as_bytes()),
            NodeCommand::Leave {
                function,
                id,
                group,
            } => w
                .u8(3)
                .bytes(function.as_bytes())
                .id(*id)
                .bytes(group.as_bytes()),
            NodeCommand::SetAttachment {
                function,
                id,
                value,
            } => {
                w.u8(4).bytes(function.as_bytes()).id(*id);
                match value {
                    Some(v) => w.u8(1).bytes(v),
                    None => w.u8(0),
                }
            }
        };
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let command = match r.u8()? {
            0 => NodeCommand::Send {
                function: r.opt_string()?,
                id: r.id()?,
                frame: r.frame()?,
            },
            1 => NodeCommand::Close {
                function: r.opt_string()?,
                id: r.id()?,
                code: r.u16()?,
                reason: r.string()?,
            },
            2 => NodeCommand::Join {
                function: r.string()?,
                id: r.id()?,
                group: r.string()?,
            },
            3 => NodeCommand::Leave {
                function: r.string()?,
                id: r.id()?,
                group: r.string()?,
            },
            4 => NodeCommand::SetAttachment {
                function: r.string()?,
                id: r.id()?,
                value: match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes()?.to_vec()),
                    _ => return Err(DecodeError("bad option tag")),
                },
            },
            _ => return Err(DecodeError("unknown command")),
        };
        r.end()?;
        Ok(command)
    }
}

impl GroupPublish {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(self.origin.to_string().as_bytes())
            .bytes(self.function.as_bytes())
            .bytes(self.group.as_bytes());
        match self.except {
            Some(id) => w.u8(1).id(id),
            None => w.u8(0),
        };
        w.frame(&self.frame);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let publish = GroupPublish {
            origin: r.node()?,
            function: r.string()?,
            group: r.string()?,
            except: match r.u8()? {
                0 => None,
                1 => Some(r.id()?),
                _ => return Err(DecodeError("bad option tag")),
            },
            frame: r.frame()?,
        };
        r.end()?;
        Ok(publish)
    }
}

impl FunctionChanged {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(self.origin.to_string().as_bytes())
            .bytes(self.function.as_bytes());
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let changed = FunctionChanged {
            origin: r.node()?,
            function: r.string()?,
        };
        r.end()?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ConnectionId {
        ConnectionId::random()
    }

    #[test]
    fn commands_round_trip() {
        let commands = [
            NodeCommand::Send {
                function: Some("chat".into()),
                id: id(),
                frame: Outbound::Text(Bytes::from_static(b"hi")),
            },
            NodeCommand::Send {
                function: None,
                id: id(),
                frame: Outbound::Binary(Bytes::from_static(&[0, 255])),
            },
            NodeCommand::Close {
                function: None,
                id: id(),
                code: 4000,
                reason: "bye".into(),
            },
            NodeCommand::Join {
                function: "chat".into(),
                id: id(),
                group: "room:1".into(),
            },
            NodeCommand::Leave {
                function: "chat".into(),
                id: id(),
                group: "room:1".into(),
            },
            NodeCommand::SetAttachment {
                function: "chat".into(),
                id: id(),
                value: Some(vec![1, 2, 3]),
            },
            NodeCommand::SetAttachment {
                function: "chat".into(),
                id: id(),
                value: None,
            },
        ];
        for command in commands {
            assert_eq!(NodeCommand::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn publishes_round_trip() {
        let publish = GroupPublish {
            origin: NodeId::random(),
            function: "chat".into(),
            group: "a:b".into(),
            except: Some(id()),
            frame: Outbound::Text(Bytes::from_static(b"x")),
        };
        assert_eq!(GroupPublish::decode(&publish.encode()), Ok(publish));
        let changed = FunctionChanged {
            origin: NodeId::random(),
            function: "echo".into(),
        };
        assert_eq!(FunctionChanged::decode(&changed.encode()), Ok(changed));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let mut bytes = NodeCommand::Join {
            function: "chat".into(),
            id: id(),
            group: "g".into(),
        }
        .encode();
        assert!(NodeCommand::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(NodeCommand::decode(&bytes).is_err());
        assert!(NodeCommand::decode(&[9]).is_err());
        assert!(NodeCommand::decode(&[]).is_err());
        // A text frame must be UTF-8 even when it comes from another node.
        let mut w = Writer::default();
        w.u8(0).u8(0).id(id()).u8(0).bytes(&[0xff]);
        assert!(NodeCommand::decode(&w.0).is_err());
    }
}
