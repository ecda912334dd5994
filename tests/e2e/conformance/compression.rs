//! permessage-deflate (RFC 7692), after Autobahn's categories 12 (compressed messages of every
//! size, whole and fragmented, with a browser's offer) and 13 (the same under each parameter
//! combination of the offer), plus what a server must refuse: RSV1 on a control frame or a
//! continuation, data that is not deflate, and a small frame that inflates past the message
//! limit.
//!
//! The client side compresses with flate2 itself, one message at a time (the host asks for
//! `client_no_context_takeover`), and inflates what the host sends back.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR, echo_host};
use crate::support::{RSV1, RawFrame, RawSocket, op};

/// What Chromium and Firefox offer.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Compresses one message as permessage-deflate sends it: raw deflate, flushed, without the
/// four-byte tail.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compressor = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    loop {
        let before = compressor.total_in() as usize;
        out.reserve(payload.len() + 64);
        compressor
            .compress_vec(&payload[before..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if compressor.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(
        out.ends_with(&[0, 0, 0xff, 0xff]),
        "a sync flush ends with the tail"
    );
    out.truncate(out.len() - 4);
    out
}

/// Inflates a message the host compressed.
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut decompressor = Decompress::new(false);
    let mut out = Vec::with_capacity(input.len() * 4 + 1024);
    loop {
        let before = decompressor.total_in() as usize;
        decompressor
            .decompress_vec(&input[before..], &mut out, FlushDecompress::Sync)
            .expect("the host's compressed message inflates");
        if decompressor.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// JSON-like text, as chat traffic is: compressible, valid UTF-8.
fn json_text(len: usize) -> Vec<u8> {
    let line = r#"{"type":"message","user":"ann","text":"héllo, wörld"},"#.as_bytes();
    let mut text: Vec<u8> = line.iter().copied().cycle().take(len).collect();
    // Never cut a two-byte character in half at the end.
    while std::str::from_utf8(&text).is_err() {
        text.pop();
    }
    text
}

async fn connect_offering(host: &crate::support::Host, offer: &str) -> (RawSocket, Option<String>) {
    RawSocket::connect_offering(host.addr(), "echo", Some(offer)).await
}

/// Sends `payload` compressed, split over frames of at most `fragment` bytes (0: one frame),
/// and expects it back as the echo: compressed when the host negotiated and it is large
/// enough, the same bytes once inflated.
async fn echo_compressed(socket: &mut RawSocket, opcode: u8, payload: &[u8], fragment: usize) {
    let compressed = deflate(payload);
    let frames: Vec<RawFrame> = if fragment == 0 || compressed.len() <= fragment {
        vec![RawFrame::new(opcode, compressed).rsv(RSV1)]
    } else {
        let parts: Vec<&[u8]> = compressed.chunks(fragment).collect();
        let last = parts.len() - 1;
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let frame = if i == 0 {
                    RawFrame::new(opcode, part.to_vec()).rsv(RSV1)
                } else {
                    RawFrame::continuation(part.to_vec())
                };
                if i == last { frame } else { frame.not_final() }
            })
            .collect()
    };
    socket.send_all(&frames).await;
    let echoed = socket.next_frame().await;
    assert!(echoed.fin && echoed.opcode == opcode, "{echoed}");
    let received = if echoed.compressed {
        inflate(&echoed.payload)
    } else {
        echoed.payload.clone()
    };
    assert_eq!(
        received.len(),
        payload.len(),
        "the echo of a {}-byte message",
        payload.len()
    );
    assert!(received == payload, "the echo differs from what was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offers_of_category_13_are_answered_through_the_handshake() {
    let host = echo_host().await;
    let window_15 = format!("{BOTH}; server_max_window_bits=15");
    let cases: [(&str, Option<&str>); 8] = [
        (BROWSER_OFFER, Some(BOTH)),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            Some(BOTH),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover",
            Some(BOTH),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
            None,
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15",
            Some(&window_15),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8",
            None,
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=15",
            Some(&window_15),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8, \
             permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, \
             permessage-deflate; client_no_context_takeover; client_max_window_bits",
            Some(BOTH),
        ),
    ];
    for (offer, expected) in cases {
        let (mut socket, answered) = connect_offering(&host, offer).await;
        assert_eq!(answered.as_deref(), expected, "offer: {offer}");
        // Whatever was agreed, messages go through.
        let text = json_text(2000);
        if answered.is_some() {
            echo_compressed(&mut socket, op::TEXT, &text, 0).await;
        } else {
            socket.send(RawFrame::text(text.clone())).await;
            socket.expect_text(&text).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_messages_of_every_size_echo_whole_and_fragmented() {
    let host = echo_host().await;
    for fragment in [0, 256, 1024, 4096] {
        let (mut socket, answered) = connect_offering(&host, BROWSER_OFFER).await;
        assert!(answered.is_some());
        socket.label_case(format!("fragments of {fragment} bytes"));
        for len in [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072] {
            echo_compressed(&mut socket, op::TEXT, &json_text(len), fragment).await;
            let binary: Vec<u8> = (0..len).map(|i| (i * 7 % 13) as u8).collect();
            echo_compressed(&mut socket, op::BINARY, &binary, fragment).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_offer_of_category_13_carries_messages_under_its_parameters() {
    let host = echo_host().await;
    for offer in [
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=12",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=15",
    ] {
        let (mut socket, answered) = connect_offering(&host, offer).await;
        assert!(answered.is_some(), "{offer}");
        socket.label_case(offer);
        for len in [64, 1024, 65536] {
            echo_compressed(&mut socket, op::TEXT, &json_text(len), 0).await;
            echo_compressed(&mut socket, op::TEXT, &json_text(len), 512).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn small_messages_go_uncompressed_and_large_ones_compressed() {
    let host = echo_host().await;
    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    socket.send(RawFrame::text(b"tiny".to_vec())).await;
    let small = socket.next_frame().await;
    assert!(!small.compressed && small.payload == b"tiny", "{small}");
    socket.send(RawFrame::text(json_text(4096))).await;
    let large = socket.next_frame().await;
    assert!(large.compressed, "a 4 KiB message is compressed: {large}");
    assert!(
        large.payload.len() < 1024,
        "{} bytes on the wire",
        large.payload.len()
    );
    assert_eq!(inflate(&large.payload), json_text(4096));
}

#[tokio::test(flavor = "multi_thread")]
async fn rsv1_on_a_control_frame_or_a_continuation_is_a_protocol_error() {
    let host = echo_host().await;
    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    socket.send(RawFrame::ping(b"x".to_vec()).rsv(RSV1)).await;
    socket.expect_close(PROTOCOL_ERROR).await;

    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    let compressed = deflate(&json_text(1000));
    let (head, tail) = compressed.split_at(compressed.len() / 2);
    socket
        .send_all(&[
            RawFrame::text(head.to_vec()).rsv(RSV1).not_final(),
            RawFrame::continuation(tail.to_vec()).rsv(RSV1),
        ])
        .await;
    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_that_is_not_deflate_is_invalid_payload() {
    let host = echo_host().await;
    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    socket
        .send(RawFrame::binary(vec![0xff; 64]).rsv(RSV1))
        .await;
    socket.expect_close(INVALID_PAYLOAD).await;
}

/// The host's peak resident memory, in bytes (`VmHWM`).
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in proc status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decompression_bomb_closes_with_1009_without_inflating_it() {
    // A process of its own, so its memory is the host's alone.
    let host = crate::support::Host::builder()
        .function("echo")
        .start_process()
        .await;
    // 512 MiB of zeros: a few hundred kilobytes on the wire, far beyond the 1 MiB limit.
    let bomb = {
        let zeros = vec![0u8; 512 << 20];
        deflate(&zeros)
    };
    assert!(
        bomb.len() < 1 << 20,
        "the bomb fits in one frame: {}",
        bomb.len()
    );
    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    // A message first, so the host's memory has settled at its working size.
    echo_compressed(&mut socket, op::TEXT, &json_text(65536), 0).await;
    let before = peak_memory(host.pid());
    socket.send(RawFrame::binary(bomb).rsv(RSV1)).await;
    socket.expect_close(MESSAGE_TOO_BIG).await;
    let grown = peak_memory(host.pid()).saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the host's peak memory grew by {grown} bytes for a 512 MiB bomb"
    );
    // And the host serves on.
    let (mut socket, _) = connect_offering(&host, BROWSER_OFFER).await;
    echo_compressed(&mut socket, op::TEXT, &json_text(1000), 0).await;
}

/// The next message on `socket` that contains `marker`, inflated if it came compressed, and
/// whether it did.
async fn next_containing(socket: &mut RawSocket, marker: &str) -> (String, bool) {
    loop {
        let frame = socket.next_frame().await;
        let text = if frame.compressed {
            inflate(&frame.payload)
        } else {
            frame.payload.clone()
        };
        let text = String::from_utf8(text).expect("chat sends text");
        if text.contains(marker) {
            return (text, frame.compressed);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_reaches_compressing_and_plain_members_alike() {
    let host = crate::support::Host::builder()
        .function("chat")
        .start()
        .await;
    let connect = |user: &'static str, offer: Option<&'static str>| {
        let addr = host.addr();
        async move {
            let path = format!("chat?room=r&user={user}");
            RawSocket::connect_offering(addr, &path, offer).await.0
        }
    };
    let mut ann = connect("ann", Some(BROWSER_OFFER)).await;
    let mut bob = connect("bob", Some(BROWSER_OFFER)).await;
    let mut cid = connect("cid", None).await;
    let long = "all together now ".repeat(200);
    ann.send(RawFrame::text(long.clone().into_bytes())).await;
    let (to_ann, ann_compressed) = next_containing(&mut ann, "all together").await;
    let (to_bob, bob_compressed) = next_containing(&mut bob, "all together").await;
    let (to_cid, cid_compressed) = next_containing(&mut cid, "all together").await;
    assert!(
        to_ann.contains(&long) && to_ann.contains("\"user\":\"ann\""),
        "{to_ann}"
    );
    assert_eq!(to_ann, to_bob);
    assert_eq!(to_ann, to_cid);
    assert!(ann_compressed && bob_compressed, "both negotiated deflate");
    assert!(!cid_compressed, "cid did not offer it");
}
