//! The host's side of the session protocol, frame by frame as README.md specifies it: what it
//! refuses as a protocol error, a resume that takes over a socket still open, a session not
//! resumed in time, and a session that outgrows `--session-retention`. Sessions whose on-close
//! matters are on the `lifecycle` fixture, which logs every on-close run with its code, in a
//! host run as a process so its log can be read.

use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, CloseInfo, Host, TEXT, poll_until};

/// A session opened frame by frame.
struct RawSession {
    client: Client,
    id: String,
    secret: String,
}

/// Opens a new session at `path_and_query` (which must not have a query of its own).
async fn start(host: &Host, path_and_query: &str) -> RawSession {
    let mut client = host
        .connect(&format!("{path_and_query}?wsfn-session=1"))
        .await;
    let hello = client.receive_text().await;
    let (id, secret) = hello
        .strip_prefix('s')
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("a session starts with `s<id> <secret>`, got {hello:?}"));
    RawSession {
        id: id.to_owned(),
        secret: secret.to_owned(),
        client,
    }
}

/// Opens a socket that resumes `session` at `function` and sends `r<secret> <received>`.
async fn resume(host: &Host, function: &str, id: &str, secret: &str, received: u64) -> Client {
    let mut client = host
        .connect(&format!("{function}?wsfn-session=1&wsfn-resume={id}"))
        .await;
    client.send_text(&format!("r{secret} {received}")).await;
    client
}

/// Waits until the admin API lists the session `id` of `function` as `state`.
async fn wait_for_state(host: &Host, function: &str, id: &str, state: &str) {
    let admin = host.admin();
    poll_until(&format!("session {id} is {state}"), async || {
        let listed = admin.connections(function).await;
        listed
            .iter()
            .any(|c| c["id"] == id && c["session"]["state"] == state)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_on_a_session_are_protocol_errors_that_end_the_connection() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let cases: Vec<(&str, Message)> = vec![
        ("an empty text frame", Message::text("")),
        ("an empty binary frame", Message::binary(Vec::new())),
        ("an acknowledgement without a count", Message::text("a")),
        ("a count with a leading zero", Message::text("a01")),
        ("a count with a sign", Message::text("a+0")),
        ("a count with trailing text", Message::text("a0 ")),
        ("a count of 2^64", Message::text("a18446744073709551616")),
        (
            "a control message over 64 bytes",
            Message::text(format!("a{}", "0".repeat(65))),
        ),
        (
            "a control message in a binary frame",
            Message::binary(b"a0".to_vec()),
        ),
        ("an unknown type", Message::text("q")),
    ];
    for (case, frame) in cases {
        let mut session = start(&host, "lifecycle").await;
        session.client.send(frame).await;
        let close = session.client.expect_close().await;
        assert_eq!(close.code, 1002, "{case}: {close:?}");
        let run = host.wait_for_on_close(&session.id).await;
        assert_eq!(
            run.code, 1002,
            "{case}: on-close is told the protocol error"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_only_the_host_sends_are_protocol_errors_from_a_client() {
    let host = Host::builder().function("lifecycle").start_process().await;
    for kind in ["s", "x"] {
        let mut session = start(&host, "lifecycle").await;
        let frame = match kind {
            "s" => format!("s{} {}", session.id, session.secret),
            _ => "xunknown".to_owned(),
        };
        session.client.send_text(&frame).await;
        let close = session.client.expect_close().await;
        assert_eq!(close.code, 1002, "`{kind}` from the client: {close:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledgement_of_more_than_was_sent_is_a_protocol_error() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut session = start(&host, "lifecycle").await;
    session.client.send_text("mid").await;
    assert_eq!(
        session.client.receive_text().await,
        format!("m{}", session.id)
    );
    // One message came; acknowledging two is a lie.
    session.client.send_text("a2").await;
    let close = session.client.expect_close().await;
    assert_eq!(close.code, 1002, "{close:?}");
    assert_eq!(host.wait_for_on_close(&session.id).await.code, 1002);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_request_on_an_attached_socket_is_a_protocol_error() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut session = start(&host, "lifecycle").await;
    let request = format!("r{} 0", session.secret);
    session.client.send_text(&request).await;
    let close = session.client.expect_close().await;
    assert_eq!(close.code, 1002, "{close:?}");
    assert_eq!(host.wait_for_on_close(&session.id).await.code, 1002);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_that_claims_more_than_was_sent_or_less_than_was_acknowledged_is_refused() {
    let host = Host::builder().function("lifecycle").start_process().await;
    for (case, received) in [("more than sent", 5), ("less than acknowledged", 0)] {
        let mut session = start(&host, "lifecycle").await;
        session.client.send_text("mid").await;
        session.client.receive_text().await;
        session.client.send_text("a1").await;
        session.client.drop_without_close();
        wait_for_state(&host, "lifecycle", &session.id, "detached").await;

        let mut resumed = resume(&host, "lifecycle", &session.id, &session.secret, received).await;
        let close = resumed.expect_close().await;
        assert_eq!(close.code, 1002, "a resume claiming {case}: {close:?}");
        let run = host.wait_for_on_close(&session.id).await;
        assert_eq!(
            run.code, 1002,
            "a resume claiming {case} ends the connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resuming_socket_whose_first_frame_is_not_a_resume_request_is_refused() {
    let host = Host::builder().function("echo").start().await;
    let session = start(&host, "echo").await;
    let mut resuming = host
        .connect(&format!("echo?wsfn-session=1&wsfn-resume={}", session.id))
        .await;
    resuming.send_text("mhello").await;
    assert_eq!(resuming.receive_text().await, "xmalformed");
    assert_eq!(
        resuming.expect_close().await,
        CloseInfo::new(1008, "session refused: malformed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_takes_over_a_socket_that_is_still_open() {
    let host = Host::builder().function("echo").start().await;
    let mut session = start(&host, "echo").await;
    session.client.send_text("mbefore").await;
    assert_eq!(session.client.receive_text().await, "mbefore");

    let mut resumed = resume(&host, "echo", &session.id, &session.secret, 1).await;
    assert_eq!(
        resumed.receive_text().await,
        "r1",
        "the one message was handled"
    );
    let close = session.client.expect_close().await;
    assert_eq!(close, CloseInfo::new(1008, "session resumed elsewhere"));

    resumed.send_text("mafter").await;
    assert_eq!(
        resumed.receive_text().await,
        "mafter",
        "the new socket goes on"
    );
    wait_for_state(&host, "echo", &session.id, "attached").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replay_after_a_resume_holds_no_acknowledgement_older_than_the_resume() {
    // Enough that the host is usually still handling them when it finds the socket gone, so
    // some of its acknowledgements are made while the session is detached.
    const SENT: u64 = 1_000;
    let host = Host::builder().function("echo").start().await;
    let mut session = start(&host, "echo").await;
    let messages = (1..=SENT).map(|n| Message::text(format!("m{n}"))).collect();
    session.client.send_all(messages).await;
    session.client.drop_without_close();
    wait_for_state(&host, "echo", &session.id, "detached").await;

    let mut resumed = resume(&host, "echo", &session.id, &session.secret, 0).await;
    let answer = resumed.receive_text().await;
    let handled: u64 = answer
        .strip_prefix('r')
        .and_then(|count| count.parse().ok())
        .filter(|handled| *handled <= SENT)
        .unwrap_or_else(|| panic!("a resume is answered with `r<handled>`, got {answer:?}"));
    let again = (handled + 1..=SENT).map(|n| Message::text(format!("m{n}")));
    resumed.send_all(again.collect()).await;

    let mut echoed = 0;
    let mut stale = Vec::new();
    while echoed < SENT {
        let frame = resumed.receive_text().await;
        match frame.strip_prefix('a').map(str::parse::<u64>) {
            Some(Ok(count)) if count < handled => stale.push((echoed, frame)),
            Some(_) => {}
            None => {
                echoed += 1;
                assert_eq!(frame, format!("m{echoed}"), "each echoed once, in order");
            }
        }
    }
    assert!(
        stale.is_empty(),
        "after `r{handled}` came {} older acknowledgements; the first (after how many echoes, \
         which): {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_not_resumed_within_the_window_runs_on_close_once_with_1006() {
    let host = Host::builder()
        .function("lifecycle")
        .option("--resume-window", "500ms")
        .start_process()
        .await;
    let session = start(&host, "lifecycle").await;
    session.client.drop_without_close();

    let run = host.wait_for_on_close(&session.id).await;
    assert_eq!(
        (run.code, run.reason.as_str()),
        (1006, "the session was not resumed within the resume window")
    );
    let mut late = resume(&host, "lifecycle", &session.id, &session.secret, 0).await;
    assert_eq!(late.receive_text().await, "xunknown");
    assert_eq!(
        late.expect_close().await,
        CloseInfo::new(1008, "session refused: unknown")
    );
    assert_eq!(
        host.on_close_runs_of(&session.id).len(),
        1,
        "on-close ran once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_session_that_outgrows_its_retention_ends_and_cannot_be_resumed() {
    let host = Host::builder()
        .function("lifecycle")
        .option("--session-retention", "1KiB")
        .start_process()
        .await;
    let session = start(&host, "lifecycle").await;
    session.client.drop_without_close();
    wait_for_state(&host, "lifecycle", &session.id, "detached").await;

    // 100 bytes a push: the eleventh cannot fit in 1 KiB, and is refused like a push to a
    // client that does not keep up.
    let admin = host.admin();
    let path = format!("/v1/connections/{}/send", session.id);
    for n in 1..=10 {
        let answer = admin.post(&path, TEXT, format!("{n:0>100}")).await;
        assert_eq!(answer.status, 200, "push {n} fits: {answer}");
    }
    admin
        .post(&path, TEXT, format!("{:0>100}", 11))
        .await
        .expect_error(429);

    // The specification leaves the code to the host (it closes with 1008 while attached).
    host.wait_for_on_close(&session.id).await;
    let mut resumed = resume(&host, "lifecycle", &session.id, &session.secret, 0).await;
    assert_eq!(
        resumed.receive_text().await,
        "xunknown",
        "the session is gone rather than resumed with a hole"
    );
    assert_eq!(
        host.on_close_runs_of(&session.id).len(),
        1,
        "on-close ran once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attached_session_that_outgrows_its_retention_closes_with_1008_after_an_unbroken_run() {
    let host = Host::builder()
        .function("lifecycle")
        .option("--session-retention", "1KiB")
        .start_process()
        .await;
    let mut session = start(&host, "lifecycle").await;
    // The client never acknowledges, so everything sent stays held.
    let admin = host.admin();
    let path = format!("/v1/connections/{}/send", session.id);
    for n in 1..=10 {
        let answer = admin.post(&path, TEXT, format!("{n:0>100}")).await;
        assert_eq!(answer.status, 200, "push {n} fits: {answer}");
    }
    admin
        .post(&path, TEXT, format!("{:0>100}", 11))
        .await
        .expect_error(429);
    let (received, close) = session.client.expect_close_after_data().await;
    assert_eq!(close.code, 1008, "{close:?}");
    let numbers: Vec<u64> = received
        .iter()
        .map(|message| {
            let text = message.to_text().expect("pushes are text");
            let digits = text.strip_prefix('m').expect("an application message");
            digits.parse().expect("a pushed number")
        })
        .collect();
    let unbroken: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, unbroken,
        "what arrived is an unbroken run from the first"
    );
    assert_eq!(
        numbers.len(),
        10,
        "the ten that fitted arrived: {numbers:?}"
    );
    assert_eq!(host.wait_for_on_close(&session.id).await.code, 1008);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_version_the_host_does_not_speak_is_refused_with_400() {
    let host = Host::builder().function("echo").start().await;
    let status = host.refused_handshake_status("echo?wsfn-session=2").await;
    assert_eq!(status, 400);
}
