//! How functions are named on the command line and found by path.

use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::support::Host;

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_function_is_refused_with_404() {
    let host = Host::builder().function("echo").start().await;

    assert_eq!(
        host.refused_handshake_status("no-such-function").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_is_served_under_the_name_given_on_the_command_line() {
    let host = Host::builder()
        .function_served_as("mirror", "echo")
        .start()
        .await;

    let mut client = host.connect("mirror").await;
    assert_eq!(client.ask("through the mirror").await, "through the mirror");

    assert_eq!(
        host.refused_handshake_status("echo").await,
        StatusCode::NOT_FOUND,
        "a function given as name=file is served only under that name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn several_functions_are_served_side_by_side() {
    let host = Host::builder()
        .function("echo")
        .function("counter")
        .start()
        .await;

    let mut echo = host.connect("echo").await;
    let mut counter = host.connect("counter").await;

    assert_eq!(echo.ask("ping").await, "ping");
    let count = counter.ask("ping").await;
    assert!(
        count.parse::<u64>().is_ok(),
        "the counter answers with a number, got {count:?}"
    );
}
