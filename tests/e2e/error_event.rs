//! The error event: after a guest fault in on-connect, on-message or on-close, the function's
//! on-error runs exactly once, with the connection's id and a message naming the handler and
//! the fault; on-close keeps running exactly once; a failing on-error is only logged.
//!
//! The `lifecycle` fixture prints `on-error ID MESSAGE` into the host's log before doing
//! anything else, and counts its runs in key-value state.

use crate::support::{Client, Host};

const NORMAL: u16 = 1000;
const INTERNAL_ERROR: u16 = 1011;

/// A per-event deadline short enough that the endless loop is cut quickly.
const EVENT_TIMEOUT_MS: u64 = 200;

/// Lets one more connection live and end normally and waits for its on-close, so a second
/// on-error or on-close for `id` would have had a whole event cycle to show up; then checks
/// that each ran exactly once for `id`, in the log and in the fixture's own count.
async fn assert_each_ran_once(host: &Host, id: &str) {
    let mut later = host.connect("lifecycle").await;
    let later_id = later.connection_id().await;
    assert_eq!(later.errors_of(id).await, 1, "on-error count of {id}");
    assert_eq!(later.closes_of(id).await, 1, "on-close count of {id}");
    later.close(NORMAL, "later").await;
    host.wait_for_on_close(&later_id).await;

    let errors = host.on_error_runs_of(id);
    assert_eq!(errors.len(), 1, "on-error runs of {id}: {errors:?}");
    let closes = host.on_close_runs_of(id);
    assert_eq!(closes.len(), 1, "on-close runs of {id}: {closes:?}");
    assert!(
        host.on_error_runs_of(&later_id).is_empty(),
        "a connection without a fault gets no on-error"
    );
}

/// Sends `command` and checks that the host closed the connection with 1011.
async fn fault_with(client: &mut Client, command: &str) {
    client.send_text(command).await;
    let close = client.expect_close().await;
    assert_eq!(
        close.code, INTERNAL_ERROR,
        "`{command}` closed with {close:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_on_message_runs_on_error_once_before_on_close() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    fault_with(&mut client, "trap").await;

    let error = host.wait_for_on_error(&id).await;
    assert!(
        error.message.starts_with("on-message trapped: "),
        "{error:?}"
    );
    assert!(error.message.contains("unreachable"), "{error:?}");
    assert!(
        !error.message.contains('\n') && !error.message.contains("backtrace"),
        "on-error gets the cause, not a backtrace: {error:?}"
    );
    let close = host.wait_for_on_close(&id).await;
    assert_eq!(close.code, INTERNAL_ERROR, "{close:?}");
    let close_line = host
        .on_close_line_of(&id)
        .expect("on-close was logged for the connection");
    assert!(
        error.line < close_line,
        "on-error (log line {}) runs before on-close (log line {close_line})",
        error.line
    );
    let mut observer = host.connect("lifecycle").await;
    assert_eq!(observer.error_info(&id).await, error.message);
    assert_each_ran_once(&host, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_in_on_message_runs_on_error_once() {
    let host = Host::builder()
        .function("lifecycle")
        .event_timeout_ms(EVENT_TIMEOUT_MS)
        .start_process()
        .await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    fault_with(&mut client, "loop").await;

    let error = host.wait_for_on_error(&id).await;
    assert_eq!(
        error.message,
        format!("on-message ran past its deadline of {EVENT_TIMEOUT_MS} ms")
    );
    assert_eq!(host.wait_for_on_close(&id).await.code, INTERNAL_ERROR);
    assert_each_ran_once(&host, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_on_close_runs_on_error_once_after_it() {
    let host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle?tag=trap-on-close").await;
    let id = client.connection_id().await;

    client.close(NORMAL, "bye").await;

    let close = host.wait_for_on_close(&id).await;
    assert_eq!((close.code, close.reason.as_str()), (NORMAL, "bye"));
    let error = host.wait_for_on_error(&id).await;
    assert!(error.message.starts_with("on-close trapped: "), "{error:?}");
    let close_line = host
        .on_close_line_of(&id)
        .expect("on-close was logged for the connection");
    assert!(error.line > close_line, "on-error runs after on-close");
    assert_each_ran_once(&host, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_on_connect_runs_on_error_once_and_refuses_with_500() {
    let host = Host::builder().function("lifecycle").start_process().await;

    let status = host
        .refused_handshake_status("lifecycle?trap-connect")
        .await;

    assert_eq!(status.as_u16(), 500);
    let from_connect = async || {
        host.on_error_runs()
            .into_iter()
            .filter(|run| run.message.starts_with("on-connect trapped: "))
            .collect::<Vec<_>>()
    };
    crate::support::poll_until("on-error has run for the refused connection", async || {
        (!from_connect().await.is_empty()).then_some(())
    })
    .await;
    let mut later = host.connect("lifecycle").await;
    let later_id = later.connection_id().await;
    let runs = from_connect().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let id = &runs[0].id;
    assert_eq!(id.len(), 32, "the id the connection would have had: {id}");
    assert_ne!(id, &later_id, "ids are never reused");
    assert_eq!(later.errors_of(id).await, 1);
    assert_eq!(
        later.closes_of(id).await,
        0,
        "a refused connection never runs on-close"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_on_error_is_only_logged_and_counted() {
    let mut host = Host::builder().function("lifecycle").start_process().await;
    let mut client = host.connect("lifecycle?tag=trap-on-error").await;
    let id = client.connection_id().await;

    fault_with(&mut client, "trap").await;

    host.wait_for_on_error(&id).await;
    assert_eq!(host.wait_for_on_close(&id).await.code, INTERNAL_ERROR);
    assert_each_ran_once(&host, &id).await;
    let function = host.admin().function("lifecycle").await;
    assert_eq!(
        function["stats"]["faults_trap"], 2,
        "the trap in on-message and the one in on-error: {function}"
    );
    let mut newcomer = host.connect("lifecycle").await;
    assert_eq!(newcomer.ask("still here").await, "still here");
    host.assert_still_running();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_without_on_error_is_not_affected() {
    let mut host = Host::builder().function("faulty").start_process().await;
    let mut client = host.connect("faulty").await;

    fault_with(&mut client, "trap").await;

    let mut newcomer = host.connect("faulty").await;
    assert_eq!(newcomer.ask("after the fault").await, "after the fault");
    let function = host.admin().function("faulty").await;
    assert_eq!(
        function["stats"]["faults_trap"], 1,
        "only the fault itself is counted: {function}"
    );
    assert!(host.on_error_runs().is_empty());
    host.assert_still_running();
}

/// What on-error is told reads as the README shows it, and the host's own log line for the
/// fault gives the cause without the guest's backtrace.
#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_told_and_logged_by_its_cause_alone() {
    let host = Host::builder().function("lifecycle").start().await;
    let mut client = host.connect("lifecycle").await;
    let id = client.connection_id().await;

    fault_with(&mut client, "trap").await;

    let error = host.wait_for_on_error(&id).await;
    assert_eq!(
        error.message,
        "on-message trapped: wasm `unreachable` instruction executed"
    );
    let log = host.log();
    let fault = log
        .lines()
        .find(|line| line.contains("guest fault") && line.contains(&id))
        .unwrap_or_else(|| panic!("the fault of {id} is logged:\n{log}"));
    assert!(
        fault.contains("wasm `unreachable` instruction executed"),
        "{fault}"
    );
    assert!(
        !log.contains("<wasm function") && !log.contains("wasm backtrace"),
        "no backtrace at the default log level:\n{log}"
    );
}
