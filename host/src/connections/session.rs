//! What a resumable session keeps beyond a plain connection: the secret a client proves it is
//! the session's with, how many of the client's messages the function has handled, and a
//! socket handed over by a resume, waiting for the session to take it.
//!
//! The messages the host sent and the client has not acknowledged are kept by the connection's
//! outgoing side (see `outbound`), which writes them again on resume.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::outbound::Compression;

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
        }
    }

    /// The secret as the client is given it: 32 lower-case hex digits.
    pub fn secret_hex(&self) -> String {
        self.secret.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `presented` is the secret, compared in constant time so a client learns
    /// nothing from how long a refusal takes.
    pub fn is_secret(&self, presented: &str) -> bool {
        let mut bytes = [0u8; SECRET_BYTES];
        if presented.len() != SECRET_BYTES * 2 {
            return false;
        }
        for (slot, pair) in bytes.iter_mut().zip(presented.as_bytes().chunks(2)) {
            let Some(byte) = std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            else {
                return false;
            };
            *slot = byte;
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

    #[test]
    fn handled_messages_are_counted() {
        let session = Session::new(None);
        assert_eq!(session.handled(), 0);
        assert_eq!(session.note_handled(), 1);
        assert_eq!(session.note_handled(), 2);
        assert_eq!(session.handled(), 2);
    }
}
