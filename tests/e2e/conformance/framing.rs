//! Category 1, framing: messages of every length boundary arrive whole, however the bytes are
//! cut into TCP writes, and come back in the length form RFC 6455 §5.2 prescribes.

use super::{MESSAGE_TOO_BIG, PROTOCOL_ERROR, binary_payload, echo_host, text_payload};
use crate::support::{LengthForm, RawFrame, RawSocket, assert_same_payload, op};

/// Payload lengths on both sides of every change of length form, plus the default message
/// limit of 1 MiB, with the form §5.2 prescribes for each: 7 bits up to 125, 16 bits up to
/// 65535, 64 bits beyond. The client sends each length in that form too.
const BOUNDARY_LENGTHS: [(usize, LengthForm); 8] = [
    (0, LengthForm::Seven),
    (125, LengthForm::Seven),
    (126, LengthForm::Sixteen),
    (127, LengthForm::Sixteen),
    (128, LengthForm::Sixteen),
    (65535, LengthForm::Sixteen),
    (65536, LengthForm::SixtyFour),
    (1024 * 1024, LengthForm::SixtyFour),
];

/// Sends one frame and expects the echo as one frame with the same payload, its length in
/// the `form` expected for it.
async fn assert_single_frame_echo(
    socket: &mut RawSocket,
    opcode: u8,
    payload: &[u8],
    form: LengthForm,
) {
    socket.send(RawFrame::new(opcode, payload)).await;
    let echo = socket.next_frame().await;
    assert!(
        echo.fin && echo.opcode == opcode,
        "a {}-byte message should come back as one frame of the same kind, got {echo}",
        payload.len()
    );
    assert_same_payload(
        &format!("the echo of a {}-byte message", payload.len()),
        &echo.payload,
        payload,
    );
    assert_eq!(
        echo.length_form,
        form,
        "the length form of a {}-byte echo",
        payload.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_of_every_length_boundary_echoes_exactly() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    for (len, form) in BOUNDARY_LENGTHS {
        assert_single_frame_echo(&mut socket, op::TEXT, text_payload(len).as_bytes(), form).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_of_every_length_boundary_echoes_exactly() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    for (len, form) in BOUNDARY_LENGTHS {
        assert_single_frame_echo(&mut socket, op::BINARY, &binary_payload(len), form).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_length_forms_are_read_correctly_when_back_to_back_in_one_write() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    // One 7-bit, one 16-bit and one 64-bit length in a single write: the host must find
    // each frame's end from its own header.
    let payloads = [
        binary_payload(100),
        binary_payload(300),
        binary_payload(70_000),
    ];

    let frames: Vec<RawFrame> = payloads.iter().map(|p| RawFrame::binary(&p[..])).collect();
    socket.send_all(&frames).await;

    for payload in &payloads {
        socket.expect_binary(payload).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_written_one_byte_at_a_time_echo() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    // A 16-bit length, so the extended length and the masking key are split too.
    let text = text_payload(130);
    let bytes = binary_payload(20);

    socket
        .send_in_chunks(
            &[RawFrame::text(text.as_str()), RawFrame::binary(&bytes[..])],
            1,
        )
        .await;

    socket.expect_text(&text).await;
    socket.expect_binary(&bytes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_written_in_odd_sized_chunks_echo() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let small = text_payload(125);
    let medium = text_payload(1_000);
    let large = binary_payload(65_536);

    // Chunk sizes that divide no header or payload length, so the boundaries fall inside
    // headers, masking keys and payloads, and across frames.
    let frames = [
        RawFrame::text(small.as_str()),
        RawFrame::text(medium.as_str()),
    ];
    socket.send_in_chunks(&frames, 7).await;
    socket.expect_text(&small).await;
    socket.expect_text(&medium).await;

    let frames = [RawFrame::text(small.as_str()), RawFrame::binary(&large[..])];
    socket.send_in_chunks(&frames, 997).await;
    socket.expect_text(&small).await;
    socket.expect_binary(&large).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_64_bit_length_with_the_most_significant_bit_set_is_refused() {
    let host = echo_host().await;
    let mut socket = super::working_connection(&host).await;
    // §5.2: "the most significant bit MUST be 0". Only the header is sent: a host that took
    // the length at face value would wait for 2^63 bytes instead of refusing the frame.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    header.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);

    socket.send_bytes(&header).await;

    // A protocol error, or a message too big for the host: both refuse the frame.
    socket
        .expect_close_one_of(&[PROTOCOL_ERROR, MESSAGE_TOO_BIG])
        .await;
}
