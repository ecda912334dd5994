//! The messages a session client sent and the host has not yet confirmed handling: the protocol
//! obliges the client to keep each until an `a<handled>` or `r<handled>` covers it, and to send
//! the rest again after a resume.
//!
//! Messages are kept already framed (type byte included) in reference-counted buffers, so
//! keeping one and sending it again do not copy it.

use std::collections::VecDeque;

use crate::transport::Data;

/// A confirmation the host could not have sent truthfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadConfirmation {
    #[error("the host confirmed {handled} messages, but only {sent} were sent")]
    BeyondSent { handled: u64, sent: u64 },
    #[error("the host confirmed {handled} messages after confirming {confirmed}")]
    Backwards { handled: u64, confirmed: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Messages numbered `confirmed + 1 ..= sent`, in order.
    kept: VecDeque<Data>,
    /// How many the host has confirmed handling.
    confirmed: u64,
    /// How many were numbered, that is written or about to be written.
    sent: u64,
}

impl Outbox {
    /// Numbers the next message and keeps it.
    pub(crate) fn push(&mut self, framed: Data) {
        self.sent += 1;
        self.kept.push_back(framed);
    }

    /// An acknowledgement (`a<handled>`): the messages it covers are dropped. One older than
    /// what is already confirmed changes nothing: the host may replay acknowledgements it
    /// queued before a resume, after the resume's own `r<handled>`.
    pub(crate) fn acknowledge(&mut self, handled: u64) -> Result<(), BadConfirmation> {
        if handled > self.sent {
            return Err(BadConfirmation::BeyondSent {
                handled,
                sent: self.sent,
            });
        }
        if handled <= self.confirmed {
            return Ok(());
        }
        // Both bounds are checked above, so this fits in the kept queue's length.
        let newly = usize::try_from(handled - self.confirmed).unwrap_or(usize::MAX);
        self.kept.drain(..newly.min(self.kept.len()));
        self.confirmed = handled;
        Ok(())
    }

    /// A resume's `r<handled>`: like an acknowledgement, but the host's count going backwards
    /// here means it lost messages it had confirmed handling.
    pub(crate) fn resume_at(&mut self, handled: u64) -> Result<(), BadConfirmation> {
        if handled < self.confirmed {
            return Err(BadConfirmation::Backwards {
                handled,
                confirmed: self.confirmed,
            });
        }
        self.acknowledge(handled)
    }

    /// The messages still kept, oldest first: after a resume they are sent again.
    pub(crate) fn unconfirmed(&self) -> impl Iterator<Item = &Data> {
        self.kept.iter()
    }

    pub(crate) fn unconfirmed_len(&self) -> u64 {
        self.sent - self.confirmed
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn outbox_of(count: usize) -> Outbox {
        let mut outbox = Outbox::default();
        for n in 1..=count {
            outbox.push(text(&n.to_string()));
        }
        outbox
    }

    fn text(text: &str) -> Data {
        Data::Text(Bytes::from(text.to_owned()))
    }

    fn kept(outbox: &Outbox) -> Vec<String> {
        let text = |message: &Data| match message {
            Data::Text(text) => String::from_utf8(text.to_vec()).unwrap(),
            Data::Binary(_) => panic!("only text was kept"),
        };
        outbox.unconfirmed().map(text).collect()
    }

    #[test]
    fn keeps_what_is_not_confirmed_in_order() {
        let mut outbox = outbox_of(5);
        outbox.acknowledge(2).unwrap();
        assert_eq!(kept(&outbox), ["3", "4", "5"]);
        outbox.acknowledge(2).unwrap();
        outbox.acknowledge(1).unwrap();
        assert_eq!(
            outbox.unconfirmed_len(),
            3,
            "an older acknowledgement changes nothing"
        );
        outbox.resume_at(4).unwrap();
        assert_eq!(kept(&outbox), ["5"]);
        outbox.acknowledge(5).unwrap();
        assert!(kept(&outbox).is_empty());
        outbox.push(text("6"));
        assert_eq!(kept(&outbox), ["6"]);
    }

    #[test]
    fn refuses_confirmations_that_cannot_be_true() {
        let mut outbox = outbox_of(3);
        assert_eq!(
            outbox.acknowledge(4),
            Err(BadConfirmation::BeyondSent {
                handled: 4,
                sent: 3
            })
        );
        assert_eq!(
            outbox.resume_at(4),
            Err(BadConfirmation::BeyondSent {
                handled: 4,
                sent: 3
            })
        );
        outbox.acknowledge(2).unwrap();
        assert_eq!(
            outbox.resume_at(1),
            Err(BadConfirmation::Backwards {
                handled: 1,
                confirmed: 2
            })
        );
        assert_eq!(kept(&outbox), ["3"], "a refused confirmation drops nothing");
    }
}
