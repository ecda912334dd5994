//! Category 7, the closing handshake (RFC 6455 §5.5.1, §7): a close is answered with a
//! close, nothing is processed after it, the server then closes the TCP connection
//! (§7.1.1), and a close frame's payload is an allowed status code (§7.4) and a UTF-8
//! reason, 125 bytes at most (§5.5).

use super::{NORMAL_CLOSURE, PROTOCOL_ERROR, echo_host, working_connection};
use crate::support::{RawFrame, fragmented, op};

/// Codes a close frame may carry (§7.4.1, §7.4.2): the defined ones an endpoint may send,
/// and the ranges for registered (3000-3999) and private (4000-4999) use.
const VALID_CODES: [u16; 13] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
];

/// Codes a close frame must not carry: never used (0-999), reserved (1004), only for
/// reporting and never sent (1005, 1006, 1015), not defined (1016-2999), out of range.
const INVALID_CODES: [u16; 12] = [
    0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
];

/// Expects the host's answer to this client's close: a close frame with `code`, then the
/// end of the TCP connection, which the server closes first (§7.1.1).
async fn expect_close_answer(socket: &mut crate::support::RawSocket, code: u16) {
    let close = socket.expect_close_frame().await;
    assert_eq!(close.code, Some(code), "{close:?}");
    socket.expect_closed_without_frame().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_normal_close_is_answered_with_1000_and_the_host_closes_the_connection() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket
        .send(RawFrame::close(NORMAL_CLOSURE, b"goodbye"))
        .await;

    expect_close_answer(&mut socket, NORMAL_CLOSURE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_sent_before_the_close_is_echoed_before_the_answer() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    socket
        .send_all(&[
            RawFrame::text("last words"),
            RawFrame::close(NORMAL_CLOSURE, b""),
        ])
        .await;

    socket.expect_text("last words").await;
    expect_close_answer(&mut socket, NORMAL_CLOSURE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_close_is_answered_with_an_empty_or_normal_close() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    socket.send(RawFrame::close_empty()).await;

    // §5.5.1: the body is optional, and 1005 ("no status code") must not be sent (§7.4.1):
    // the answer either has no body either or says 1000.
    let close = socket.expect_close_frame().await;
    assert!(
        matches!(close.code, None | Some(NORMAL_CLOSURE)),
        "an empty close should be answered with an empty close or 1000, got {close:?}"
    );
    socket.expect_closed_without_frame().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_with_a_one_byte_payload_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // §5.5.1: a body "MUST start with a two-byte unsigned integer": one byte cannot.
    socket.send(RawFrame::new(op::CLOSE, [0x03])).await;

    expect_close_answer(&mut socket, PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_with_the_longest_allowed_reason_of_123_bytes_is_answered() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // 2 bytes of code and 123 of reason: 125, the most a control frame may carry (§5.5).
    socket
        .send(RawFrame::close(NORMAL_CLOSURE, "r".repeat(123).as_bytes()))
        .await;

    expect_close_answer(&mut socket, NORMAL_CLOSURE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_with_a_124_byte_reason_is_a_protocol_error() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // 126 bytes of payload: over the limit of §5.5 for any control frame.
    socket
        .send(RawFrame::close(NORMAL_CLOSURE, "r".repeat(124).as_bytes()))
        .await;

    expect_close_answer(&mut socket, PROTOCOL_ERROR).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_close_codes_are_answered_with_the_same_code() {
    let host = echo_host().await;

    for code in VALID_CODES {
        let mut socket = working_connection(&host).await;
        socket.label_case(format!("close code {code}"));
        socket.send(RawFrame::close(code, b"valid")).await;
        // §5.5.1: the answering endpoint "typically echos the status code it received".
        expect_close_answer(&mut socket, code).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_close_codes_are_a_protocol_error() {
    let host = echo_host().await;

    for code in INVALID_CODES {
        let mut socket = working_connection(&host).await;
        socket.label_case(format!("close code {code}"));
        socket.send(RawFrame::close(code, b"invalid")).await;
        expect_close_answer(&mut socket, PROTOCOL_ERROR).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_after_the_close_are_not_processed() {
    let host = echo_host().await;
    let after_close = [
        ("a text message", vec![RawFrame::text("after")]),
        ("a binary message", vec![RawFrame::binary(*b"after")]),
        ("a ping", vec![RawFrame::ping("after")]),
        (
            "a fragmented message",
            fragmented(op::TEXT, &[b"af", b"ter"]),
        ),
        ("a second close", vec![RawFrame::close(NORMAL_CLOSURE, b"")]),
    ];

    for (case, frames) in after_close {
        let mut socket = working_connection(&host).await;
        socket.label_case(format!("{case} after the close"));
        // §5.5.1: after sending a close "the endpoint MUST NOT send any more data frames";
        // a host reading on must not act on them either: no echo, no pong, one close.
        let mut all = vec![RawFrame::close(NORMAL_CLOSURE, b"")];
        all.extend(frames);
        socket.send_all_until_closed(&all).await;
        expect_close_answer(&mut socket, NORMAL_CLOSURE).await;
    }
}
