//! permessage-deflate (RFC 7692) for one connection: what was agreed at the handshake
//! ([`agreement`]), and compressing and inflating its messages ([`codec`]).
//!
//! The client never keeps compression context between its own messages (always allowed), so
//! it holds no compressor; it holds a decompressor only for a server that keeps context
//! between its messages. wsfn never does, so against wsfn a connection holds nothing.

pub(crate) mod agreement;
mod codec;

use flate2::Decompress;

pub(crate) use agreement::{Agreement, OFFER};
pub(crate) use codec::InflateError;

/// The compression state of one connection.
pub(crate) struct Deflate {
    agreement: Agreement,
    /// Messages shorter than this go uncompressed.
    threshold: usize,
    /// The server's context, for a server that keeps it between messages.
    context: Option<Box<Decompress>>,
}

impl Deflate {
    pub(crate) fn new(agreement: Agreement, threshold: usize) -> Self {
        let context = agreement
            .server_takeover
            .then(|| Box::new(Decompress::new(false)));
        Self {
            agreement,
            threshold,
            context,
        }
    }

    /// Hands `then` the compressed form of `payload`, or `None` when it goes as it is: under
    /// the threshold, not smaller once compressed, or when the server asked for a window of
    /// 256 bytes, which zlib cannot produce.
    pub(crate) fn compressed<R>(&self, payload: &[u8], then: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let bits = self.agreement.client_window_bits;
        if payload.len() < self.threshold.max(1) || bits < 9 {
            return then(None);
        }
        codec::compressed(payload, bits, then)
    }

    /// Inflates a compressed message of at most `limit` bytes.
    pub(crate) fn inflate(
        &mut self,
        compressed: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, InflateError> {
        match self.context.as_deref_mut() {
            Some(context) => codec::inflate(context, compressed, limit),
            None => codec::inflate_alone(compressed, limit),
        }
    }
}
