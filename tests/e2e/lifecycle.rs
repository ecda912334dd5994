//! The connection lifecycle contract, observed through the `lifecycle` fixture: on-connect
//! decides before the handshake, and on-close runs exactly once for every accepted connection.

use std::time::Duration;

use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

use crate::support::{CloseInfo, Host, raw_upgrade};

/// Long enough for a wrongly repeated on-close to have run, were the host to run one; the
/// tests do not depend on it for anything else.
const SETTLE: Duration = Duration::from_millis(500);

async fn lifecycle_host() -> Host {
    Host::builder().function("lifecycle").start().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_connection_gets_the_http_status_the_function_chose() {
    let host = lifecycle_host().await;

    for status in [403, 429, 503] {
        assert_eq!(
            host.refused_handshake_status(&format!("lifecycle?reject={status}"))
                .await,
            StatusCode::from_u16(status).unwrap(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_is_a_plain_http_answer_carrying_the_reason() {
    let host = lifecycle_host().await;

    let response = raw_upgrade(host.addr(), "lifecycle?reject=403", &[]).await;

    assert_eq!(response.status, 403);
    assert_eq!(response.header("upgrade"), None, "no WebSocket is set up");
    // A plain-text body conventionally ends with a line break; the reason is the rest.
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(body.strip_suffix('\n').unwrap_or(&body), "rejected by test");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_connection_never_runs_on_close() {
    let host = lifecycle_host().await;
    let mut observer = host.connect("lifecycle").await;
    let before = observer.stats().await;

    for status in [403, 429, 400] {
        host.refused_handshake_status(&format!("lifecycle?reject={status}"))
            .await;
    }
    // An accepted connection closed after the refusals: once its on-close has run, any
    // on-close wrongly started for a refusal would have had every chance to run too.
    let mut accepted = host.connect("lifecycle").await;
    let accepted_id = accepted.connection_id().await;
    accepted.close(1000, "").await;
    observer.on_close_of(&accepted_id).await;
    tokio::time::sleep(SETTLE).await;

    let after = observer.stats().await;
    assert_eq!(
        after.connects,
        before.connects + 4,
        "on-connect runs for refused connections too"
    );
    assert_eq!(
        after.closes,
        before.closes + 1,
        "only the accepted connection runs on-close"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_offered_wsfn_subprotocol_is_confirmed() {
    let host = lifecycle_host().await;

    for (offered, confirmed) in [("foo, wsfn.v2", "wsfn.v2"), ("wsfn.a, wsfn.b", "wsfn.a")] {
        let mut request = host.request("lifecycle");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(offered));

        let (mut client, response) = host.connect_with(request).await;

        assert_eq!(
            response.headers().get("sec-websocket-protocol"),
            Some(&HeaderValue::from_static(confirmed)),
            "offered {offered:?}"
        );
        assert_eq!(client.ask("still usable").await, "still usable");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_subprotocol_is_confirmed_when_none_is_acceptable() {
    let host = lifecycle_host().await;

    // By hand, because a strict client refuses a handshake that confirms none of the
    // subprotocols it offered, which is exactly the answer expected here.
    let response = raw_upgrade(
        host.addr(),
        "lifecycle",
        &[("Sec-WebSocket-Protocol", "foo")],
    )
    .await;

    assert_eq!(response.status, 101, "the connection is still accepted");
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attachment_set_on_connect_is_kept_with_the_connection() {
    let host = lifecycle_host().await;

    let mut tagged = host.connect("lifecycle?tag=blue%20fish").await;
    let mut other = host.connect("lifecycle?tag=red").await;

    assert_eq!(tagged.ask("attachment").await, "blue fish");
    assert_eq!(other.ask("attachment").await, "red");
    assert_eq!(tagged.ask("attachment").await, "blue fish");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_connection_gets_its_own_id() {
    let host = lifecycle_host().await;
    let mut ids = std::collections::HashSet::new();

    for _ in 0..20 {
        let mut client = host.connect("lifecycle").await;
        let id = client.connection_id().await;
        assert!(ids.insert(id.clone()), "the id {id} was given out twice");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_by_the_function_reaches_the_client_and_runs_on_close_once() {
    let host = lifecycle_host().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    client.send_text("close 4000 done").await;

    assert_eq!(client.expect_close().await, CloseInfo::new(4000, "done"));
    let mut observer = host.connect("lifecycle").await;
    assert_eq!(
        observer.on_close_of(&id).await,
        CloseInfo::new(4000, "done")
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(observer.closes_of(&id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_with_a_code_or_reason_the_protocol_forbids_is_refused_to_the_function() {
    let host = lifecycle_host().await;
    let mut client = host.connect("lifecycle").await;
    let too_long_reason = "r".repeat(124);

    // 1006 is reserved for a lost connection, 1234 is unassigned, and a reason must fit in
    // a control frame (123 bytes).
    for command in [
        "close 1006 lost".to_owned(),
        "close 1234 unassigned".to_owned(),
        format!("close 4000 {too_long_reason}"),
    ] {
        let reply = client.ask(&command).await;
        assert!(
            reply.starts_with("error: "),
            "`{command}` should fail in the function, which replies {reply:?}"
        );
    }

    assert_eq!(
        client.ask("still open").await,
        "still open",
        "a refused close leaves the connection open"
    );
}

/// One way for a connection to end, and the code on-close must be given for it.
enum Ending {
    ClientCloses { code: u16, reason: &'static str },
    ClientClosesWithoutCode,
    ClientVanishes,
    FunctionCloses { code: u16, reason: &'static str },
}

#[tokio::test(flavor = "multi_thread")]
async fn on_close_runs_exactly_once_however_the_connection_ends() {
    let host = lifecycle_host().await;
    let mut observer = host.connect("lifecycle").await;
    let before = observer.stats().await;
    let endings = [
        (
            Ending::ClientCloses {
                code: 1000,
                reason: "bye",
            },
            Some(CloseInfo::new(1000, "bye")),
        ),
        (
            Ending::ClientCloses {
                code: 4001,
                reason: "custom reason",
            },
            Some(CloseInfo::new(4001, "custom reason")),
        ),
        // The WIT promises 1005 when the peer's close frame has no code and 1006 when the
        // connection is lost without a close frame; the reason is not specified for either.
        (Ending::ClientClosesWithoutCode, None),
        (Ending::ClientVanishes, None),
        (
            Ending::FunctionCloses {
                code: 4002,
                reason: "closed by the function",
            },
            Some(CloseInfo::new(4002, "closed by the function")),
        ),
    ];

    let mut ended = Vec::new();
    for (ending, expected) in endings {
        let mut client = host.connect("lifecycle").await;
        let id = client.connection_id().await;
        let expected_code = match &ending {
            Ending::ClientCloses { code, .. } | Ending::FunctionCloses { code, .. } => *code,
            Ending::ClientClosesWithoutCode => 1005,
            Ending::ClientVanishes => 1006,
        };
        match ending {
            Ending::ClientCloses { code, reason } => client.close(code, reason).await,
            Ending::ClientClosesWithoutCode => client.close_without_code().await,
            Ending::ClientVanishes => client.drop_without_close(),
            Ending::FunctionCloses { code, reason } => {
                client.send_text(&format!("close {code} {reason}")).await;
                assert_eq!(client.expect_close().await, CloseInfo::new(code, reason));
            }
        }
        ended.push((id, expected_code, expected));
    }

    for (id, expected_code, expected) in &ended {
        let info = observer.on_close_of(id).await;
        assert_eq!(info.code, *expected_code, "on-close code of {id}: {info:?}");
        if let Some(expected) = expected {
            assert_eq!(&info, expected, "on-close of {id}");
        }
    }

    // A repeated on-close would show up after a pause, or be set off by later events.
    tokio::time::sleep(SETTLE).await;
    let mut later = host.connect("lifecycle").await;
    let later_id = later.connection_id().await;
    assert_eq!(later.ask("another event").await, "another event");
    later.close(1000, "").await;
    observer.on_close_of(&later_id).await;
    for (id, _, _) in &ended {
        assert_eq!(
            observer.closes_of(id).await,
            1,
            "on-close runs once for {id}"
        );
    }
    let after = observer.stats().await;
    assert_eq!(
        after.closes,
        before.closes + ended.len() as u64 + 1,
        "on-close ran once for each ended connection and for the later one"
    );
}
