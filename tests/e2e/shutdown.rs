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
        .start()
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
    assert_eq!(
        host.later_stdout_lines(),
        Vec::<String>::new(),
        "the ready line is the only thing printed on stdout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_without_connections_exits_with_status_0() {
    let mut host = Host::builder().function("echo").start().await;

    host.send_sigterm();

    let status = host.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "wsfn-host exited with {status}");
}
