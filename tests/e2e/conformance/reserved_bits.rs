//! Category 3, reserved bits: RFC 6455 §5.2 says RSV1-3 "MUST be 0 unless an extension is
//! negotiated [...] If a nonzero value is received and none of the negotiated extensions
//! defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail the
//! WebSocket Connection_". The host negotiates no extension.

use super::{PROTOCOL_ERROR, echo_host, working_connection};
use crate::support::{RSV1, RSV2, RSV3, RawFrame};

#[tokio::test(flavor = "multi_thread")]
async fn rsv1_on_a_text_frame_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket.send(RawFrame::text("rsv1").rsv(RSV1)).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsv2_on_a_text_frame_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket.send(RawFrame::text("rsv2").rsv(RSV2)).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsv3_on_a_text_frame_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket.send(RawFrame::text("rsv3").rsv(RSV3)).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_bits_on_a_ping_are_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // Answering with a pong would mean the frame was accepted.
    socket.send(RawFrame::ping("rsv").rsv(RSV2 | RSV3)).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_combination_of_reserved_bits_on_every_kind_of_frame_is_a_protocol_error() {
    let host = echo_host().await;
    let kinds = [
        ("text", RawFrame::text("x")),
        ("binary", RawFrame::binary(*b"x")),
        ("ping", RawFrame::ping("x")),
        ("pong", RawFrame::pong("x")),
        ("close", RawFrame::close(1000, b"")),
    ];

    for (kind, frame) in kinds {
        for bits in 1..=0b111 {
            let mut socket = working_connection(&host).await;
            socket.label_case(format!("a {kind} frame with reserved bits {bits:03b}"));
            socket.send(frame.clone().rsv(bits)).await;
            // Whatever the frame, no echo, pong or normal close may come back.
            socket.expect_close(PROTOCOL_ERROR).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_after_one_with_reserved_bits_are_not_processed() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    // In one write: a valid message, the faulty frame, then a message and a ping that must
    // not be answered, since the connection failed before them (§7.1.7).
    socket
        .send_all(&[
            RawFrame::text("before"),
            RawFrame::text("faulty").rsv(RSV1),
            RawFrame::text("after"),
            RawFrame::ping("after"),
        ])
        .await;

    socket.expect_text("before").await;
    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_bits_on_a_frame_written_one_byte_at_a_time_are_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket
        .send_in_chunks(&[RawFrame::binary(*b"chopped").rsv(RSV1 | RSV3)], 1)
        .await;

    socket.expect_close(PROTOCOL_ERROR).await;
}
