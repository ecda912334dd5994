//! Connection ids: 128 bits written as 32 lower-case hex digits. The first 32 bits name the
//! node (host process) that started the connection, so any node of a cluster can route to
//! it; the next bit says whether it is a resumable session journaled in the cluster (which
//! may since have moved to another node, so it is reached through its journal instead); the
//! other 95 bits are random.
//!
//! Ids are handed to functions and, through them, to clients and other systems, so they must
//! not be guessable: a guessed id would let anyone who can reach a function push to someone
//! else's socket. 95 bits from the OS generator make both guessing and collisions hopeless.

use std::fmt;
use std::str::FromStr;

/// The bit that marks a session journaled in the cluster (the highest of the random ones), so
/// that a node can route to it from the id alone.
const JOURNALED: u128 = 1 << 95;

/// The id of one WebSocket connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u128);

/// A string that is not a connection id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a connection id: expected 32 hex digits")]
pub struct InvalidConnectionId;

/// Names one host process for as long as it runs: a cluster routes by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(u32);

impl NodeId {
    /// A fresh random node id (never zero). A restarted process gets a new one, so ids of
    /// connections it held before cannot be mistaken for new ones.
    ///
    /// # Panics
    /// If the operating system's random source fails, which leaves no safe way to go on.
    pub fn random() -> Self {
        loop {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes).expect("the OS random source failed");
            let value = u32::from_le_bytes(bytes);
            if value != 0 {
                return Self(value);
            }
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = InvalidConnectionId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidConnectionId);
        }
        u32::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| InvalidConnectionId)
    }
}

impl ConnectionId {
    /// A fresh random id that is not tied to a node (node bits random too).
    ///
    /// # Panics
    /// If the operating system's random source fails, which leaves no safe way to go on.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source failed");
        Self(u128::from_le_bytes(bytes))
    }

    /// A fresh id for a connection held by `node`.
    pub fn random_on(node: NodeId) -> Self {
        let random = Self::random().0 & ((1u128 << 96) - 1) & !JOURNALED;
        Self((u128::from(node.0) << 96) | random)
    }

    /// A fresh id for a resumable session started on `node` whose journal is in the cluster's
    /// Redis: any node sends to it through the journal, wherever it is served now.
    pub fn journaled_on(node: NodeId) -> Self {
        Self(Self::random_on(node).0 | JOURNALED)
    }

    /// Whether this is the id of a session with a journal in the cluster's Redis.
    pub fn is_journaled(self) -> bool {
        self.0 & JOURNALED != 0
    }

    /// The node that holds (or held) the connection.
    pub fn node(self) -> NodeId {
        NodeId((self.0 >> 96) as u32)
    }

    /// Writes the id into a stack buffer, so formatting it on the message path allocates nothing.
    pub fn to_hex(self) -> HexId {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        let mut value = self.0;
        for slot in out.iter_mut().rev() {
            *slot = DIGITS[(value & 0xf) as usize];
            value >>= 4;
        }
        HexId(out)
    }
}

/// A connection id rendered as text, kept on the stack.
#[derive(Clone, Copy)]
pub struct HexId([u8; 32]);

impl HexId {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionId {
    type Err = InvalidConnectionId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidConnectionId);
        }
        u128::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| InvalidConnectionId)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = ConnectionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<ConnectionId>(), Ok(id));
    }

    #[test]
    fn refuses_text_that_is_not_an_id() {
        for bad in [
            "",
            "abc",
            "zz000000000000000000000000000000",
            "+0000000000000000000000000000000",
        ] {
            assert_eq!(
                bad.parse::<ConnectionId>(),
                Err(InvalidConnectionId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_name_their_node() {
        let node = NodeId::random();
        let id = ConnectionId::random_on(node);
        assert_eq!(id.node(), node);
        assert_eq!(
            id.to_string().parse::<ConnectionId>().map(|i| i.node()),
            Ok(node)
        );
        assert_eq!(node.to_string().parse::<NodeId>(), Ok(node));
        assert_ne!(ConnectionId::random_on(node), id);
    }

    #[test]
    fn journaled_session_ids_say_so_and_still_name_their_node() {
        let node = NodeId::random();
        let id = ConnectionId::journaled_on(node);
        assert!(id.is_journaled());
        assert_eq!(id.node(), node);
        assert_eq!(id.to_string().parse::<ConnectionId>(), Ok(id));
        for _ in 0..64 {
            assert!(!ConnectionId::random_on(node).is_journaled());
        }
    }

    #[test]
    fn ids_differ() {
        assert_ne!(ConnectionId::random(), ConnectionId::random());
    }
}
