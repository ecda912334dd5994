//! Resumable sessions, spoken frame by frame as README.md's protocol specifies: a new session
//! starts with `s`, messages carry their type byte, a dropped socket's session resumes with
//! what was missed, and resumes that cannot continue are refused after the 101.

use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Host};

/// Opens a new session on `echo` and returns the client with the session's id and secret.
async fn start(host: &Host) -> (Client, String, String) {
    let mut client = host.connect("echo?wsfn-session=1").await;
    let hello = client.receive_text().await;
    let (id, secret) = hello
        .strip_prefix('s')
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("a session starts with `s<id> <secret>`, got {hello:?}"));
    assert_eq!((id.len(), secret.len()), (32, 32), "{hello}");
    (client, id.to_owned(), secret.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_carry_their_type_and_a_dropped_socket_resumes_with_what_it_missed() {
    let host = Host::builder().function("echo").start().await;
    let (mut client, id, secret) = start(&host).await;
    client.send_text("mone").await;
    assert_eq!(client.receive_text().await, "mone");
    client.send_binary(vec![b'm', 1, 2]).await;
    assert_eq!(client.receive_binary().await.as_ref(), [b'm', 1, 2]);
    // Received 2; the host echoed 2 and will echo a third after the drop.
    client.send_text("mthree").await;
    client.drop_without_close();

    let mut resumed = host
        .connect(&format!("echo?wsfn-session=1&wsfn-resume={id}"))
        .await;
    resumed.send_text(&format!("r{secret} 2")).await;
    let hello = resumed.receive_text().await;
    assert!(
        hello == "r3" || hello == "r2",
        "the host handled two or three messages: {hello}"
    );
    if hello == "r2" {
        resumed.send_text("mthree").await;
    }
    assert_eq!(
        resumed.receive_text().await,
        "mthree",
        "replayed or echoed once"
    );
    resumed.send_text("mfour").await;
    assert_eq!(resumed.receive_text().await, "mfour");
    let listed = host
        .admin()
        .get("/v1/functions/echo/connections")
        .await
        .expect_json(200);
    assert_eq!(
        listed[0]["id"],
        id.as_str(),
        "the same connection: {listed}"
    );
    assert_eq!(listed[0]["session"]["state"], "attached", "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_with_a_wrong_secret_or_an_unknown_id_is_refused_after_the_101() {
    let host = Host::builder().function("echo").start().await;
    let (mut client, id, _secret) = start(&host).await;

    let mut forged = host
        .connect(&format!("echo?wsfn-session=1&wsfn-resume={id}"))
        .await;
    forged.send_text(&format!("r{} 0", "0".repeat(32))).await;
    assert_eq!(forged.receive_text().await, "xsecret");
    let close = forged.expect_close().await;
    assert_eq!(
        (close.code, close.reason.as_str()),
        (1008, "session refused: secret")
    );
    // The session was not touched.
    client.send_text("mstill here").await;
    assert_eq!(client.receive_text().await, "mstill here");

    let mut unknown = host
        .connect(&format!(
            "echo?wsfn-session=1&wsfn-resume={}",
            "ab".repeat(16)
        ))
        .await;
    unknown.send_text(&format!("r{} 0", "0".repeat(32))).await;
    assert_eq!(unknown.receive_text().await, "xunknown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_without_a_known_type_is_a_protocol_error() {
    let host = Host::builder().function("echo").start().await;
    let (mut client, _id, _secret) = start(&host).await;
    client.send(Message::text("hello")).await;
    let close = client.expect_close().await;
    assert_eq!(close.code, 1002, "{close:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_writes_again_under_the_new_socket_s_compression() {
    use crate::support::{RawFrame, RawSocket};
    let host = Host::builder().function("echo").start().await;
    let offer = Some("permessage-deflate; client_max_window_bits");
    let (mut first, answered) =
        RawSocket::connect_offering(host.addr(), "echo?wsfn-session=1", offer).await;
    assert!(answered.is_some(), "deflate negotiated");
    let hello = first.next_frame().await;
    let hello = String::from_utf8(hello.payload).unwrap();
    let (id, secret) = hello[1..].split_once(' ').unwrap();
    let long = format!("m{}", "resumable and compressed ".repeat(100));
    first.send(RawFrame::text(long.clone().into_bytes())).await;
    let echoed = first.next_frame().await;
    assert!(
        echoed.compressed,
        "the echo is compressed, type byte inside: {echoed}"
    );
    drop(first);

    // The resume offers no compression: what it missed comes back plain.
    let mut resumed = RawSocket::connect_offering(
        host.addr(),
        &format!("echo?wsfn-session=1&wsfn-resume={id}"),
        None,
    )
    .await
    .0;
    resumed
        .send(RawFrame::text(format!("r{secret} 0").into_bytes()))
        .await;
    resumed.expect_text("r1").await;
    let replayed = resumed.next_frame().await;
    assert!(!replayed.compressed, "{replayed}");
    assert_eq!(
        replayed.payload,
        long.as_bytes(),
        "the same message, written again"
    );
}
