//! What a resumable session in a cluster writes its messages through, and how it delivers
//! them in the order the journal gave them.
//!
//! A journaled session's messages are not queued where they are sent: they are appended to
//! its journal in the cluster's Redis (see `cluster::journal`), which numbers them, and come
//! back to the node serving it as numbered notices. The [`Sequencer`] hands them to the
//! socket strictly by number, whatever order they arrive in and however often.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use super::id::ConnectionId;
use super::outbound::{Outbound, QueueError};

/// A group publish as it reaches a session: its id in the group's history (the stream
/// entry Redis gave it, milliseconds and sequence), which orders the group's publishes, so
/// that a session delivered the same publish by two nodes (while it moves between them), or
/// read again from the history, takes it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublishMark {
    pub millis: u64,
    pub sequence: u64,
}

impl std::fmt::Display for PublishMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.millis, self.sequence)
    }
}

impl std::str::FromStr for PublishMark {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (millis, sequence) = text.split_once('-').ok_or(())?;
        Ok(Self {
            millis: millis.parse().map_err(|_| ())?,
            sequence: sequence.parse().map_err(|_| ())?,
        })
    }
}

/// Where a journaled session's messages, acknowledgements and handled counts are written.
pub trait SessionJournal: Send + Sync {
    /// Queues `frame` for session `id` (a group publish with its group and mark). Fails only
    /// when the queue to the journal is full.
    fn append(
        &self,
        id: ConnectionId,
        frame: &Outbound,
        published: Option<(&str, PublishMark)>,
    ) -> Result<(), QueueError>;

    /// The client has received `received` messages in all.
    fn acknowledged(&self, id: ConnectionId, received: u64);

    /// The function has handled `handled` of the client's messages.
    fn handled(&self, id: ConnectionId, handled: u64);

    /// Resolves once everything written so far is in the journal (`false`: it could not be
    /// confirmed in time). The client is told a handled count only once it is: a node that
    /// dies must not leave the client believing its messages are safe when the journal does
    /// not say so.
    fn persisted(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

impl fmt::Debug for dyn SessionJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionJournal")
    }
}

/// Most numbered messages held while waiting for an earlier one; past it the session is
/// behind its journal for good and ends rather than grow.
pub const MAX_EARLY: usize = 65_536;

/// Puts a journaled session's numbered messages back in order.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// The position to deliver next; `None` until the session knows where it starts (a
    /// session being taken over holds what arrives until its claim answers).
    next: Option<u64>,
    /// Messages that arrived before an earlier one, by position.
    early: BTreeMap<u64, Outbound>,
    /// A read of missing positions from the journal is under way: not asked for again.
    filling: bool,
}

/// What offering a message to the sequencer gave.
#[derive(Debug, Default, PartialEq)]
pub struct Ready {
    /// Messages to deliver now, in order.
    pub frames: Vec<Outbound>,
    /// Positions missing before the first early message (from, to inclusive), to be read from
    /// the journal.
    pub missing: Option<(u64, u64)>,
    /// Too much arrived ahead of a hole: the session cannot go on.
    pub overflowed: bool,
}

impl Sequencer {
    /// A sequencer that delivers from position `next`.
    pub fn starting_at(next: u64) -> Self {
        Self {
            next: Some(next),
            early: BTreeMap::new(),
            filling: false,
        }
    }

    /// A sequencer that holds everything until [`start_at`](Self::start_at).
    pub fn waiting() -> Self {
        Self::default()
    }

    /// The next position to deliver, once known.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// Starts delivering from `next`: anything held from before it is dropped.
    pub fn start_at(&mut self, next: u64) -> Ready {
        self.next = Some(next);
        self.early = self.early.split_off(&next);
        self.drain()
    }

    /// A read of missing positions ended: a hole still there may be asked for again.
    pub fn filled(&mut self) {
        self.filling = false;
    }

    /// Offers the message at `position`; what is now in order comes back.
    pub fn offer(&mut self, position: u64, frame: Outbound) -> Ready {
        if self.next.is_some_and(|next| position < next) {
            return Ready::default();
        }
        self.early.insert(position, frame);
        if self.early.len() > MAX_EARLY {
            return Ready {
                overflowed: true,
                ..Ready::default()
            };
        }
        self.drain()
    }

    fn drain(&mut self) -> Ready {
        let Some(mut next) = self.next else {
            return Ready::default();
        };
        let mut frames = Vec::new();
        while let Some(frame) = self.early.remove(&next) {
            frames.push(frame);
            next += 1;
        }
        self.next = Some(next);
        let missing = match self.early.keys().next() {
            Some(&first_early) if !self.filling => {
                self.filling = true;
                Some((next, first_early - 1))
            }
            _ => None,
        };
        Ready {
            frames,
            missing,
            overflowed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn text(n: u64) -> Outbound {
        Outbound::Text(Bytes::from(n.to_string()))
    }

    fn texts(ns: &[u64]) -> Vec<Outbound> {
        ns.iter().map(|&n| text(n)).collect()
    }

    #[test]
    fn messages_come_out_by_position_once() {
        let mut sequencer = Sequencer::starting_at(3);
        assert_eq!(sequencer.offer(3, text(3)).frames, texts(&[3]));
        let ahead = sequencer.offer(5, text(5));
        assert_eq!(ahead.frames, vec![]);
        assert_eq!(ahead.missing, Some((4, 4)));
        assert_eq!(
            sequencer.offer(7, text(7)).missing,
            None,
            "already asked for"
        );
        assert_eq!(sequencer.offer(4, text(4)).frames, texts(&[4, 5]));
        sequencer.filled();
        assert_eq!(sequencer.offer(8, text(8)).missing, Some((6, 6)));
        assert_eq!(sequencer.offer(6, text(6)).frames, texts(&[6, 7, 8]));
        assert_eq!(sequencer.offer(4, text(4)), Ready::default(), "a repeat");
        assert_eq!(
            sequencer.offer(2, text(2)),
            Ready::default(),
            "before the start"
        );
        assert_eq!(sequencer.next(), Some(9));
    }

    #[test]
    fn too_much_ahead_of_a_hole_ends_the_session_instead_of_growing() {
        let mut sequencer = Sequencer::starting_at(1);
        for position in 2..=MAX_EARLY as u64 + 1 {
            assert!(!sequencer.offer(position, text(position)).overflowed);
        }
        let overflow = sequencer.offer(MAX_EARLY as u64 + 2, text(0));
        assert!(overflow.overflowed, "one more than {MAX_EARLY} held");
        assert!(overflow.frames.is_empty());
    }

    #[test]
    fn a_session_being_taken_over_holds_everything_until_it_knows_its_start() {
        let mut sequencer = Sequencer::waiting();
        assert_eq!(sequencer.offer(7, text(7)), Ready::default());
        assert_eq!(sequencer.offer(5, text(5)), Ready::default());
        let started = sequencer.start_at(6);
        assert_eq!(started.frames, vec![], "6 comes from the claim's replay");
        assert_eq!(started.missing, Some((6, 6)));
        assert_eq!(sequencer.offer(6, text(6)).frames, texts(&[6, 7]));
    }
}
