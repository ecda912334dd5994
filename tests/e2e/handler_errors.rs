//! Handlers that return `Err` (the Rust SDK's `impl Function<E>`): the error is logged on one
//! line naming the handler, with the function and the connection, and nothing else happens to
//! the connection; from on-connect it refuses the client with 500.
//!
//! The `fallible` fixture fails on request with a `ParseIntError`, a `serde_json::Error` and a
//! `String`, all through `?` into `Box<dyn Error>`.

use crate::support::{Host, poll_until, raw_upgrade};

const NORMAL: u16 = 1000;

/// Waits (bounded) until the host has logged the guest line `text` for `connection` (empty
/// for on-connect, which runs before there is a connection), and returns the log line.
async fn logged_guest_line(host: &Host, text: &str, connection: &str) -> String {
    let printed = format!(" guest: {text} ");
    let tagged = format!(" connection={connection} ");
    poll_until(&format!("the host logged {text:?}"), async || {
        host.log()
            .lines()
            .find(|line| line.contains(&printed) && line.contains(&tagged))
            .map(str::to_owned)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_err_from_on_message_is_logged_with_the_handler_and_the_connection_carries_on() {
    let host = Host::builder().function("fallible").start_process().await;
    let mut client = host.connect("fallible").await;
    let id = client.ask("id").await;

    client.send_text("number twelve").await;
    client.send_text("json {oops").await;
    client.send_text("fail out of cheese").await;
    // Events of a connection run in order, so this answer comes after the three failures;
    // had any of them replied, its reply would be read here instead.
    assert_eq!(client.ask("number 12").await, "12");

    for failure in [
        "on-message failed: invalid digit found in string",
        "on-message failed: key must be a string at line 1 column 2",
        "on-message failed: out of cheese",
    ] {
        let line = logged_guest_line(&host, failure, &id).await;
        assert!(line.contains("function=fallible"), "{line}");
    }
    assert_eq!(client.ask("still here").await, "still here");
    client.close(NORMAL, "done").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_err_from_on_connect_refuses_with_500_and_keeps_the_error_in_the_log() {
    let host = Host::builder().function("fallible").start_process().await;

    let refused = raw_upgrade(host.addr(), "fallible?fail=no%20database", &[]).await;

    assert_eq!(refused.status, 500);
    assert_eq!(
        String::from_utf8_lossy(&refused.body),
        "the function failed to accept the connection",
        "the client gets the host's answer for a failed on-connect, not the error"
    );
    logged_guest_line(&host, "on-connect failed: no database", "").await;
    let mut client = host.connect("fallible").await;
    assert_eq!(client.ask("hello").await, "hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_err_from_on_close_is_logged_with_the_connection() {
    let host = Host::builder().function("fallible").start_process().await;
    let mut client = host.connect("fallible").await;
    let id = client.ask("id").await;

    client.close(NORMAL, "fail on purpose").await;

    logged_guest_line(
        &host,
        &format!("on-close failed: {id} closed with {NORMAL} fail on purpose"),
        &id,
    )
    .await;
}
