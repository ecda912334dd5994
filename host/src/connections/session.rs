//! What a resumable session keeps beyond a plain connection: the secret a client proves it is
//! the session's with, how many of the client's messages the function has handled, and a
//! socket handed over by a resume, waiting for the session to take it.
//!
//! The messages the host sent and the client has not acknowledged are kept by the connection's
//! outgoing side (see `outbound`), which writes them again on resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::journal::{PublishMark, Sequencer, SessionJournal};
use super::outbound::{Compression, Outbound, QueueError};

/// Bytes of a session's secret.
const SECRET_BYTES: usize = 16;

/// A socket that resumes the session: its halves, what was read past the resume request, and
/// how many of the host's messages the client says it has received.
#[derive(Debug)]
pub struct Handover {
    pub read: OwnedReadHalf,
    pub buffered: BytesMut,
    pub write: OwnedWriteHalf,
    pub received: u64,
    /// permessage-deflate as negotiated in the resume's handshake.
    pub compression: Option<Compression>,
}

/// The session of one connection.
#[derive(Debug)]
pub struct Session {
    secret: [u8; SECRET_BYTES],
    /// The client's messages handed to the function, in all.
    handled: AtomicU64,
    /// A resume's socket, until the session takes it.
    handover: Mutex<Option<Handover>>,
    /// The subprotocol on-connect chose, confirmed again to a resuming client that offers it.
    pub subprotocol: Option<Box<str>>,
    /// In a cluster: the journal its messages go through, and their order on the way back.
    journaled: Option<Journaled>,
}

/// A session's link to its journal in the cluster.
#[derive(Debug)]
struct Journaled {
    journal: Arc<dyn SessionJournal>,
    sequencer: Mutex<Sequencer>,
    /// A resume on another node took the session over (the claim's number, counting from
    /// 1; 0 while it has not): this node lets it go.
    moved: AtomicU64,
    /// Taking it over: the handled count the node it came from let it go with, and the claim
    /// it answered.
    released: Mutex<Option<(u64, u64)>>,
    released_now: tokio::sync::Notify,
    /// What becomes of the group publishes this node delivers to the session.
    publishes: Mutex<Publishes>,
    /// The node is shutting down: the client is told to resume elsewhere.
    handing_off: std::sync::atomic::AtomicBool,
}

/// What becomes of the group publishes a node delivers to a journaled session. Under one
/// lock with the append, so that once a node stops appending nothing it delivered is
/// appended after it said so.
#[derive(Debug)]
enum Publishes {
    Appending,
    /// Taking it over: held until the node it came from let it go, then appended after
    /// everything that node appended, so each sender's stay in order.
    Holding(Vec<HeldPublish>),
    /// The session moved away or ended here.
    Stopped,
}

/// A group publish held while a session is taken over.
#[derive(Debug)]
pub struct HeldPublish {
    pub group: Box<str>,
    pub mark: PublishMark,
    pub frame: Outbound,
}

/// Most group publishes held while a session is taken over; past it they are appended at
/// once (the node it came from is far behind, or gone).
const MAX_HELD: usize = 65_536;

impl Journaled {
    fn new(journal: Arc<dyn SessionJournal>, sequencer: Sequencer, holding: bool) -> Self {
        Self {
            journal,
            sequencer: Mutex::new(sequencer),
            moved: AtomicU64::new(0),
            released: Mutex::new(None),
            released_now: tokio::sync::Notify::new(),
            handing_off: std::sync::atomic::AtomicBool::new(false),
            publishes: Mutex::new(if holding {
                Publishes::Holding(Vec::new())
            } else {
                Publishes::Appending
            }),
        }
    }
}

impl Session {
    /// A new session with a fresh secret.
    ///
    /// # Panics
    /// If the operating system's random source fails, which leaves no safe way to go on.
    pub fn new(subprotocol: Option<Box<str>>) -> Self {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).expect("the OS random source failed");
        Self {
            secret,
            handled: AtomicU64::new(0),
            handover: Mutex::new(None),
            subprotocol,
            journaled: None,
        }
    }

    /// A session taken over from another node: its secret (as the client proved it) and its
    /// journal, whose messages it holds until its connection starts them (see
    /// `Connection::start_journaled`); how many of the client's messages were handled is set
    /// once the node it left says (see [`Session::set_handled`]).
    pub fn taken_over(
        secret: &str,
        subprotocol: Option<Box<str>>,
        journal: Arc<dyn SessionJournal>,
    ) -> Option<Self> {
        let mut bytes = [0u8; SECRET_BYTES];
        decode_secret(secret, &mut bytes)?;
        Some(Self {
            secret: bytes,
            handled: AtomicU64::new(0),
            handover: Mutex::new(None),
            subprotocol,
            journaled: Some(Journaled::new(journal, Sequencer::waiting(), true)),
        })
    }

    /// Makes a new session journaled: its messages go through `journal`, numbered from 1.
    pub fn journaled(mut self, journal: Arc<dyn SessionJournal>) -> Self {
        self.journaled = Some(Journaled::new(journal, Sequencer::starting_at(1), false));
        self
    }

    /// The journal, for a session in a cluster.
    pub fn journal(&self) -> Option<&Arc<dyn SessionJournal>> {
        self.journaled.as_ref().map(|j| &j.journal)
    }

    /// The order the journal's messages are delivered in; `None` for a session of one node.
    pub fn sequencer(&self) -> Option<&Mutex<Sequencer>> {
        self.journaled.as_ref().map(|j| &j.sequencer)
    }

    /// Notes that a resume on another node took the session over.
    pub fn move_away(&self, claim: u64) {
        if let Some(journaled) = &self.journaled {
            journaled.moved.store(claim.max(1), Ordering::Release);
        }
    }

    /// The node is shutting down: the session is handed over to whichever node its client
    /// resumes on. False for a session of one node, which ends at shutdown.
    pub fn hand_off(&self) -> bool {
        match &self.journaled {
            Some(journaled) => {
                journaled.handing_off.store(true, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Whether the node is handing the session over (see [`Session::hand_off`]).
    pub fn is_handing_off(&self) -> bool {
        self.journaled
            .as_ref()
            .is_some_and(|j| j.handing_off.load(Ordering::Acquire))
    }

    /// The claim that took the session to another node, if one did.
    pub fn moved_by(&self) -> Option<u64> {
        let claim = self.journaled.as_ref()?.moved.load(Ordering::Acquire);
        (claim != 0).then_some(claim)
    }

    /// The node this session was taken over from let it go, having handled `handled` of the
    /// client's messages.
    pub fn note_released(&self, handled: u64, claim: u64) {
        if let Some(journaled) = &self.journaled {
            *journaled.released.lock() = Some((handled, claim));
            journaled.released_now.notify_waiters();
        }
    }

    /// Waits (at most `timeout`) for the node this session was taken over from to let it go
    /// after `claim`; its handled count, or `None` if it did not say in time (it died, or
    /// Redis is away).
    pub async fn released(&self, claim: u64, timeout: std::time::Duration) -> Option<u64> {
        let journaled = self.journaled.as_ref()?;
        tokio::time::timeout(timeout, async {
            loop {
                let notified = journaled.released_now.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some((handled, answered)) = *journaled.released.lock()
                    && answered == claim
                {
                    return handled;
                }
                notified.await;
            }
        })
        .await
        .ok()
    }

    /// Delivers a group publish through the journal: `append` now, or later while the
    /// session is being taken over; refused once this node stopped delivering to it.
    pub fn publish_through(
        &self,
        group: &str,
        mark: PublishMark,
        frame: Outbound,
        append: impl FnOnce(&Outbound) -> Result<(), QueueError>,
    ) -> Result<(), QueueError> {
        let Some(journaled) = &self.journaled else {
            return append(&frame);
        };
        let mut publishes = journaled.publishes.lock();
        match &mut *publishes {
            Publishes::Appending => append(&frame),
            Publishes::Holding(held) if held.len() < MAX_HELD => {
                held.push(HeldPublish {
                    group: group.into(),
                    mark,
                    frame,
                });
                Ok(())
            }
            Publishes::Holding(_) => append(&frame),
            Publishes::Stopped => Err(QueueError::Closing),
        }
    }

    /// Stops holding group publishes: `append` gets each one held, in order, and publishes
    /// that arrive meanwhile wait until it is done.
    pub fn stop_holding(&self, mut append: impl FnMut(HeldPublish)) {
        let Some(journaled) = &self.journaled else {
            return;
        };
        let mut publishes = journaled.publishes.lock();
        if let Publishes::Holding(held) = std::mem::replace(&mut *publishes, Publishes::Appending) {
            for publish in held {
                append(publish);
            }
        }
    }

    /// This node delivers no more group publishes to the session (it moved away, or ended):
    /// any delivery under way has been appended when this returns.
    pub fn stop_publishes(&self) {
        if let Some(journaled) = &self.journaled {
            *journaled.publishes.lock() = Publishes::Stopped;
        }
    }

    /// Sets the handled count a session taken over starts from.
    pub fn set_handled(&self, handled: u64) {
        self.handled.fetch_max(handled, Ordering::AcqRel);
    }

    /// Whether a resume on another node took the session over.
    pub fn has_moved(&self) -> bool {
        self.journaled
            .as_ref()
            .is_some_and(|j| j.moved.load(Ordering::Acquire) != 0)
    }

    /// The secret as the client is given it: 32 lower-case hex digits.
    pub fn secret_hex(&self) -> String {
        self.secret.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `presented` is the secret, compared in constant time so a client learns
    /// nothing from how long a refusal takes.
    pub fn is_secret(&self, presented: &str) -> bool {
        let mut bytes = [0u8; SECRET_BYTES];
        if decode_secret(presented, &mut bytes).is_none() {
            return false;
        }
        bytes.ct_eq(&self.secret).into()
    }

    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// One more of the client's messages was handed to the function.
    pub fn note_handled(&self) -> u64 {
        self.handled.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Leaves a resume's socket for the session to take. A socket handed over earlier and not
    /// taken yet is replaced (and closed): the latest resume wins.
    pub fn hand_over(&self, handover: Handover) {
        let replaced = self.handover.lock().replace(handover);
        drop(replaced);
    }

    pub fn has_handover(&self) -> bool {
        self.handover.lock().is_some()
    }

    pub fn take_handover(&self) -> Option<Handover> {
        self.handover.lock().take()
    }
}

/// Reads a secret as the client presents it (hex, any case) into `bytes`.
fn decode_secret(presented: &str, bytes: &mut [u8; SECRET_BYTES]) -> Option<()> {
    if presented.len() != SECRET_BYTES * 2 {
        return None;
    }
    for (slot, pair) in bytes.iter_mut().zip(presented.as_bytes().chunks(2)) {
        *slot = std::str::from_utf8(pair)
            .ok()
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_session_s_own_secret_is_accepted() {
        let session = Session::new(None);
        let secret = session.secret_hex();
        assert_eq!(secret.len(), 32);
        assert!(session.is_secret(&secret));
        assert!(session.is_secret(&secret.to_uppercase()), "hex in any case");
        assert!(!session.is_secret(&Session::new(None).secret_hex()));
        assert!(!session.is_secret(&secret[..30]));
        assert!(!session.is_secret(&format!("{}zz", &secret[..30])));
        assert!(!session.is_secret(""));
    }

    /// A journal that counts the appends it is given.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl SessionJournal for Counting {
        fn append(
            &self,
            _: crate::connections::ConnectionId,
            _: &Outbound,
            _: Option<(&str, PublishMark)>,
        ) -> Result<(), QueueError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn acknowledged(&self, _: crate::connections::ConnectionId, _: u64) {}
        fn handled(&self, _: crate::connections::ConnectionId, _: u64) {}
        fn persisted(&self) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>> {
            Box::pin(async { true })
        }
    }

    #[test]
    fn a_session_being_taken_over_holds_publishes_up_to_its_bound_then_lets_them_through() {
        let journal = Arc::new(Counting::default());
        let secret = Session::new(None).secret_hex();
        let session = Session::taken_over(&secret, None, journal.clone()).expect("a secret");
        assert!(session.is_secret(&secret));
        let frame = || Outbound::Text(bytes::Bytes::from_static(b"p"));
        let appended = || journal.0.load(Ordering::SeqCst);
        let publish = |n: u64| {
            let mark = PublishMark {
                millis: n,
                sequence: 0,
            };
            let id = crate::connections::ConnectionId::random();
            session.publish_through("room", mark, frame(), |frame| {
                journal.append(id, frame, Some(("room", mark)))
            })
        };
        for n in 0..MAX_HELD as u64 {
            assert_eq!(publish(n), Ok(()));
        }
        assert_eq!(appended(), 0, "held while taken over");
        assert_eq!(publish(u64::MAX), Ok(()));
        assert_eq!(appended(), 1, "past the bound, appended at once");
        let mut released = 0;
        session.stop_holding(|_| released += 1);
        assert_eq!(
            released, MAX_HELD,
            "the held ones, once the old node let go"
        );
        assert_eq!(publish(1), Ok(()));
        assert_eq!(appended(), 2, "then each as it comes");
        session.stop_publishes();
        assert_eq!(
            publish(2),
            Err(QueueError::Closing),
            "none after it stopped"
        );
    }

    #[test]
    fn handled_messages_are_counted() {
        let session = Session::new(None);
        assert_eq!(session.handled(), 0);
        assert_eq!(session.note_handled(), 1);
        assert_eq!(session.note_handled(), 2);
        assert_eq!(session.handled(), 2);
    }
}
