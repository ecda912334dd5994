//! On-close runs exactly once for every way an accepted connection can end, with the code
//! that names the cause; a refused connection never runs it.
//!
//! Each path gets its own host with the limits that provoke it. On-close is observed in the
//! host's log, where the `lifecycle` fixture prints `on-close ID CODE REASON` before doing
//! anything else: that still works while the host is exiting and after the function and its
//! state were removed. After the run is seen, another connection is opened and closed and
//! its own on-close awaited; only then is the first count checked again, so a second run for
//! the first connection would have had a whole event cycle to show up.

use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    CloseInfo, Host, OnCloseRun, RSV1_BIT, function_bytes, kernel_send_buffer_max, poll_until,
};

const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const PROTOCOL_ERROR: u16 = 1002;
/// What on-close is given when the connection ended without a close handshake.
const ABNORMAL: u16 = 1006;
const POLICY_VIOLATION: u16 = 1008;
const MESSAGE_TOO_BIG: u16 = 1009;
const INTERNAL_ERROR: u16 = 1011;

const MIB: usize = 1024 * 1024;

/// Asserts what the single on-close run of a connection was given.
fn assert_run(run: &OnCloseRun, code: u16, reason: Option<&str>) {
    assert_eq!(run.code, code, "on-close code for {}: {run:?}", run.id);
    if let Some(reason) = reason {
        assert_eq!(
            run.reason, reason,
            "on-close reason for {}: {run:?}",
            run.id
        );
    }
}

/// Lets one more connection of `function` live and end normally, waits for its on-close, and
/// then checks that on-close has still run exactly once for `id`.
async fn assert_still_once_after_another_connection(host: &Host, function: &str, id: &str) {
    let mut later = host.connect(function).await;
    let later_id = later.connection_id().await;
    later.close(NORMAL, "later").await;
    host.wait_for_on_close(&later_id).await;

    let runs = host.on_close_runs_of(id);
    assert_eq!(
        runs.len(),
        1,
        "on-close runs once for {id}, also after later events: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_close_runs_on_close_once_with_the_peers_code() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    client.close(4100, "peer leaves").await;

    assert_run(
        &host.wait_for_on_close(&id).await,
        4100,
        Some("peer leaves"),
    );
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_peer_runs_on_close_once_with_1006() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    client.drop_without_close();

    assert_run(&host.wait_for_on_close(&id).await, ABNORMAL, None);
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_with_1001_and_runs_on_close_once() {
    let host = Host::builder()
        .function("lifecycle")
        // Long enough that the first round trip always fits in it, even on a loaded machine.
        .option("--idle-timeout-ms", "1500")
        .start_process()
        .await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    // Sends nothing more: the host ends the connection once it has been idle long enough.
    let close = client.expect_close().await;

    assert_eq!(close, CloseInfo::new(GOING_AWAY, "idle timeout"));
    assert_run(
        &host.wait_for_on_close(&id).await,
        GOING_AWAY,
        Some("idle timeout"),
    );
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

/// A host that pings after 1 s of silence and gives up 1 s after an unanswered ping: long
/// enough that a test's first round trip always fits before the first ping, even on a loaded
/// machine.
async fn quick_ping_host() -> Host {
    Host::builder()
        .function("lifecycle")
        .option("--ping-interval-ms", "1000")
        .option("--pong-timeout-ms", "1000")
        .start_process()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_never_answers_pings_runs_on_close_once_with_1006() {
    let host = quick_ping_host().await;
    let mut client = host.silent_connect("lifecycle").await;
    client.send_text("id").await;
    let id = client.next_text().await;

    // The client reads nothing more, so the host's pings go unanswered.
    let run = host.wait_for_on_close(&id).await;

    // README and `--pong-timeout-ms`: "a peer that answers nothing is dropped; on-close gets
    // 1006". The peer never completed a close handshake, so 1006 is also what RFC 6455 §7.1.5
    // calls the connection's close code.
    assert_run(&run, ABNORMAL, None);
    // The host still says goodbye, in case only the peer's direction was broken.
    let (code, _) = client.expect_close().await;
    assert_eq!(code, GOING_AWAY, "the close frame the host sent");
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_never_answers_the_hosts_close_runs_on_close_once_with_1006() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.silent_connect("lifecycle").await;
    client.send_text("id").await;
    let id = client.next_text().await;

    host.admin()
        .delete(&format!("/v1/connections/{id}?code=4001&reason=admin"))
        .await
        .expect_status(202);

    // The client never reads the close frame, so never answers it; the host gives up after
    // its close-handshake limit (5 s) and, per the README's table of limits, "the peer is
    // dropped without waiting for its close frame (on-close gets 1006)".
    let run = host.wait_for_on_close(&id).await;
    assert_run(&run, ABNORMAL, None);
    assert_eq!(
        client.expect_close().await.0,
        4001,
        "the close frame the host sent"
    );
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protocol_error_closes_with_1002_and_runs_on_close_once() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.silent_connect("lifecycle").await;
    client.send_text("id").await;
    let id = client.next_text().await;

    // A compressed text frame, though no extension was negotiated.
    client.send_frame(0x80 | RSV1_BIT | 0x1, b"id").await;

    let (code, _) = client.expect_close().await;
    assert_eq!(code, PROTOCOL_ERROR);
    assert_run(&host.wait_for_on_close(&id).await, PROTOCOL_ERROR, None);
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_closes_with_1009_and_runs_on_close_once() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    let close = client
        .send_expecting_close(vec![Message::binary(vec![0u8; 2 * MIB])])
        .await;

    assert_eq!(close.code, MESSAGE_TOO_BIG, "{close:?}");
    assert_run(&host.wait_for_on_close(&id).await, MESSAGE_TOO_BIG, None);
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

/// The outbound queue of the slow-consumer hosts.
const SMALL_QUEUE: &str = "64KiB";
const SMALL_QUEUE_BYTES: usize = 64 * 1024;
/// The receive buffer the never-reading client asks for: fixed, so the kernel does not grow
/// it while nobody reads.
const CLIENT_RECEIVE_BUFFER: u32 = 64 * 1024;
/// One `flood 2000 1024` command makes the fixture send this many payload bytes.
const FLOOD: &str = "flood 2000 1024";
const FLOOD_BYTES: usize = 2000 * 1024;

/// How many floods are certain to overflow the queue of a client that never reads: enough to
/// fill the kernel's buffers on both sides (the client's receive buffer counts double, as
/// the kernel doubles what was asked for), the batch the host's writer is stuck on and the
/// queue itself, plus one.
fn floods_to_overflow() -> usize {
    let absorbable =
        kernel_send_buffer_max() + 2 * CLIENT_RECEIVE_BUFFER as usize + 2 * SMALL_QUEUE_BYTES;
    absorbable.div_ceil(FLOOD_BYTES) + 1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_is_closed_with_1008_and_runs_on_close_once() {
    let host = Host::builder()
        .function("lifecycle")
        .option("--outbound-queue", SMALL_QUEUE)
        .start_process()
        .await;
    let admin = host.admin();
    let mut client = host
        .silent_connect_with_receive_buffer("lifecycle", CLIENT_RECEIVE_BUFFER)
        .await;
    client.send_text("id").await;
    let id = client.next_text().await;

    // From here on the client reads nothing while the function floods it.
    for _ in 0..floods_to_overflow() {
        client.send_text(FLOOD).await;
    }
    poll_until("the host has closed a slow consumer", async || {
        let function = admin.function("lifecycle").await;
        (function["stats"]["slow_consumer_closes"] == 1).then_some(())
    })
    .await;

    let (code, reason) = client.expect_close().await;
    assert_eq!(code, POLICY_VIOLATION, "close reason {reason:?}");
    assert_run(&host.wait_for_on_close(&id).await, POLICY_VIOLATION, None);
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_fault_closes_with_1011_and_runs_on_close_once() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    client.send_text("trap").await;

    assert_eq!(client.expect_close().await.code, INTERNAL_ERROR);
    assert_run(&host.wait_for_on_close(&id).await, INTERNAL_ERROR, None);
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_by_the_function_runs_on_close_once_with_its_code() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    client.send_text("close 4000 bye").await;

    assert_eq!(client.expect_close().await, CloseInfo::new(4000, "bye"));
    assert_run(&host.wait_for_on_close(&id).await, 4000, Some("bye"));
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_by_the_admin_api_runs_on_close_once_with_its_code() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    host.admin()
        .delete(&format!("/v1/connections/{id}?code=4001&reason=admin"))
        .await
        .expect_status(202);

    assert_eq!(client.expect_close().await, CloseInfo::new(4001, "admin"));
    assert_run(&host.wait_for_on_close(&id).await, 4001, Some("admin"));
    assert_still_once_after_another_connection(&host, "lifecycle", &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_the_function_closes_with_1001_and_runs_on_close_once() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let admin = host.admin();
    let mut clients = vec![
        host.connect("lifecycle").await,
        host.connect("lifecycle").await,
    ];
    let mut ids = Vec::new();
    for client in &mut clients {
        ids.push(client.connection_id().await);
    }

    admin
        .delete("/v1/functions/lifecycle")
        .await
        .expect_status(200);

    for client in &mut clients {
        assert_eq!(
            client.expect_close().await,
            CloseInfo::new(GOING_AWAY, "function removed")
        );
    }
    for id in &ids {
        assert_run(
            &host.wait_for_on_close(id).await,
            GOING_AWAY,
            Some("function removed"),
        );
    }
    // The later connection needs the function back; a new deployment starts with no
    // connections and must not run anyone else's on-close.
    admin.deploy("lifecycle", function_bytes("lifecycle")).await;
    for id in &ids {
        assert_still_once_after_another_connection(&host, "lifecycle", id).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_with_1001_and_runs_on_close_once_before_exiting() {
    let mut host = Host::builder().function("lifecycle").start_process().await;
    let mut clients = vec![
        host.connect("lifecycle").await,
        host.connect("lifecycle").await,
        host.connect("lifecycle").await,
    ];
    let mut ids = Vec::new();
    for client in &mut clients {
        ids.push(client.connection_id().await);
    }

    host.send_sigterm();

    for client in &mut clients {
        assert_eq!(client.expect_close().await.code, GOING_AWAY);
    }
    let status = host.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
    // The process is gone, so the log is complete: nothing can run on-close again.
    for id in &ids {
        let runs = host.on_close_runs_of(id);
        assert_eq!(runs.len(), 1, "on-close runs once for {id}: {runs:?}");
        assert_run(&runs[0], GOING_AWAY, None);
    }
    assert_eq!(
        host.on_close_runs().len(),
        ids.len(),
        "no other on-close ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_connection_never_runs_on_close() {
    let host = Host::builder().function("lifecycle").start_process().await;

    for status in [400, 403, 429, 503] {
        host.refused_handshake_status(&format!("lifecycle?reject={status}"))
            .await;
    }
    // An accepted connection ended after the refusals; once its on-close has run, an
    // on-close wrongly started for a refusal has had every chance to run too.
    let mut accepted = host.connect("lifecycle").await;
    let id = accepted.connection_id().await;
    accepted.close(NORMAL, "").await;
    host.wait_for_on_close(&id).await;

    let runs = host.on_close_runs();
    assert_eq!(
        runs.iter().map(|run| run.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()],
        "only the accepted connection ran on-close: {runs:?}"
    );
}
