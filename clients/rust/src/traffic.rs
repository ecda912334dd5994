//! Counting the bytes a client's sockets carry, as TCP sees them: handshakes, frame headers,
//! compressed payloads, pings and session acknowledgements included. For measuring what a
//! protocol feature costs on the wire (compression, sessions), where message counts say little.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes written to and read from the sockets of every session given this counter through
/// [`Options::traffic`](crate::Options::traffic); clones count into the same totals.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written to the sockets so far.
    pub fn sent(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    /// Bytes read from the sockets so far.
    pub fn received(&self) -> u64 {
        self.counts.received.load(Ordering::Relaxed)
    }

    pub(crate) fn add_sent(&self, bytes: usize) {
        self.counts.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_received(&self, bytes: usize) {
        self.counts
            .received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
