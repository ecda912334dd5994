//! The default limits that protect the host: a message may be at most 1 MiB.

use tokio_tungstenite::tungstenite::Message;

use crate::support::{Host, binary_fragments};

const MIB: usize = 1024 * 1024;

/// The close code for a message too big to process (RFC 6455).
const MESSAGE_TOO_BIG: u16 = 1009;

#[tokio::test(flavor = "multi_thread")]
async fn a_2_mib_message_closes_the_connection_with_1009() {
    let host = Host::builder().function("echo").start().await;
    let mut client = host.connect("echo").await;

    let close = client
        .send_expecting_close(vec![Message::binary(vec![7u8; 2 * MIB])])
        .await;

    assert_eq!(close.code, MESSAGE_TOO_BIG, "{close:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limit_applies_to_a_whole_fragmented_message() {
    let host = Host::builder().function("echo").start().await;
    let mut client = host.connect("echo").await;

    // Every frame is well under the limit; only the reassembled message is over it.
    let frames = binary_fragments((0..4).map(|_| vec![7u8; MIB / 2]));
    let close = client.send_expecting_close(frames).await;

    assert_eq!(close.code, MESSAGE_TOO_BIG, "{close:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_of_exactly_1_mib_is_still_accepted() {
    let host = Host::builder().function("echo").start().await;
    let mut client = host.connect("echo").await;
    let payload = vec![b'x'; MIB];

    client.send_binary(payload.clone()).await;

    assert!(
        client.receive_binary().await == payload,
        "the 1 MiB echo differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_connections_are_unaffected_by_an_oversized_message() {
    let host = Host::builder().function("echo").start().await;
    let mut offender = host.connect("echo").await;
    let mut bystander = host.connect("echo").await;

    offender
        .send_expecting_close(vec![Message::binary(vec![0u8; 2 * MIB])])
        .await;

    assert_eq!(bystander.ask("unaffected").await, "unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_for_an_oversized_message_runs_on_close_once_with_1009() {
    let host = Host::builder().function("lifecycle").start().await;
    let mut offender = host.connect("lifecycle").await;
    let id = offender.connection_id().await;

    let close = offender
        .send_expecting_close(vec![Message::text("x".repeat(2 * MIB))])
        .await;
    assert_eq!(close.code, MESSAGE_TOO_BIG, "{close:?}");

    let mut observer = host.connect("lifecycle").await;
    let on_close = observer.on_close_of(&id).await;
    assert_eq!(on_close.code, MESSAGE_TOO_BIG, "{on_close:?}");
    assert_eq!(observer.closes_of(&id).await, 1);
}
