//! Category 10, miscellaneous: a message in many fragments of a size unrelated to any
//! buffer, and the rule that every client frame is masked (RFC 6455 §5.1, §5.3).

use super::{PROTOCOL_ERROR, binary_payload, echo_host, text_payload, working_connection};
use crate::support::{RawFrame, fragmented, op};

#[tokio::test(flavor = "multi_thread")]
async fn a_64_kib_message_in_1300_byte_fragments_echoes() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let binary = binary_payload(64 * 1024);
    let text = text_payload(64 * 1024);

    let parts: Vec<&[u8]> = binary.chunks(1300).collect();
    socket.send_all(&fragmented(op::BINARY, &parts)).await;
    socket.expect_binary(&binary).await;

    let parts: Vec<&[u8]> = text.as_bytes().chunks(1300).collect();
    socket.send_all(&fragmented(op::TEXT, &parts)).await;
    socket.expect_text(&text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let host = echo_host().await;

    for (case, frame) in [
        ("text", RawFrame::text("unmasked")),
        ("binary", RawFrame::binary(*b"unmasked")),
        ("ping", RawFrame::ping("unmasked")),
    ] {
        let mut socket = working_connection(&host).await;
        socket.label_case(format!("an unmasked {case} frame"));
        // §5.1: "The server MUST close the connection upon receiving a frame that is not
        // masked. In this case, a server MAY send a Close frame with a status code of 1002".
        socket.send(frame.unmasked()).await;
        socket.expect_close(PROTOCOL_ERROR).await;
    }
}
