//! A client that never reads cannot make the host hold more than its outbound queue bound:
//! under drop-oldest the oldest frames make room and the connection stays open; under the
//! default policy the client is closed with 1008. Either way it is counted.
//!
//! The pushes come from the admin API, so the client itself never has to read or send.

use crate::support::{Host, OCTET_STREAM, SilentClient, kernel_send_buffer_max, poll_until};

const MIB: usize = 1024 * 1024;
const POLICY_VIOLATION: u16 = 1008;

/// The queue bound of these hosts, as given on the command line and in bytes.
const QUEUE: &str = "256KiB";
const QUEUE_BYTES: usize = 256 * 1024;

/// Each push is one binary message of this size.
const PUSH_BYTES: usize = 64 * 1024;
/// What is pushed at the client in all: far more than any buffer on the way can hold.
const PUSHED_BYTES: usize = 100 * MIB;
/// Pushed first, before memory is measured, so that the kernel's buffers are full, the
/// host's writer is stuck and the allocator has seen the traffic: what follows is only
/// what the client cannot take.
const WARM_UP_BYTES: usize = 8 * MIB;

/// The receive buffer the client asks for; fixed, so the kernel does not grow it while
/// nobody reads.
const CLIENT_RECEIVE_BUFFER: u32 = 64 * 1024;

/// Room for what the host's allocator and runtime may keep beyond the data itself: freed
/// blocks held in per-thread arenas, the admin API's request buffers, log formatting. It is
/// fixed, not proportional to what is pushed, so it is a third of the 100 MiB pushed: a host
/// that kept even a third of what the client never read fails.
const FIXED_ALLOWANCE: usize = 32 * MIB;

/// The most the host's memory may grow while 100 MiB are pushed at a client that does not
/// read: the queue, the batch the writer is stuck writing (at most one queue's worth plus
/// the frame that overflowed it), the kernel's socket buffers on both ends (counted although
/// they are kernel memory, to stay on the safe side) and the fixed allowance.
fn memory_growth_bound() -> usize {
    2 * QUEUE_BYTES
        + PUSH_BYTES
        + kernel_send_buffer_max()
        + 2 * CLIENT_RECEIVE_BUFFER as usize
        + FIXED_ALLOWANCE
}

async fn slow_consumer_host(policy: &str) -> Host {
    Host::builder()
        .function("lifecycle")
        .option("--outbound-queue", QUEUE)
        .option("--slow-consumer", policy)
        .start_process()
        .await
}

/// Connects a client that will read nothing from now on, and returns it with its id.
async fn never_reading_client(host: &Host) -> (SilentClient, String) {
    let mut client = host
        .silent_connect_with_receive_buffer("lifecycle", CLIENT_RECEIVE_BUFFER)
        .await;
    client.send_text("id").await;
    let id = client.next_text().await;
    (client, id)
}

/// Pushes `bytes` at connection `id` in binary messages of [`PUSH_BYTES`], each of which the
/// admin API must accept.
async fn push_accepted(host: &Host, id: &str, bytes: usize) {
    let admin = host.admin();
    let message = vec![0xa5_u8; PUSH_BYTES];
    for _ in 0..bytes / PUSH_BYTES {
        admin
            .post(
                &format!("/v1/connections/{id}/send"),
                OCTET_STREAM,
                message.clone(),
            )
            .await
            .expect_status(200);
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_oldest_keeps_a_never_reading_client_within_the_queue_bound() {
    let host = slow_consumer_host("drop-oldest").await;
    let admin = host.admin();
    let (mut client, id) = never_reading_client(&host).await;

    push_accepted(&host, &id, WARM_UP_BYTES).await;
    let before = host.resident_memory();
    push_accepted(&host, &id, PUSHED_BYTES).await;
    let after = host.resident_memory();

    let growth = after.saturating_sub(before);
    let bound = memory_growth_bound() as u64;
    eprintln!(
        "pushed {} at a client that reads nothing: resident memory {} -> {} (growth {}, \
         bound {})",
        mib(PUSHED_BYTES as u64),
        mib(before),
        mib(after),
        mib(growth),
        mib(bound)
    );
    assert!(
        growth < bound,
        "the host grew by {} while a client read nothing; the bound is {}",
        mib(growth),
        mib(bound)
    );
    let function = admin.function("lifecycle").await;
    assert!(
        function["stats"]["dropped_frames"].as_u64() > Some(0),
        "dropped frames are counted: {function}"
    );
    assert_eq!(
        function["stats"]["slow_consumer_closes"], 0,
        "drop-oldest closes nobody: {function}"
    );
    assert!(
        admin
            .connections("lifecycle")
            .await
            .iter()
            .any(|connection| connection["id"] == id.as_str()),
        "the connection is still open"
    );

    // Once the client reads again it gets what was kept, and is served as before.
    client.send_text("id").await;
    assert_eq!(client.next_text().await, id, "the connection still works");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_close_policy_closes_a_never_reading_client_with_1008_and_counts_it() {
    let host = slow_consumer_host("close").await;
    let admin = host.admin();
    let (mut client, id) = never_reading_client(&host).await;

    // Pushes are accepted until the queue is full; the push that finds it full is refused
    // with 429 and the client is closed.
    let message = vec![0xa5_u8; PUSH_BYTES];
    let mut refused = false;
    for _ in 0..PUSHED_BYTES / PUSH_BYTES {
        let answer = admin
            .post(
                &format!("/v1/connections/{id}/send"),
                OCTET_STREAM,
                message.clone(),
            )
            .await;
        if answer.status == 429 {
            refused = true;
            break;
        }
        answer.expect_status(200);
    }
    assert!(
        refused,
        "{} were queued for a client that reads nothing, and none was refused",
        mib(PUSHED_BYTES as u64)
    );

    let (code, reason) = client.expect_close().await;
    assert_eq!(code, POLICY_VIOLATION, "close reason {reason:?}");
    let run = host.wait_for_on_close(&id).await;
    assert_eq!(run.code, POLICY_VIOLATION, "on-close: {run:?}");
    let function = admin.function("lifecycle").await;
    assert_eq!(
        function["stats"]["slow_consumer_closes"], 1,
        "the close is counted once: {function}"
    );
    assert_eq!(
        function["stats"]["dropped_frames"], 0,
        "nothing is dropped under the close policy: {function}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_lets_go_of_a_slow_consumer_that_never_reads_again() {
    let host = slow_consumer_host("close").await;
    let admin = host.admin();
    let (client, id) = never_reading_client(&host).await;
    let client_port = client.local_port();
    assert!(
        host.holds_connection_from(client_port),
        "the host's socket for the client can be found while it is open"
    );

    let message = vec![0xa5_u8; PUSH_BYTES];
    for _ in 0..PUSHED_BYTES / PUSH_BYTES {
        let answer = admin
            .post(
                &format!("/v1/connections/{id}/send"),
                OCTET_STREAM,
                message.clone(),
            )
            .await;
        if answer.status == 429 {
            break;
        }
        answer.expect_status(200);
    }
    // The client neither reads nor answers the close: the host gives up on the close
    // handshake, runs on-close, and must then release the socket rather than keep a task
    // blocked on writing to a peer that will never read.
    host.wait_for_on_close(&id).await;
    poll_until(
        "the host has closed the slow consumer's socket",
        async || (!host.holds_connection_from(client_port)).then_some(()),
    )
    .await;
    drop(client);
}
