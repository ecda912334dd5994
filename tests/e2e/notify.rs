//! The `notify` sample: push a message to every connection of a user, by user name.

use serde_json::json;

use crate::support::{Client, Host, poll_until};

async fn notify(sender: &mut Client, to: &str, text: &str) -> u64 {
    sender
        .send_text(&json!({"to": to, "text": text}).to_string())
        .await;
    let reply = sender.receive_json().await;
    reply["delivered"]
        .as_u64()
        .unwrap_or_else(|| panic!("the sender is told how many got it, got {reply}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_reaches_every_connection_of_the_user() {
    let host = Host::builder().function("notify").start().await;
    let mut bob_phone = host.connect("notify?user=bob").await;
    let mut bob_laptop = host.connect("notify?user=bob").await;
    let mut carol = host.connect("notify?user=carol").await;
    let mut alice = host.connect("notify?user=alice").await;

    assert_eq!(notify(&mut alice, "bob", "lunch?").await, 2);

    let expected = json!({"from": "alice", "text": "lunch?"});
    assert_eq!(bob_phone.receive_json().await, expected);
    assert_eq!(bob_laptop.receive_json().await, expected);
    // Carol's next message is her own receipt, so nothing meant for bob reached her.
    assert_eq!(notify(&mut carol, "nobody", "hello?").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_connection_no_longer_receives_notifications() {
    let host = Host::builder().function("notify").start().await;
    let bob_phone = host.connect("notify?user=bob").await;
    let mut bob_laptop = host.connect("notify?user=bob").await;
    let mut alice = host.connect("notify?user=alice").await;

    bob_phone.close(1000, "").await;

    // The host forgets the connection shortly after the close handshake, so until then a
    // notification may still count it; every attempt reaches the laptop either way.
    let mut attempts = 0;
    poll_until("the closed connection no longer counts", async || {
        attempts += 1;
        let delivered = notify(&mut alice, "bob", &format!("attempt {attempts}")).await;
        assert_eq!(
            bob_laptop.receive_json().await,
            json!({"from": "alice", "text": format!("attempt {attempts}")})
        );
        match delivered {
            1 => Some(()),
            2 => None,
            other => panic!("bob has one or two connections, yet {other} got it"),
        }
    })
    .await;
}
