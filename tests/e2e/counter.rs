//! The `counter` sample: one counter in key-value state, shared by every connection.

use std::collections::BTreeSet;

use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Host};

async fn increment(client: &mut Client) -> u64 {
    let reply = client.ask("increment").await;
    reply
        .parse()
        .unwrap_or_else(|error| panic!("the counter replies with a number, got {reply:?}: {error}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_count_is_shared_by_all_connections() {
    let host = Host::builder().function("counter").start().await;
    let mut a = host.connect("counter").await;
    let mut b = host.connect("counter").await;

    let first = increment(&mut a).await;
    assert_eq!(first, 1, "a new host starts counting from zero");
    assert_eq!(increment(&mut b).await, 2);
    assert_eq!(increment(&mut a).await, 3);
    assert_eq!(increment(&mut b).await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_increments_are_never_lost_or_duplicated() {
    const CONNECTIONS: u64 = 4;
    const INCREMENTS_EACH: u64 = 50;
    let host = Host::builder().function("counter").start().await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(host.connect("counter").await);
    }

    // Pipelined on every connection at once, so increments of different connections run
    // concurrently on the host.
    let runs = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            let increments = (0..INCREMENTS_EACH).map(|_| Message::text("increment"));
            client.exchange_pipelined(increments.collect()).await
        })
    });
    let mut values = BTreeSet::new();
    for replies in futures_util::future::join_all(runs).await {
        let replies = replies.expect("every connection gets its replies");
        let mut previous = 0;
        for reply in replies {
            let value: u64 = reply
                .to_text()
                .expect("a text reply")
                .parse()
                .expect("a number");
            assert!(
                value > previous,
                "one connection's increments see a growing count"
            );
            previous = value;
            assert!(
                values.insert(value),
                "the value {value} was handed out twice"
            );
        }
    }

    let expected: BTreeSet<u64> = (1..=CONNECTIONS * INCREMENTS_EACH).collect();
    assert_eq!(values, expected, "every increment counted exactly once");
}
