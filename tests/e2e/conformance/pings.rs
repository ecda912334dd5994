//! Category 2, pings and pongs (RFC 6455 §5.5.2, §5.5.3): a ping is answered with a pong
//! carrying the same payload, a control frame carries at most 125 bytes (§5.5), and a pong
//! nobody asked for is ignored.

use super::{PROTOCOL_ERROR, binary_payload, echo_host, working_connection};
use crate::support::RawFrame;

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_ping_gets_an_empty_pong() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket.send(RawFrame::ping(Vec::new())).await;

    socket.expect_pong(b"").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_payload_comes_back_unchanged_in_the_pong() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket.send(RawFrame::ping("Hello, ping")).await;
    socket.expect_pong(b"Hello, ping").await;

    // Arbitrary bytes, not only text, and not a message: it needs no UTF-8 check.
    let binary = [0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff];
    socket.send(RawFrame::ping(binary)).await;
    socket.expect_pong(&binary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_with_the_largest_allowed_payload_of_125_bytes_gets_it_back() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let payload = binary_payload(125);

    socket.send(RawFrame::ping(&payload[..])).await;

    socket.expect_pong(&payload).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_with_a_126_byte_payload_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    socket.send(RawFrame::ping(binary_payload(126))).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pong_with_a_126_byte_payload_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // §5.5 limits every control frame, pongs included, to 125 bytes of payload.
    socket.send(RawFrame::pong(binary_payload(126))).await;

    socket.expect_close(PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ping_written_one_byte_at_a_time_is_answered() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let payload = binary_payload(125);

    socket
        .send_in_chunks(&[RawFrame::ping(&payload[..])], 1)
        .await;

    socket.expect_pong(&payload).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsolicited_pongs_are_ignored() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    // §5.5.3: "A Pong frame MAY be sent unsolicited. [...] A response to an unsolicited Pong
    // frame is not expected." The echo of the text must be the very next frame.
    socket
        .send_all(&[
            RawFrame::pong(Vec::new()),
            RawFrame::pong("unsolicited"),
            RawFrame::text("after the pongs"),
        ])
        .await;

    socket.expect_text("after the pongs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_pings_in_a_row_get_ten_pongs_in_order() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let payloads: Vec<String> = (0..10).map(|n| format!("ping {n}")).collect();

    let pings: Vec<RawFrame> = payloads
        .iter()
        .map(|p| RawFrame::ping(p.as_str()))
        .collect();
    socket.send_all(&pings).await;

    for payload in &payloads {
        socket.expect_pong(payload.as_bytes()).await;
    }
}
