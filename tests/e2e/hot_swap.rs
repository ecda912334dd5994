//! Hot swap under load: deploying a new version while clients keep sending closes nothing,
//! loses nothing, and serves every message sent after the deploy returned with the new code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::support::{Client, Host, function_bytes, poll_until};

const CONNECTIONS: usize = 50;
/// Swaps between `swap-a` and `swap-b`, starting from `swap-a`.
const SWAPS: u64 = 5;

/// The reply prefix of the version a deploy number serves: deploy 0 is the `swap-a` the host
/// started with, and every deploy after it alternates.
fn prefix_of_deploy(deploy: u64) -> &'static str {
    if deploy.is_multiple_of(2) { "a" } else { "b" }
}

fn fixture_of_deploy(deploy: u64) -> &'static str {
    if deploy.is_multiple_of(2) {
        "swap-a"
    } else {
        "swap-b"
    }
}

/// What the deploying side publishes for the clients to compare their messages with.
struct Progress {
    /// The last deploy whose PUT has returned. Stored only after the answer arrived.
    returned: AtomicU64,
    /// The last deploy whose PUT has been started. Stored before the request is sent.
    started: AtomicU64,
    /// Per client, the last deploy that returned before that client sent a message that has
    /// since been answered: shows each client has been served since a deploy.
    answered_after: Vec<AtomicU64>,
    stop: AtomicBool,
}

/// What one client saw.
#[derive(Default, Debug)]
struct Tally {
    sent: u64,
    answered: u64,
    /// Answers to messages sent and answered with no deploy started in between, each checked
    /// against the version of the deploy that had returned before the send.
    checked_strictly: u64,
    /// Answers to messages that were in flight while a deploy ran; either version may answer.
    in_flight_during_a_deploy: u64,
}

/// Sends `<client>-<seq>` and waits for its answer, again and again, until told to stop.
async fn keep_sending(mut client: Client, index: usize, progress: Arc<Progress>) -> Tally {
    let mut tally = Tally::default();
    let mut sequence = 0u64;
    while !progress.stop.load(Ordering::SeqCst) {
        sequence += 1;
        let text = format!("{index}-{sequence}");
        let returned_before_send = progress.returned.load(Ordering::SeqCst);
        tally.sent += 1;
        let answer = client.ask(&text).await;
        tally.answered += 1;
        let started_before_answer = progress.started.load(Ordering::SeqCst);

        // The connection answers one message at a time and in order, so the answer to this
        // message is the next one: a lost or doubled message shows as a wrong text here.
        let (prefix, echoed) = answer.split_once(':').unwrap_or_else(|| {
            panic!("client {index}: the answer to {text:?} is `version:text`, got {answer:?}")
        });
        assert_eq!(
            echoed, text,
            "client {index}: every message is answered once, in order"
        );
        assert!(
            prefix == "a" || prefix == "b",
            "client {index}: answered by an unknown version: {answer:?}"
        );
        if started_before_answer == returned_before_send {
            // No deploy started between the send and the answer: the version of the last
            // returned deploy was serving the whole time.
            assert_eq!(
                prefix,
                prefix_of_deploy(returned_before_send),
                "client {index}: {text:?} was sent after deploy {returned_before_send} \
                 returned, yet answered by another version"
            );
            tally.checked_strictly += 1;
        } else {
            tally.in_flight_during_a_deploy += 1;
        }
        progress.answered_after[index].store(returned_before_send, Ordering::SeqCst);
    }
    // Proves the connection is still open and nothing is left unanswered behind the last
    // answer.
    let last = format!("{index}-last");
    let answer = client.ask(&last).await;
    assert!(answer.ends_with(&format!(":{last}")), "{answer:?}");
    client.close(1000, "").await;
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn swapping_versions_under_load_closes_nothing_loses_nothing_and_serves_the_new_code() {
    let host = Host::builder()
        .function_served_as("swap", "swap-a")
        .start()
        .await;
    let admin = host.admin();

    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(host.connect("swap").await);
    }
    let progress = Arc::new(Progress {
        returned: AtomicU64::new(0),
        started: AtomicU64::new(0),
        answered_after: (0..CONNECTIONS).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let senders: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| tokio::spawn(keep_sending(client, index, Arc::clone(&progress))))
        .collect();

    for deploy in 1..=SWAPS {
        progress.started.store(deploy, Ordering::SeqCst);
        let version = admin
            .deploy("swap", function_bytes(fixture_of_deploy(deploy)))
            .await;
        progress.returned.store(deploy, Ordering::SeqCst);
        assert_eq!(version, deploy + 1, "each swap is a new version");

        // Every client gets an answer to a message sent after this deploy returned before the
        // next deploy starts, so each connection is checked against each version.
        poll_until(
            &format!("every client has been answered since deploy {deploy}"),
            async || {
                let behind = progress
                    .answered_after
                    .iter()
                    .filter(|deploy_seen| deploy_seen.load(Ordering::SeqCst) < deploy)
                    .count();
                (behind == 0).then_some(())
            },
        )
        .await;
    }
    let swap = admin.function("swap").await;
    assert_eq!(
        swap["connections"], CONNECTIONS,
        "no connection was closed: {swap}"
    );
    progress.stop.store(true, Ordering::SeqCst);

    let mut total = Tally::default();
    for (index, sender) in senders.into_iter().enumerate() {
        let tally = sender
            .await
            .unwrap_or_else(|error| panic!("client {index} failed: {error}"));
        assert_eq!(tally.sent, tally.answered, "client {index}: {tally:?}");
        total.sent += tally.sent;
        total.answered += tally.answered;
        total.checked_strictly += tally.checked_strictly;
        total.in_flight_during_a_deploy += tally.in_flight_during_a_deploy;
    }
    eprintln!("{total:?}");
    assert_eq!(total.sent, total.answered);
    assert!(
        total.checked_strictly >= CONNECTIONS as u64 * SWAPS,
        "every client had a message checked after every deploy: {total:?}"
    );
    assert!(
        total.in_flight_during_a_deploy > 0,
        "messages were in flight while deploys ran, so the swaps happened under load: {total:?}"
    );

    let versions = admin
        .get("/v1/functions/swap/versions")
        .await
        .expect_json(200);
    assert_eq!(versions["current"], SWAPS + 1, "{versions}");
}
