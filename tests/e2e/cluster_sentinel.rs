//! Nodes on a Redis watched by Sentinels (`--redis redis+sentinel://...`) carry on after a
//! failover: once the Sentinels have promoted the replica of a killed primary, a room spanning
//! two nodes delivers again, exactly once and in order, and key-value state written before
//! the failover is still there.
//!
//! Messages sent while there is no primary may be lost; these tests only ask that delivery
//! resumes, and print how long after the kill it did.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, Host, RedisSentinel, TestDir, poll_until};

/// The default node timeout, shorter than the failover (the Sentinels notice a dead primary
/// after 1 s and promote the replica a second or two later): no node can beat while there is
/// no primary, and none may be taken for dead for that.
const NODE_TIMEOUT_MS: &str = "3000";

/// How long after the kill the nodes may take to deliver or count again: generous, so only a
/// node that never finds the new primary fails a test (the time taken is printed).
const RECOVERY_WAIT: Duration = Duration::from_secs(60);

/// How long a message may take to cross to the other node before the next one is sent.
const RESEND_AFTER: Duration = Duration::from_millis(100);

/// Messages sent after the first one that crosses, to show that delivery stays exactly once
/// and in order.
const MESSAGES_AFTER: u64 = 50;

async fn node(sentinel: &RedisSentinel, function: &str) -> Host {
    Host::builder()
        .option("--redis", &sentinel.url())
        .option("--node-timeout-ms", NODE_TIMEOUT_MS)
        .function_served_as(function, function)
        .start()
        .await
}

/// The number of a chat message `{"type":"message","user":"ann","text":"m-NUMBER"}` from ann.
fn number_of(message: &Value) -> u64 {
    assert_eq!(
        (message["type"].as_str(), message["user"].as_str()),
        (Some("message"), Some("ann")),
        "only ann's messages are expected: {message}"
    );
    message["text"]
        .as_str()
        .and_then(|text| text.strip_prefix("m-"))
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("ann's messages are numbered: {message}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_spanning_two_nodes_delivers_again_after_a_failover() {
    let dir = TestDir::new();
    let mut sentinel = RedisSentinel::start(&dir);
    let (a, b) = (node(&sentinel, "chat").await, node(&sentinel, "chat").await);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    // Once ann is listed, her join announcement has reached Redis, so bob, joining after,
    // cannot receive it.
    let admin = a.admin();
    poll_until("ann is listed", async || {
        (admin.connections("chat").await.len() == 1).then_some(())
    })
    .await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    // Before the failover, messages cross both ways.
    ann.send_text("before, from A").await;
    let from_a = json!({"type": "message", "user": "ann", "text": "before, from A"});
    assert_eq!(ann.receive_json().await, from_a);
    assert_eq!(bob.receive_json().await, from_a);
    bob.send_text("before, from B").await;
    let from_b = json!({"type": "message", "user": "bob", "text": "before, from B"});
    assert_eq!(bob.receive_json().await, from_b);
    assert_eq!(ann.receive_json().await, from_b);

    let killed_at = Instant::now();
    let old = sentinel.kill_primary();
    let new = sentinel.await_failover(old).await;
    eprintln!(
        "the Sentinels promoted the replica (port {new}) {:?} after the primary (port {old}) \
         was killed",
        killed_at.elapsed()
    );

    // Ann sends numbered messages until one reaches bob on the other node. Ann's own copies
    // are left unread: only what crosses nodes is checked.
    let mut next: u64 = 0;
    let first = loop {
        assert!(
            killed_at.elapsed() < RECOVERY_WAIT,
            "no message from node A reached node B within {RECOVERY_WAIT:?} after the \
             primary was killed ({next} sent)"
        );
        ann.send_text(&format!("m-{next}")).await;
        next += 1;
        // Cancelling a receive that timed out loses nothing: a message is only taken from the
        // socket when the receive completes.
        if let Ok(message) = tokio::time::timeout(RESEND_AFTER, bob.receive_json()).await {
            break number_of(&message);
        }
    };
    let recovered = killed_at.elapsed();
    eprintln!(
        "first message across nodes {recovered:?} after the primary was killed (message m-{first} \
         of {next} sent since)"
    );

    // From the first message that crossed on, every one crosses exactly once and in order:
    // the ones already sent, then those sent now.
    let last = next + MESSAGES_AFTER - 1;
    for number in next..=last {
        ann.send_text(&format!("m-{number}")).await;
    }
    for expected in first + 1..=last {
        let message = bob.receive_json().await;
        assert_eq!(
            number_of(&message),
            expected,
            "after m-{first} crossed, every later message crosses once, in order"
        );
    }
    // And in the other direction. Bob's own copy comes next: no message of ann's crossed twice.
    bob.send_text("back from B").await;
    let back = json!({"type": "message", "user": "bob", "text": "back from B"});
    assert_eq!(bob.receive_json().await, back, "nothing crossed twice");
    loop {
        let message = ann.receive_json().await;
        if message == back {
            break;
        }
        assert_eq!(
            message["user"], "ann",
            "ann hears only her own messages before bob's: {message}"
        );
    }
}

/// Adds one to the counter and returns the new count, or `None` if the function reported an
/// error (the counter replies `{"error": ...}` when the store fails).
async fn try_increment(client: &mut Client) -> Option<u64> {
    client.ask("increment").await.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn key_value_state_written_before_a_failover_is_read_after_it() {
    const BEFORE: u64 = 5;
    let dir = TestDir::new();
    let mut sentinel = RedisSentinel::start(&dir);
    let (a, b) = (
        node(&sentinel, "counter").await,
        node(&sentinel, "counter").await,
    );
    let mut on_a = a.connect("counter").await;
    for expected in 1..=BEFORE {
        assert_eq!(try_increment(&mut on_a).await, Some(expected));
    }
    // Replication is asynchronous: WAIT returns once the replica has acknowledged every write
    // so far, so the failover cannot lose the count (that loss is Redis's, not the host's).
    assert_eq!(sentinel.cli_primary(&["WAIT", "1", "10000"]), "1");

    let killed_at = Instant::now();
    let old = sentinel.kill_primary();
    sentinel.await_failover(old).await;

    // Read through the other node. Until it has found the new primary an increment fails; one
    // that failed may still have been applied, so the first count is above BEFORE and at most
    // BEFORE plus the attempts.
    let mut on_b = b.connect("counter").await;
    let mut attempts = 0;
    let count = loop {
        assert!(
            killed_at.elapsed() < RECOVERY_WAIT,
            "the counter did not count again within {RECOVERY_WAIT:?} after the primary was \
             killed ({attempts} attempts)"
        );
        attempts += 1;
        if let Some(count) = try_increment(&mut on_b).await {
            break count;
        }
        tokio::time::sleep(RESEND_AFTER).await;
    };
    eprintln!(
        "the counter counted again {:?} after the primary was killed",
        killed_at.elapsed()
    );
    assert!(
        count > BEFORE && count <= BEFORE + attempts,
        "the count written before the failover ({BEFORE}) is kept: {count} after {attempts} \
         attempts"
    );
    assert_eq!(try_increment(&mut on_a).await, Some(count + 1));
}
