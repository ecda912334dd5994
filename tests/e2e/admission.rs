//! Limits applied before a connection exists or to what one event may do: browser origins,
//! connection caps, the handshake deadline, the frame size and the sends of one event.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Host, binary_fragments, poll_until, raw_upgrade, within};

const SWITCHING_PROTOCOLS: u16 = 101;

#[tokio::test(flavor = "multi_thread")]
async fn only_listed_browser_origins_may_connect() {
    let host = Host::builder()
        .function("echo")
        .option("--allowed-origin", "https://app.example")
        .start()
        .await;

    let foreign = raw_upgrade(host.addr(), "echo", &[("Origin", "https://other.example")]).await;
    let listed = raw_upgrade(host.addr(), "echo", &[("Origin", "https://app.example")]).await;
    // Clients that are not browsers send no Origin; the list does not concern them.
    let no_origin = raw_upgrade(host.addr(), "echo", &[]).await;

    assert_eq!(foreign.status, 403, "an origin not on the list");
    assert_eq!(
        foreign.header("upgrade"),
        None,
        "no WebSocket for a refused origin"
    );
    assert_eq!(listed.status, SWITCHING_PROTOCOLS, "a listed origin");
    assert_eq!(no_origin.status, SWITCHING_PROTOCOLS, "no Origin header");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_gets_at_most_its_share_of_connections_with_429_beyond() {
    let host = Host::builder()
        .function("echo")
        .option("--max-connections-per-ip", "2")
        .start()
        .await;
    let first = host.connect("echo").await;
    let _second = host.connect("echo").await;

    let third = raw_upgrade(host.addr(), "echo", &[]).await;
    assert_eq!(
        third.status, 429,
        "a third connection from the same address"
    );

    // The place comes back once a connection has ended.
    drop(first);
    poll_until("a place freed by a closed connection", async || {
        let retry = raw_upgrade(host.addr(), "echo", &[]).await;
        (retry.status == SWITCHING_PROTOCOLS).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_host_refuses_handshakes_with_503() {
    let host = Host::builder()
        .function("echo")
        .option("--max-connections", "2")
        .start()
        .await;
    let _first = host.connect("echo").await;
    let _second = host.connect("echo").await;

    let third = raw_upgrade(host.addr(), "echo", &[]).await;

    assert_eq!(third.status, 503, "a connection beyond the host's cap");
}

// On a paused clock (which needs the current-thread runtime) the host's handshake timer fires
// as soon as everything else waits, instead of after real time.
#[tokio::test(flavor = "current_thread")]
async fn a_client_that_never_sends_its_handshake_is_dropped() {
    let host = Host::builder()
        .function("echo")
        .option("--handshake-timeout-ms", "300")
        .start()
        .await;
    tokio::time::pause();
    let mut socket = TcpStream::connect(host.addr()).await.expect("TCP connect");

    // Nothing is sent: the host must close the socket on its own. `within` is the assertion:
    // without the deadline the read would never end (a bounded wait, not a timing threshold;
    // a reset counts as closed too).
    let mut answer = Vec::new();
    let _ = within(
        "the host to drop a silent client",
        socket.read_to_end(&mut answer),
    )
    .await;

    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "nothing, or a request timeout, was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_over_the_frame_limit_closes_with_1009_while_the_same_bytes_in_fragments_pass() {
    let host = Host::builder()
        .function("echo")
        .option("--max-frame-size", "1KiB")
        .start()
        .await;

    let mut fragmented = host.connect("echo").await;
    fragmented
        .send_all(binary_fragments((0..4).map(|_| vec![3u8; 512])))
        .await;
    assert_eq!(fragmented.receive_binary().await.as_ref(), &[3u8; 2048][..]);

    let mut whole = host.connect("echo").await;
    let close = whole
        .send_expecting_close(vec![Message::binary(vec![3u8; 2048])])
        .await;
    assert_eq!(close.code, 1009, "{close:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_sends_at_most_its_allowance_and_the_refusals_are_counted() {
    let host = Host::builder()
        .function("lifecycle")
        .option("--sends-per-event", "5")
        .start()
        .await;
    let mut client = host.connect("lifecycle").await;

    client.send_text("flood 8 3").await;
    for _ in 0..5 {
        assert_eq!(client.receive_binary().await.as_ref(), &[0x5a; 3][..]);
    }
    // A new event has a new allowance; its answer comes right after the five, so the other
    // three sends of the flood were refused, not late.
    client.send_text("id").await;
    let id = client.receive_text().await;
    assert_eq!(
        id.len(),
        32,
        "the next message is the id, not a sixth flood message: {id:?}"
    );

    let detail = host
        .admin()
        .get("/v1/functions/lifecycle")
        .await
        .expect_status(200)
        .json();
    assert_eq!(detail["stats"]["sends_refused"], 3, "{detail}");
}
