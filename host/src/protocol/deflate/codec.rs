//! Compressing and inflating one message (RFC 7692 §7.2), with pooled state.
//!
//! A deflate context is a few hundred kilobytes, so none is kept per connection: a compressor
//! or decompressor is taken from a pool for one message and given back reset. Inflating writes
//! only into room reserved within the message size limit, so a small frame that would inflate
//! past it fails after at most the limit's worth of output, never allocating the whole.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use parking_lot::Mutex;

/// The four bytes every flushed message ends with; the sender removes them, the receiver
/// appends them again (§7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// How much room inflating reserves at a time.
const INFLATE_CHUNK: usize = 16 * 1024;
/// Most pooled contexts of each kind kept for reuse; more are dropped after use.
const POOL_SIZE: usize = 32;
/// Compression level: zlib's default. On chat-sized JSON the fastest level leaves messages
/// some 15% larger for little saving in time, each message being compressed on its own.
const LEVEL: u32 = 6;

/// Compressors by window bits (index `bits - 9`).
static COMPRESSORS: [Mutex<Vec<Compress>>; 7] = [const { Mutex::new(Vec::new()) }; 7];
/// Decompressors: one with a 32 KiB window inflates what any window produced.
static DECOMPRESSORS: Mutex<Vec<Decompress>> = Mutex::new(Vec::new());

/// Compresses one message made of `parts` (a session's type byte and the payload, say) with
/// a window of `window_bits` (9 to 15), as permessage-deflate sends it: without the tail.
pub fn deflate(parts: &[&[u8]], window_bits: u8) -> Vec<u8> {
    let bits = window_bits.clamp(9, 15);
    let pool = &COMPRESSORS[usize::from(bits - 9)];
    let mut compressor = pool
        .lock()
        .pop()
        .unwrap_or_else(|| Compress::new_with_window_bits(Compression::new(LEVEL), false, bits));
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let mut out = Vec::with_capacity(total / 2 + 64);
    for part in parts {
        run_compressor(&mut compressor, part, &mut out, FlushCompress::None);
    }
    run_compressor(&mut compressor, &[], &mut out, FlushCompress::Sync);
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    compressor.reset();
    let mut pooled = pool.lock();
    if pooled.len() < POOL_SIZE {
        pooled.push(compressor);
    }
    out
}

/// Feeds all of `input` to the compressor, growing `out` as needed.
fn run_compressor(
    compressor: &mut Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) {
    loop {
        if out.len() == out.capacity() {
            out.reserve((input.len() / 2 + 64).max(256));
        }
        let spare = out.capacity() - out.len();
        let (before_in, before_out) = (compressor.total_in(), out.len());
        // An in-memory compressor only fails on misuse, which this loop does not do; stop
        // rather than spin if it ever does.
        if compressor.compress_vec(input, out, flush).is_err() {
            return;
        }
        input = &input[(compressor.total_in() - before_in) as usize..];
        // With room left over, the compressor holds nothing more to write.
        if input.is_empty() && out.len() - before_out < spare {
            return;
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// It inflates to more than the message size limit.
    #[error("message larger than {0} bytes once inflated")]
    TooLarge(usize),
    /// It is not valid deflate data.
    #[error("invalid compressed data")]
    Corrupt,
}

/// Inflates one compressed message, fragment by fragment, holding a pooled decompressor only
/// while a message is under way.
#[derive(Default)]
pub struct Inflater {
    decompressor: Option<Decompress>,
    /// The deflate stream ended (a final block) before the message did.
    ended: bool,
}

impl Inflater {
    /// Inflates the next fragment of a message onto `out`, which must not grow past `limit`.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.run(input, out, limit)
    }

    /// Ends the message: inflates what the sender's flush left, and releases the decompressor
    /// for the next message (of any connection).
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = self.run(&TAIL, out, limit);
        self.release();
        result
    }

    /// Gives the decompressor back, reset, when a message is abandoned or done.
    pub fn release(&mut self) {
        self.ended = false;
        if let Some(mut decompressor) = self.decompressor.take() {
            decompressor.reset(false);
            let mut pooled = DECOMPRESSORS.lock();
            if pooled.len() < POOL_SIZE {
                pooled.push(decompressor);
            }
        }
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.ended {
            // Whatever follows a final block, the tail included, adds nothing to the message.
            return Ok(());
        }
        let decompressor = self.decompressor.get_or_insert_with(|| {
            DECOMPRESSORS
                .lock()
                .pop()
                .unwrap_or_else(|| Decompress::new_with_window_bits(false, 15))
        });
        loop {
            // Room is reserved only within the limit, plus one byte to tell "exactly the
            // limit" from "more": inflating writes only into reserved room.
            let allowed = (limit + 1).saturating_sub(out.len());
            if allowed == 0 {
                return Err(InflateError::TooLarge(limit));
            }
            if out.len() == out.capacity() {
                out.reserve_exact(allowed.min(INFLATE_CHUNK));
            }
            let spare = out.capacity() - out.len();
            let (before_in, before_out) = (decompressor.total_in(), out.len());
            let status = decompressor
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let consumed = (decompressor.total_in() - before_in) as usize;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(InflateError::TooLarge(limit));
            }
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            let produced = out.len() - before_out;
            // With room left over, the decompressor holds nothing more to write.
            if input.is_empty() && produced < spare {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        inflater.inflate(compressed, &mut out, limit)?;
        inflater.finish(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn messages_round_trip_at_every_window_and_size() {
        let line = b"{\"user\":\"ann\",\"text\":\"hello\"}";
        let text: Vec<u8> = line.iter().copied().cycle().take(100_000).collect();
        for bits in 9..=15 {
            for len in [0, 1, 50, 1000, 100_000] {
                let compressed = deflate(&[&text[..len]], bits);
                assert!(!compressed.ends_with(&TAIL), "the tail is removed");
                assert_eq!(
                    inflate_all(&compressed, 1 << 20).unwrap(),
                    &text[..len],
                    "{bits} {len}"
                );
            }
        }
        let parts = deflate(&[b"m", &text[..500]], 15);
        let mut expected = b"m".to_vec();
        expected.extend_from_slice(&text[..500]);
        assert_eq!(inflate_all(&parts, 1 << 20).unwrap(), expected);
    }

    #[test]
    fn a_message_inflated_in_fragments_is_the_same_message() {
        let text = "the quick brown fox ".repeat(500);
        let compressed = deflate(&[text.as_bytes()], 15);
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        for piece in compressed.chunks(7) {
            inflater.inflate(piece, &mut out, 1 << 20).unwrap();
        }
        inflater.finish(&mut out, 1 << 20).unwrap();
        assert_eq!(out, text.as_bytes());
    }

    #[test]
    fn a_bomb_stops_at_the_limit_without_allocating_its_size() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = deflate(&[&zeros], 15);
        assert!(
            bomb.len() < 1 << 20,
            "50 MiB of zeros compress to {} bytes",
            bomb.len()
        );
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        let limit = 1 << 20;
        assert_eq!(
            inflater.inflate(&bomb, &mut out, limit),
            Err(InflateError::TooLarge(limit))
        );
        assert!(
            out.capacity() <= limit + INFLATE_CHUNK,
            "{}",
            out.capacity()
        );
        assert_eq!(
            inflate_all(&deflate(&[&zeros[..limit]], 15), limit)
                .unwrap()
                .len(),
            limit
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            inflate_all(&[0xff; 32], 1 << 20),
            Err(InflateError::Corrupt)
        );
    }
}
