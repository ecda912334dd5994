//! Category 6, UTF-8 (RFC 6455 §5.6, §8.1): text messages are UTF-8 as defined by RFC 3629;
//! "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream
//! is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_" (§8.1), with 1007 (§7.4.1). Validity is a property of the whole message, so
//! a character may be cut by a fragment boundary, but a message whose invalid bytes are
//! already known need not be waited for.

use super::{INVALID_PAYLOAD, PROTOCOL_ERROR, echo_host, working_connection};
use crate::support::{RawFrame, fragmented, op};

/// Valid UTF-8 with characters of every encoded length and at the edges of every range
/// (RFC 3629 §4): all must come back unchanged.
const VALID: [(&str, &[u8]); 12] = [
    ("empty", b""),
    ("ASCII", b"Hello, UTF-8!"),
    ("two-byte Greek", "κόσμε".as_bytes()),
    ("three-byte CJK", "漢字かな".as_bytes()),
    ("four-byte emoji", "🙂🚀".as_bytes()),
    (
        "first of each length",
        b"\x00\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80",
    ),
    (
        "last of each length",
        b"\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf",
    ),
    ("around the surrogates", b"\xed\x9f\xbf\xee\x80\x80"),
    ("noncharacters U+FFFE, U+FDD0", b"\xef\xbf\xbe\xef\xb7\x90"),
    ("byte order mark", b"\xef\xbb\xbf"),
    ("replacement character", b"\xef\xbf\xbd"),
    ("mixed", "Hello-µ@ßöäüàá-UTF-8!!".as_bytes()),
];

/// Byte sequences that are not UTF-8, each in a message of its own.
const INVALID: [(&str, &[u8]); 22] = [
    ("a lone continuation byte", b"\x80"),
    ("continuation bytes only", b"\x80\xbf\x80\xbf"),
    ("a start byte followed by a space", b"\xc3 "),
    ("0xFE", b"\xfe"),
    ("0xFF", b"\xff"),
    ("0xFE 0xFE 0xFF 0xFF", b"\xfe\xfe\xff\xff"),
    ("overlong '/' in two bytes", b"\xc0\xaf"),
    ("overlong '/' in three bytes", b"\xe0\x80\xaf"),
    ("overlong '/' in four bytes", b"\xf0\x80\x80\xaf"),
    ("overlong NUL", b"\xc0\x80"),
    ("largest overlong two-byte", b"\xc1\xbf"),
    ("largest overlong three-byte", b"\xe0\x9f\xbf"),
    ("largest overlong four-byte", b"\xf0\x8f\xbf\xbf"),
    ("high surrogate U+D800", b"\xed\xa0\x80"),
    ("low surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("a surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("U+110000, beyond Unicode", b"\xf4\x90\x80\x80"),
    ("a five-byte form", b"\xf8\x88\x80\x80\x80"),
    ("a six-byte form", b"\xfc\x84\x80\x80\x80\x80"),
    (
        "valid text then a surrogate",
        b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80edited",
    ),
    ("a two-byte character cut at the end", b"abc\xce"),
    ("a four-byte character cut at the end", b"abc\xf0\x9f\x98"),
];

#[tokio::test(flavor = "multi_thread")]
async fn valid_utf8_text_echoes_unchanged() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    for (case, text) in VALID {
        socket.label_case(case);
        socket.send(RawFrame::text(text)).await;
        socket.expect_text(text).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_utf8_cut_into_two_fragments_at_every_byte_echoes_unchanged() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    // Characters of one to four bytes, so cuts fall inside each kind of sequence.
    let text = "aµ€🙂κόσμε🚀z".as_bytes();

    for cut in 0..=text.len() {
        socket.label_case(format!("cut at byte {cut}"));
        socket
            .send_all(&fragmented(op::TEXT, &[&text[..cut], &text[cut..]]))
            .await;
        socket.expect_text(text).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_utf8_sent_one_byte_per_fragment_echoes_unchanged() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;
    let text = "κόσμε 🙂 €".as_bytes();

    let parts: Vec<&[u8]> = text.chunks(1).collect();
    socket.send_all(&fragmented(op::TEXT, &parts)).await;

    socket.expect_text(text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_text_frame_is_refused_with_1007() {
    let host = echo_host().await;

    for (case, bytes) in INVALID {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        socket.send(RawFrame::text(bytes)).await;
        // Nothing is echoed: the close is the next frame.
        socket.expect_close(INVALID_PAYLOAD).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_fragmented_text_message_is_refused_with_1007() {
    let host = echo_host().await;

    for (case, bytes) in INVALID {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        // Valid text before and after, with the invalid bytes in the middle fragment.
        socket
            .send_all(&fragmented(op::TEXT, &[b"before ", bytes, b" after"]))
            .await;
        socket.expect_close(INVALID_PAYLOAD).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_the_first_fragment_is_refused_before_the_message_ends() {
    let host = echo_host().await;
    // Sequences that no later byte can make valid. Only the first fragment is sent: the
    // host must fail the connection from what it has (§8.1 fails it "as soon as" the
    // endpoint finds the stream invalid) instead of waiting for a final fragment that will
    // never come.
    let cases: [(&str, &[u8]); 5] = [
        (
            "valid text then U+110000",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
        ),
        ("0xFF", b"text \xff"),
        ("a surrogate", b"text \xed\xa0\x80"),
        ("an overlong start byte", b"text \xc0"),
        ("a lone continuation byte", b"\x80 and more"),
    ];

    for (case, bytes) in cases {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        socket.send(RawFrame::text(bytes).not_final()).await;
        socket.expect_close(INVALID_PAYLOAD).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_starting_a_continuation_is_refused_before_the_message_ends() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // The first fragment ends with 0xF4, a valid start of a four-byte sequence; the second
    // goes on with 0x90, which makes it U+110000 or above. The final fragment is never sent.
    socket
        .send_all(&[
            RawFrame::text(*b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4").not_final(),
            RawFrame::continuation(*b"\x90\x80\x80").not_final(),
        ])
        .await;

    socket.expect_close(INVALID_PAYLOAD).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_inside_one_frame_is_refused_before_the_frame_ends() {
    let host = echo_host().await;
    // Autobahn 6.4.3 and 6.4.4: one text frame written in three chops, the second making the
    // text invalid. The host must fail as soon as the second chop arrives; the third is never
    // sent.
    let valid = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    for (case, invalid) in [
        ("U+110000", &b"\xf4\x90\x80\x80"[..]),
        ("0xF4 0x90", b"\xf4\x90"),
    ] {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        let mut payload = valid.to_vec();
        payload.extend_from_slice(invalid);
        payload.extend_from_slice(b"edited");
        let bytes = RawFrame::text(payload).encode();
        // Header, mask and the valid text; then the bytes that make it invalid.
        let first = bytes.len() - invalid.len() - b"edited".len();
        socket.send_bytes(&bytes[..first]).await;
        socket
            .send_bytes(&bytes[first..first + invalid.len()])
            .await;
        socket.expect_close(INVALID_PAYLOAD).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_ending_inside_a_character_is_refused_with_1007() {
    let host = echo_host().await;
    let mut socket = working_connection(&host).await;

    // Every fragment could be the start of valid text; only the final one shows that the
    // last character never ends.
    socket
        .send_all(&fragmented(
            op::TEXT,
            &[b"\xce\xba\xe1", b"\xbd\xb9 \xf0\x9f", b"\x98"],
        ))
        .await;

    socket.expect_close(INVALID_PAYLOAD).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_messages_are_not_checked_for_utf8() {
    let host = echo_host().await;
    let mut socket = host.raw_connect("echo").await;

    for (case, bytes) in INVALID {
        socket.label_case(case);
        socket.send(RawFrame::binary(bytes)).await;
        socket.expect_binary(bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_close_reason_is_refused() {
    let host = echo_host().await;

    for (case, bytes) in INVALID {
        let mut socket = working_connection(&host).await;
        socket.label_case(case);
        // §5.5.1: the reason "is not guaranteed to be human readable" but is UTF-8; a
        // reason that is not must fail the connection (1007 for the data, or 1002 for a
        // malformed frame) instead of being echoed.
        socket.send(RawFrame::close(1000, bytes)).await;
        socket
            .expect_close_one_of(&[INVALID_PAYLOAD, PROTOCOL_ERROR])
            .await;
    }
}
