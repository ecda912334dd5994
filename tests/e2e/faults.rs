//! Misbehaving guests (the `faulty` fixture): a fault ends only the connection whose event
//! faulted, with 1011, and never the host, the function or anyone else's connection.

use crate::support::Host;

/// The close code for an unexpected condition on the server (RFC 6455).
const INTERNAL_ERROR: u16 = 1011;

/// A per-event deadline short enough that the endless loop is cut quickly.
const EVENT_TIMEOUT_MS: u64 = 200;

async fn faulty_and_echo_host() -> Host {
    Host::builder()
        .function("faulty")
        .function("echo")
        .event_timeout_ms(EVENT_TIMEOUT_MS)
        .start()
        .await
}

/// Sends `command` on one `faulty` connection and checks that exactly that connection is
/// closed with 1011 while the rest keeps working.
async fn assert_fault_ends_only_its_own_connection(host: &mut Host, command: &str) {
    let mut culprit = host.connect("faulty").await;
    let mut neighbour = host.connect("faulty").await;
    let mut echo = host.connect("echo").await;
    assert_eq!(culprit.ask("before the fault").await, "before the fault");

    culprit.send_text(command).await;

    let close = culprit.expect_close().await;
    assert_eq!(
        close.code, INTERNAL_ERROR,
        "`{command}` closed with {close:?}"
    );
    assert_eq!(
        neighbour.ask("same function").await,
        "same function",
        "another connection of the faulted function keeps working"
    );
    assert_eq!(
        echo.ask("other function").await,
        "other function",
        "connections of other functions keep working"
    );
    let mut newcomer = host.connect("faulty").await;
    assert_eq!(
        newcomer.ask("after the fault").await,
        "after the fault",
        "the faulted function still takes new connections"
    );
    host.assert_still_running();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_closes_only_that_connection_with_1011() {
    let mut host = faulty_and_echo_host().await;
    assert_fault_ends_only_its_own_connection(&mut host, "trap").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_cut_at_the_event_deadline_with_1011() {
    let mut host = faulty_and_echo_host().await;
    assert_fault_ends_only_its_own_connection(&mut host, "loop").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausting_memory_closes_only_that_connection_with_1011() {
    let mut host = faulty_and_echo_host().await;
    assert_fault_ends_only_its_own_connection(&mut host, "oom").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_closes_only_that_connection_with_1011() {
    let mut host = faulty_and_echo_host().await;
    assert_fault_ends_only_its_own_connection(&mut host, "stack").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_faults_in_a_row_leave_the_function_serving() {
    let mut host = faulty_and_echo_host().await;

    // More faults than a small pool has instances, so faulted instances must be replaced.
    for round in 0..12 {
        let command = ["trap", "oom", "stack", "loop"][round % 4];
        let mut culprit = host.connect("faulty").await;
        culprit.send_text(command).await;
        let close = culprit.expect_close().await;
        assert_eq!(close.code, INTERNAL_ERROR, "round {round}: `{command}`");
    }

    let mut survivor = host.connect("faulty").await;
    assert_eq!(survivor.ask("still serving").await, "still serving");
    host.assert_still_running();
}
