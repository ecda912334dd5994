//! Category 9, limits and large messages: messages up to the host's limit come back
//! whole, however they are fragmented; a larger one closes the connection with 1009 ("a
//! message that is too big for it to process", RFC 6455 §7.4.1), counted over the whole
//! message and as soon as the limit is passed.

use super::{MESSAGE_TOO_BIG, binary_payload, echo_host, text_payload};
use crate::support::{Host, RawFrame, fragmented, op};

/// A small limit keeps these tests fast; the default of 1 MiB is covered by framing.
const LIMIT: usize = 64 * 1024;

async fn host_with_a_64_kib_limit() -> Host {
    Host::builder()
        .function("echo")
        .max_message_size("64KiB")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_of_exactly_the_limit_echoes_in_one_frame_or_in_fragments() {
    let host = host_with_a_64_kib_limit().await;
    let mut socket = host.raw_connect("echo").await;
    let binary = binary_payload(LIMIT);
    let text = text_payload(LIMIT);

    socket.send(RawFrame::binary(&binary[..])).await;
    socket.expect_binary(&binary).await;

    socket.send(RawFrame::text(text.as_str())).await;
    socket.expect_text(&text).await;

    let parts: Vec<&[u8]> = binary.chunks(1000).collect();
    socket.send_all(&fragmented(op::BINARY, &parts)).await;
    socket.expect_binary(&binary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_byte_over_the_limit_in_one_frame_is_refused_with_1009() {
    let host = host_with_a_64_kib_limit().await;

    for frame in [
        RawFrame::binary(binary_payload(LIMIT + 1)),
        RawFrame::text(text_payload(LIMIT + 1)),
    ] {
        let mut socket = super::working_connection(&host).await;
        socket.send_all_until_closed(&[frame]).await;
        socket.expect_close(MESSAGE_TOO_BIG).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_announcing_more_than_the_limit_is_refused_before_its_payload() {
    let host = host_with_a_64_kib_limit().await;
    let mut socket = super::working_connection(&host).await;
    // Only the header, with a 64-bit length of the limit plus one and a masking key: the
    // length alone shows the message is too big, so the host need not wait for (or buffer)
    // the payload.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(LIMIT as u64 + 1).to_be_bytes());
    header.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);

    socket.send_bytes(&header).await;

    socket.expect_close(MESSAGE_TOO_BIG).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_byte_over_the_limit_in_small_fragments_is_refused_with_1009() {
    let host = host_with_a_64_kib_limit().await;
    let mut socket = super::working_connection(&host).await;
    // 64 fragments of 1 KiB reach the limit exactly; the final one-byte fragment passes it.
    let message = binary_payload(LIMIT + 1);

    let parts: Vec<&[u8]> = message.chunks(1024).collect();
    assert_eq!(
        parts.len(),
        65,
        "the last fragment holds the one byte too many"
    );
    socket
        .send_all_until_closed(&fragmented(op::BINARY, &parts))
        .await;

    socket.expect_close(MESSAGE_TOO_BIG).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfinished_message_is_refused_as_soon_as_it_passes_the_limit() {
    let host = host_with_a_64_kib_limit().await;
    let mut socket = super::working_connection(&host).await;
    // The same fragments, none of them final: the host must not wait for the end of a
    // message it already knows to be too big.
    let message = text_payload(LIMIT + 1);

    let frames: Vec<RawFrame> = message
        .as_bytes()
        .chunks(1024)
        .enumerate()
        .map(|(index, part)| {
            let opcode = if index == 0 {
                op::TEXT
            } else {
                op::CONTINUATION
            };
            RawFrame::new(opcode, part).not_final()
        })
        .collect();
    socket.send_all_until_closed(&frames).await;

    socket.expect_close(MESSAGE_TOO_BIG).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_mib_message_at_the_default_limit_echoes_in_fragments_of_every_size() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let binary = binary_payload(1024 * 1024);
    let text = text_payload(1024 * 1024);

    for fragment_len in [64, 4 * 1024, 64 * 1024, 256 * 1024] {
        socket.label_case(format!("fragments of {fragment_len} bytes"));
        let parts: Vec<&[u8]> = binary.chunks(fragment_len).collect();
        socket.send_all(&fragmented(op::BINARY, &parts)).await;
        socket.expect_binary(&binary).await;

        let parts: Vec<&[u8]> = text.as_bytes().chunks(fragment_len).collect();
        socket.send_all(&fragmented(op::TEXT, &parts)).await;
        socket.expect_text(&text).await;
    }
}
