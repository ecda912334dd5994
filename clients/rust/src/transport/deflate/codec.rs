//! Compressing and inflating one message (RFC 7692 §7.2): raw DEFLATE, ended with a sync
//! flush whose `00 00 ff ff` tail is cut off on the way out and put back on the way in.
//!
//! The compressors and the decompressor that need no context between messages live in a
//! per-thread pool and are reset after each message: one set per thread instead of one per
//! connection, which is what lets ten thousand connections negotiate deflate and cost nothing
//! while idle. Nothing here awaits, so a pooled codec is never held across a task switch.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::agreement::MAX_WINDOW_BITS;

/// What a sync flush ends with; RFC 7692 removes it from every compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's default level, as browsers compress. The fast level 1 uses fixed Huffman codes
/// only, which on messages of a few hundred bytes saves a few percent where this saves a
/// third, and costs about as much per message: resetting the compressor dominates.
const LEVEL: u32 = 6;

/// Why a compressed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InflateError {
    #[error("it inflates past the {0}-byte message limit")]
    TooBig(usize),
    #[error("{0}")]
    Corrupt(String),
}

#[derive(Default)]
struct Pool {
    /// One compressor per window size asked for, each reset after every message.
    compressors: Vec<(u8, Compress)>,
    decompressor: Option<Decompress>,
    /// Where a message is compressed before it is framed.
    scratch: Vec<u8>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Compresses `payload` as one message with a window of `window_bits` (9 to 15) and hands
/// `then` the result, or `None` when compressing would not make the message smaller (it then
/// goes as it is, which RFC 7692 allows for any message).
pub(crate) fn compressed<R>(
    payload: &[u8],
    window_bits: u8,
    then: impl FnOnce(Option<&[u8]>) -> R,
) -> R {
    POOL.with_borrow_mut(|pool| {
        let Pool {
            compressors,
            scratch,
            ..
        } = pool;
        let at = match compressors
            .iter()
            .position(|(bits, _)| *bits == window_bits)
        {
            Some(at) => at,
            None => {
                let level = Compression::new(LEVEL);
                let bits = window_bits.clamp(9, MAX_WINDOW_BITS);
                compressors.push((
                    window_bits,
                    Compress::new_with_window_bits(level, false, bits),
                ));
                compressors.len() - 1
            }
        };
        let compressor = &mut compressors[at].1;
        scratch.clear();
        let done = compress_into(compressor, payload, scratch);
        compressor.reset();
        let smaller = done && scratch.len() < payload.len();
        then(smaller.then_some(scratch.as_slice()))
    })
}

/// Compresses all of `payload` into `out` with a sync flush and cuts the tail off; `false` if
/// zlib failed, which leaves the message to go uncompressed.
fn compress_into(compressor: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(payload.len() / 2 + 64);
    let start = compressor.total_in();
    loop {
        if out.capacity() - out.len() < 16 {
            out.reserve(out.capacity().max(64));
        }
        let consumed = usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX);
        let rest = payload.get(consumed..).unwrap_or_default();
        if compressor
            .compress_vec(rest, out, FlushCompress::Sync)
            .is_err()
        {
            return false;
        }
        let consumed = usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX);
        // zlib finished a flush when it left output space unused.
        if consumed >= payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        return false;
    }
    out.truncate(out.len() - TAIL.len());
    true
}

/// Inflates one message with the pooled decompressor, for a server that keeps no context.
pub(crate) fn inflate_alone(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    POOL.with_borrow_mut(|pool| {
        let decompressor = pool
            .decompressor
            .get_or_insert_with(|| Decompress::new(false));
        let inflated = inflate(decompressor, compressed, limit);
        decompressor.reset(false);
        inflated
    })
}

/// Inflates one message (the payloads of its frames, joined) with `decompressor`, producing
/// at most `limit` bytes: a message that would be longer is refused once `limit + 1` bytes
/// came out, so a small bomb never grows into a large allocation.
pub(crate) fn inflate(
    decompressor: &mut Decompress,
    compressed: &[u8],
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    let ceiling = limit.saturating_add(1);
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(3).max(64).min(ceiling));
    for input in [compressed, &TAIL] {
        let mut offset = 0;
        loop {
            if out.len() == out.capacity() {
                let room = out.capacity().max(64).min(ceiling - out.len());
                out.reserve_exact(room);
            }
            let (read_before, written_before) = (decompressor.total_in(), out.len());
            let status = decompressor
                .decompress_vec(&input[offset..], &mut out, FlushDecompress::Sync)
                .map_err(|error| InflateError::Corrupt(error.to_string()))?;
            let read = usize::try_from(decompressor.total_in() - read_before).unwrap_or(0);
            offset += read;
            if out.len() > limit {
                return Err(InflateError::TooBig(limit));
            }
            if status == Status::StreamEnd {
                // A final block ends the stream; what follows it (the tail) means nothing.
                decompressor.reset(false);
                return Ok(out);
            }
            if offset >= input.len() && out.len() < out.capacity() {
                break;
            }
            if read == 0 && out.len() == written_before {
                return Err(InflateError::Corrupt(
                    "inflating made no progress".to_owned(),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(payload: &[u8], bits: u8) -> Option<Vec<u8>> {
        compressed(payload, bits, |out| out.map(<[u8]>::to_vec))
    }

    /// Text with the repetition of real messages (words, keys), not of one byte.
    fn chat_json(n: usize) -> Vec<u8> {
        let words = [
            "hello", "room", "see", "you", "at", "the", "meeting", "tomorrow",
        ];
        let text: Vec<&str> = (0..n)
            .map(|i| words[(i * 7 + i / 3) % words.len()])
            .collect();
        format!(
            r#"{{"type":"message","user":"ada","text":"{}"}}"#,
            text.join(" ")
        )
        .into_bytes()
    }

    #[test]
    fn inflates_the_examples_of_the_rfc() {
        // RFC 7692 §7.2.3.1: "Hello" compressed, tail removed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_alone(&hello, 100).unwrap(), b"Hello");
        // §7.2.3.3: "Hello" in a stored (uncompressed) block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_alone(&stored, 100).unwrap(), b"Hello");
        // §7.2.3.4: a block with BFINAL set.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_alone(&last, 100).unwrap(), b"Hello");
    }

    #[test]
    fn keeps_the_context_of_a_server_that_takes_it_over() {
        // §7.2.3.2: the second "Hello" refers back to the first.
        let mut context = Decompress::new(false);
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflate(&mut context, &first, 100).unwrap(), b"Hello");
        assert_eq!(inflate(&mut context, &second, 100).unwrap(), b"Hello");
    }

    #[test]
    fn compresses_each_message_on_its_own_at_every_window() {
        let message = chat_json(60);
        for bits in 9..=15 {
            let packed = compress(&message, bits).expect("chat JSON compresses");
            assert!(
                packed.len() < message.len() / 2,
                "{} of {}",
                packed.len(),
                message.len()
            );
            assert!(!packed.ends_with(&TAIL), "the tail is cut off");
            // Each message inflates with a fresh decompressor: no context is carried.
            assert_eq!(
                inflate(&mut Decompress::new(false), &packed, 1 << 20).unwrap(),
                message
            );
            assert_eq!(
                compress(&message, bits).unwrap(),
                packed,
                "the compressor was reset"
            );
        }
    }

    #[test]
    fn leaves_messages_that_would_not_shrink() {
        assert_eq!(compress(b"ab", 15), None);
        let mut random = fastrand::Rng::with_seed(7);
        let noise: Vec<u8> = (0..500).map(|_| random.u8(..)).collect();
        assert_eq!(compress(&noise, 15), None);
    }

    #[test]
    fn stops_a_bomb_at_the_limit() {
        let zeros = vec![0; 10 << 20];
        let mut bomb = Vec::new();
        let mut best = Compress::new(Compression::best(), false);
        assert!(compress_into(&mut best, &zeros, &mut bomb));
        assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
        assert_eq!(
            inflate_alone(&bomb, 1 << 20),
            Err(InflateError::TooBig(1 << 20))
        );
        assert_eq!(
            inflate_alone(&bomb, 10 << 20).unwrap().len(),
            10 << 20,
            "at the limit exactly"
        );
        let pooled = inflate_alone(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5);
        assert_eq!(
            pooled.unwrap(),
            b"Hello",
            "the pooled decompressor was reset"
        );
    }

    #[test]
    fn refuses_what_is_not_deflate() {
        assert!(matches!(
            inflate_alone(&[0xff, 0xff, 0xff], 100),
            Err(InflateError::Corrupt(_))
        ));
    }
}
