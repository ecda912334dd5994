//! The opening handshake (RFC 6455 §4.2): a valid upgrade gets a 101 with the right accept
//! key; a request that is not a valid WebSocket handshake gets an HTTP error and no
//! WebSocket.

use super::echo_host;
use crate::support::{RawFrame, raw_request};

/// An upgrade request for `/echo` with the given header lines (each ending in CRLF).
fn upgrade_request(host: &crate::support::Host, headers: &str) -> String {
    format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
        host.addr()
    )
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_upgrade_gets_101_with_the_accept_key_of_the_rfc_example() {
    let host = echo_host().await;

    // `raw_connect` checks the 101, `Upgrade: websocket` and the accept key §1.3 derives
    // from the sample nonce; the echo shows the connection is a WebSocket.
    let mut socket = host.raw_connect("echo").await;
    socket.send(RawFrame::text("upgraded")).await;

    socket.expect_text("upgraded").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn header_names_and_tokens_are_case_insensitive_and_connection_may_list_several() {
    let host = echo_host().await;
    // §4.2.1: the Upgrade value is matched ASCII case-insensitively and Connection must
    // include the token `Upgrade`; browsers send `keep-alive, Upgrade`.
    let request = upgrade_request(
        &host,
        "upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n",
    );

    let response = raw_request(host.addr(), &request).await;

    assert_eq!(response.status, 101, "body: {:?}", response.body);
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_without_sec_websocket_key_is_refused_with_400() {
    let host = echo_host().await;
    let request = upgrade_request(&host, &format!("{UPGRADE}Sec-WebSocket-Version: 13\r\n"));

    let response = raw_request(host.addr(), &request).await;

    // §4.2.1: a handshake without the key is not a valid one; "such as 400 Bad Request".
    assert_eq!(response.status, 400, "body: {:?}", response.body);
    assert_eq!(response.header("sec-websocket-accept"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_with_a_version_other_than_13_is_refused_with_400() {
    let host = echo_host().await;

    for version in [Some("8"), Some("12"), Some("14"), None] {
        let version_line = version
            .map(|v| format!("Sec-WebSocket-Version: {v}\r\n"))
            .unwrap_or_default();
        let request = upgrade_request(&host, &format!("{UPGRADE}{KEY}{version_line}"));

        let response = raw_request(host.addr(), &request).await;

        assert_eq!(
            response.status, 400,
            "version {version:?} should be refused; body: {:?}",
            response.body
        );
        assert_eq!(response.header("sec-websocket-accept"), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_refusal_names_version_13() {
    let host = echo_host().await;
    let request = upgrade_request(
        &host,
        &format!("{UPGRADE}{KEY}Sec-WebSocket-Version: 8\r\n"),
    );

    let response = raw_request(host.addr(), &request).await;

    // §4.4: the server "MUST abort the WebSocket handshake [...] and instead send an
    // appropriate HTTP error code (such as 426 Upgrade Required) and a
    // |Sec-WebSocket-Version| header field indicating the version(s) the server is capable
    // of understanding".
    assert!(
        (400..500).contains(&response.status),
        "status {}",
        response.status
    );
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_get_of_a_function_is_answered_426() {
    let host = echo_host().await;
    let request = upgrade_request(&host, "");

    let response = raw_request(host.addr(), &request).await;

    assert_eq!(response.status, 426, "body: {:?}", response.body);
    assert_eq!(response.header("sec-websocket-accept"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_426_says_which_protocol_to_upgrade_to() {
    let host = echo_host().await;
    let request = upgrade_request(&host, "");

    let response = raw_request(host.addr(), &request).await;

    // RFC 9110 §15.5.22: "The server MUST send an Upgrade header field in a 426 response to
    // indicate the required protocol(s)".
    assert_eq!(response.status, 426);
    assert!(
        response
            .header("upgrade")
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket")),
        "Upgrade header: {:?}",
        response.header("upgrade")
    );
}
