//! Category 4, reserved opcodes: 0x3-0x7 are reserved for further non-control frames and
//! 0xB-0xF for further control frames (RFC 6455 §5.2); "If an unknown opcode is received,
//! the receiving endpoint MUST _Fail the WebSocket Connection_" (§5.2).

use super::{PROTOCOL_ERROR, echo_host, working_connection};
use crate::support::RawFrame;

const RESERVED_DATA_OPCODES: [u8; 5] = [0x3, 0x4, 0x5, 0x6, 0x7];
const RESERVED_CONTROL_OPCODES: [u8; 5] = [0xB, 0xC, 0xD, 0xE, 0xF];

#[tokio::test(flavor = "multi_thread")]
async fn reserved_non_control_opcodes_are_a_protocol_error() {
    let host = echo_host().await;

    for opcode in RESERVED_DATA_OPCODES {
        for payload in [&b""[..], b"reserved payload"] {
            let mut socket = working_connection(&host).await;
            socket.label_case(format!(
                "opcode {opcode:#x} with {} payload bytes",
                payload.len()
            ));
            socket.send(RawFrame::new(opcode, payload)).await;
            socket.expect_close(PROTOCOL_ERROR).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_control_opcodes_are_a_protocol_error() {
    let host = echo_host().await;

    for opcode in RESERVED_CONTROL_OPCODES {
        for payload in [&b""[..], b"reserved payload"] {
            let mut socket = working_connection(&host).await;
            socket.label_case(format!(
                "opcode {opcode:#x} with {} payload bytes",
                payload.len()
            ));
            socket.send(RawFrame::new(opcode, payload)).await;
            socket.expect_close(PROTOCOL_ERROR).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_after_a_reserved_opcode_are_not_processed() {
    let host = echo_host().await;

    for opcode in [0x5, 0xD] {
        let mut socket = host.raw_connect("echo").await;
        socket.label_case(format!("opcode {opcode:#x}"));
        // After the unknown frame the connection has failed (§7.1.7): the text and the ping
        // behind it, sent in the same write, must get no echo and no pong.
        socket
            .send_all(&[
                RawFrame::text("before"),
                RawFrame::new(opcode, "unknown"),
                RawFrame::text("after"),
                RawFrame::ping("after"),
            ])
            .await;

        socket.expect_text("before").await;
        socket.expect_close(PROTOCOL_ERROR).await;
    }
}
