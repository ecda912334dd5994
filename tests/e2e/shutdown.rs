//! Graceful shutdown: on SIGTERM every client is told the server is going away (1001) and
//! the process exits successfully.

use crate::support::Host;

/// The close code for an endpoint that is going away (RFC 6455).
const GOING_AWAY: u16 = 1001;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_every_connection_with_1001_and_exits_with_status_0() {
    let mut host = Host::builder()
        .function("echo")
        .function("chat")
        .function("lifecycle")
        .start_process()
        .await;
    let mut clients = vec![
        host.connect("echo").await,
        host.connect("echo").await,
        host.connect("chat?room=lobby&user=ann").await,
        host.connect("lifecycle").await,
    ];
    // Every connection has been served once, so each is fully set up on the host.
    for (index, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("hello {index}")).await;
        client.receive_text().await;
    }

    host.send_sigterm();

    for client in &mut clients {
        assert_eq!(client.expect_close().await.code, GOING_AWAY);
    }
    let status = host.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
    let stdout = host.stdout_lines();
    let ready_lines = stdout
        .iter()
        .filter(|line| line.starts_with("wsfn-host listening on ws://"))
        .count();
    assert_eq!(ready_lines, 1, "readiness is announced once: {stdout:?}");
    assert!(
        stdout.iter().all(|line| line.starts_with("wsfn-host ")),
        "stdout holds only the host's announcements, logs go to stderr: {stdout:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_without_connections_exits_with_status_0() {
    let mut host = Host::builder().function("echo").start_process().await;

    host.send_sigterm();

    let status = host.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
}
