//! Category 5, fragmentation (RFC 6455 §5.4): a message may arrive as a first frame without
//! FIN followed by continuation frames, control frames may come between the fragments but
//! are never fragmented themselves, and fragments of different messages never interleave.

use super::{NORMAL_CLOSURE, PROTOCOL_ERROR, binary_payload, echo_host, working_connection};
use crate::support::{RawFrame, fragmented, op};

#[tokio::test(flavor = "multi_thread")]
async fn a_text_message_in_two_fragments_echoes_as_one_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket
        .send_all(&fragmented(op::TEXT, &[b"fragment", b"ed text"]))
        .await;

    socket.expect_text("fragmented text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binary_message_in_two_fragments_echoes_as_one_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket
        .send_all(&fragmented(op::BINARY, &[&[0, 1, 2], &[0xfd, 0xfe, 0xff]]))
        .await;

    socket.expect_binary(&[0, 1, 2, 0xfd, 0xfe, 0xff]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_of_up_to_twenty_fragments_echo_as_one_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let whole = binary_payload(1000);

    for count in 2..=20 {
        // Fragments of uneven sizes, from 1 byte up.
        let cuts: Vec<usize> = (1..count).map(|n| n * n * 1000 / (count * count)).collect();
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([whole.len()]) {
            parts.push(&whole[start..cut]);
            start = cut;
        }
        socket.label_case(format!("{count} fragments"));
        socket.send_all(&fragmented(op::BINARY, &parts)).await;
        socket.expect_binary(&whole).await;

        let text: Vec<String> = (0..count).map(|n| format!("<{n}>")).collect();
        let parts: Vec<&[u8]> = text.iter().map(|t| t.as_bytes()).collect();
        socket.send_all(&fragmented(op::TEXT, &parts)).await;
        socket.expect_text(text.concat()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fragments_written_in_separate_writes_echo_as_one_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    for frame in fragmented(op::TEXT, &[b"one ", b"write ", b"each"]) {
        socket.send(frame).await;
    }

    socket.expect_text("one write each").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_fragments_are_part_of_the_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let cases: [&[&[u8]]; 4] = [
        &[b"", b"first is empty"],
        &[b"middle ", b"", b"is empty"],
        &[b"last is empty", b""],
        &[b"", b"", b""],
    ];

    for parts in cases {
        let whole = parts.concat();
        socket.send_all(&fragmented(op::TEXT, parts)).await;
        socket.expect_text(&whole).await;
        socket.send_all(&fragmented(op::BINARY, parts)).await;
        socket.expect_binary(&whole).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_between_fragments_is_answered_and_the_message_still_echoes() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    // §5.4: "An endpoint MUST be capable of handling control frames in the middle of a
    // fragmented message." The message is only complete after the ping, so its pong must
    // come first.
    socket
        .send_all(&[
            RawFrame::text("before ").not_final(),
            RawFrame::ping("in the middle"),
            RawFrame::continuation("after"),
        ])
        .await;

    socket.expect_pong(b"in the middle").await;
    socket.expect_text("before after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_between_fragments_written_one_byte_at_a_time_is_answered() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket
        .send_in_chunks(
            &[
                RawFrame::binary(*b"chop").not_final(),
                RawFrame::ping("ped"),
                RawFrame::continuation(*b"ped"),
            ],
            1,
        )
        .await;

    socket.expect_pong(b"ped").await;
    socket.expect_binary(b"chopped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pings_between_each_of_five_fragments_are_answered_in_order() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    // Each fragment in its own write, a ping after each but the last.
    for (index, part) in ["one ", "two ", "three ", "four "].into_iter().enumerate() {
        let first = if index == 0 {
            RawFrame::text(part)
        } else {
            RawFrame::continuation(part)
        };
        socket.send(first.not_final()).await;
        socket.send(RawFrame::ping(format!("ping {index}"))).await;
    }
    socket.send(RawFrame::continuation("five")).await;

    for index in 0..4 {
        socket.expect_pong(format!("ping {index}").as_bytes()).await;
    }
    socket.expect_text("one two three four five").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsolicited_pong_between_fragments_is_ignored() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket
        .send_all(&[
            RawFrame::text("a pong ").not_final(),
            RawFrame::pong("ignored"),
            RawFrame::continuation("in between"),
        ])
        .await;

    socket.expect_text("a pong in between").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fragmented_ping_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // §5.5: "Control frames themselves MUST NOT be fragmented."
    socket
        .send_all(&[
            RawFrame::ping("frag").not_final(),
            RawFrame::continuation("mented"),
        ])
        .await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fragmented_pong_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket
        .send_all(&[
            RawFrame::pong("frag").not_final(),
            RawFrame::continuation("mented"),
        ])
        .await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fragmented_close_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // The first fragment alone: a control frame without FIN is wrong as it stands. Sent as
    // bytes because it is no close this client made, so the host's close is still answered.
    socket
        .send_bytes(&RawFrame::close(NORMAL_CLOSURE, b"").not_final().encode())
        .await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_continuation_with_no_message_started_is_a_protocol_error() {
    let host = echo_host().await;
    // Each case with the echo expected before the orphan continuation, if any.
    let cases = [
        (
            "a final continuation",
            vec![RawFrame::continuation("orphan")],
            None,
        ),
        (
            "a non-final continuation",
            vec![RawFrame::continuation("orphan").not_final()],
            None,
        ),
        (
            "continuations forming a whole message",
            fragmented(op::CONTINUATION, &[b"orphan ", b"message"]),
            None,
        ),
        (
            "a continuation right after a complete message",
            vec![RawFrame::text("complete"), RawFrame::continuation("orphan")],
            Some("complete"),
        ),
    ];

    for (case, frames, echo) in cases {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        // §5.4: a continuation belongs to a message begun by a text or binary frame
        // without FIN; there is none to continue.
        socket.send_all(&frames).await;
        if let Some(echo) = echo {
            socket.expect_text(echo).await;
        }
        socket.expect_close(PROTOCOL_ERROR).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_message_inside_an_unfinished_one_is_a_protocol_error() {
    let host = echo_host().await;
    let cases = [
        (
            "text inside text",
            [
                RawFrame::text("started ").not_final(),
                RawFrame::text("new"),
            ],
        ),
        (
            "non-final text inside text",
            [
                RawFrame::text("started ").not_final(),
                RawFrame::text("new").not_final(),
            ],
        ),
        (
            "binary inside text",
            [
                RawFrame::text("started ").not_final(),
                RawFrame::binary(*b"new"),
            ],
        ),
        (
            "text inside binary",
            [
                RawFrame::binary(*b"started ").not_final(),
                RawFrame::text("new"),
            ],
        ),
    ];

    for (case, frames) in cases {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        // §5.4: "fragments of one message MUST NOT be interleaved between fragments of
        // another message unless an extension has been negotiated".
        socket.send_all(&frames).await;
        socket.expect_close(PROTOCOL_ERROR).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_message_after_continuations_of_an_unfinished_one_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket
        .send_all(&[
            RawFrame::binary(*b"one").not_final(),
            RawFrame::continuation(*b"two").not_final(),
            RawFrame::binary(*b"three"),
        ])
        .await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_between_fragments_ends_the_connection_without_the_message() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    // Control frames may come between fragments (§5.4); after a close the unfinished
    // message is abandoned and the continuation behind it is not read (§5.5.1).
    socket
        .send_all(&[
            RawFrame::text("never ").not_final(),
            RawFrame::close(NORMAL_CLOSURE, b""),
            RawFrame::continuation("finished"),
        ])
        .await;

    let close = socket.expect_close_frame().await;
    assert_eq!(close.code, Some(NORMAL_CLOSURE), "{close:?}");
    socket.expect_closed_without_frame().await;
}
