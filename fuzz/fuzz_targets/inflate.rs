//! Structure-aware: permessage-deflate as the host receives it. A message is compressed with
//! a chosen window, cut into fragments, maybe corrupted or replaced by raw bytes, and inflated
//! fragment by fragment against a limit; offers of the extension are negotiated.
//!
//! Asserted: inflating never produces, nor reserves room for, more than the limit (plus the
//! one byte that tells "exactly the limit" from "more"), whatever the input; a message within
//! the limit comes back exactly; one over it is refused as too large; the answer to an offer
//! names a window the host can compress with (9 to 15), and is itself an acceptable offer
//! with the same result.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsfn_host::protocol::deflate::{InflateError, Inflater, deflate, negotiate};

#[derive(Arbitrary, Debug)]
struct Input {
    /// The message size limit, 0 to 65535 bytes.
    limit: u16,
    message: Message,
    window_bits: u8,
    cuts: Vec<u16>,
    /// Flip bits of one byte of the compressed data.
    corrupt: Option<(u16, u8)>,
    /// `Sec-WebSocket-Extensions` header values a client sends.
    offers: Vec<String>,
}

#[derive(Arbitrary, Debug)]
enum Message {
    Bytes(Vec<u8>),
    /// Compresses well: inflates to many times its compressed size.
    Repeated {
        byte: u8,
        count: u16,
        times: u8,
    },
    /// Not deflate's output at all.
    Raw(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.limit);
    let (original, mut compressed) = match &input.message {
        Message::Bytes(bytes) => (Some(bytes.clone()), deflate(&[bytes], input.window_bits)),
        Message::Repeated { byte, count, times } => {
            let part = vec![*byte; usize::from(*count)];
            let parts: Vec<&[u8]> = (0..=*times).map(|_| &part[..]).collect();
            (Some(parts.concat()), deflate(&parts, input.window_bits))
        }
        Message::Raw(bytes) => (None, bytes.clone()),
    };
    let corrupted = match input.corrupt {
        Some((at, bits)) if bits != 0 && !compressed.is_empty() => {
            let at = usize::from(at) % compressed.len();
            compressed[at] ^= bits;
            true
        }
        _ => false,
    };

    let mut inflater = Inflater::default();
    let mut out = Vec::new();
    let result = inflate_in_fragments(&mut inflater, &compressed, &input.cuts, &mut out, limit);
    assert!(
        out.len() <= limit + 1 && out.capacity() <= limit + 1,
        "inflating held {} bytes ({} reserved) under a limit of {limit}",
        out.len(),
        out.capacity()
    );
    if let (Some(original), false) = (original, corrupted) {
        if original.len() <= limit {
            assert_eq!(result, Ok(()));
            assert!(out == original, "inflated data differs from the message");
        } else {
            assert_eq!(result, Err(InflateError::TooLarge(limit)));
        }
    }
    if result.is_ok() {
        assert!(out.len() <= limit);
    }

    check_negotiation(&input.offers);
});

fn inflate_in_fragments(
    inflater: &mut Inflater,
    compressed: &[u8],
    cuts: &[u16],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), InflateError> {
    let mut offsets: Vec<usize> = cuts
        .iter()
        .take(8)
        .map(|&cut| usize::from(cut) % (compressed.len() + 1))
        .collect();
    offsets.sort_unstable();
    let mut start = 0;
    for offset in offsets {
        if let Err(error) = inflater.inflate(&compressed[start..offset], out, limit) {
            inflater.release();
            return Err(error);
        }
        start = offset;
    }
    inflater.inflate(&compressed[start..], out, limit)?;
    inflater.finish(out, limit)
}

fn check_negotiation(offers: &[String]) {
    let Some((deflate, answer)) = negotiate(offers.iter().map(String::as_str)) else {
        return;
    };
    assert!((9..=15).contains(&deflate.server_window_bits));
    assert!(answer.starts_with("permessage-deflate"));
    assert!(http::HeaderValue::from_str(&answer).is_ok());
    // The answer is itself an offer the host accepts, the same way.
    let again = negotiate([answer.as_str()]);
    assert_eq!(
        again,
        Some((deflate, answer.clone())),
        "answer {answer:?} read back"
    );
}
