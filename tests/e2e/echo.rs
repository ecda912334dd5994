//! The `echo` sample: every message comes back exactly, in order, on every connection; the
//! same tests for its Rust, Python and JavaScript builds.

use tokio_tungstenite::tungstenite::Message;

use crate::support::{Host, binary_fragments, in_every_language, text_fragments};

in_every_language!("echo":
    text_comes_back_as_the_same_text,
    a_512_kib_binary_message_comes_back_byte_for_byte,
    empty_messages_come_back_empty_and_keep_their_kind,
    a_fragmented_message_reaches_the_function_as_one_message,
    a_thousand_pipelined_messages_come_back_in_order,
    fifty_concurrent_connections_each_get_only_their_own_echoes,
    a_ping_is_answered_by_the_host_without_reaching_the_function,
);

/// Serves the build `function` of echo at `/echo`.
async fn echo_host(function: &str) -> Host {
    Host::builder()
        .precompiled_function_served_as("echo", function)
        .start()
        .await
}

async fn text_comes_back_as_the_same_text(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;

    client.send_text("hello, wsfn ✓").await;

    assert_eq!(
        client.receive_message().await,
        Message::text("hello, wsfn ✓")
    );
}

async fn a_512_kib_binary_message_comes_back_byte_for_byte(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;
    // Every byte value, in a pattern that does not repeat at any power-of-two stride, so a
    // dropped, duplicated or reordered chunk cannot go unnoticed.
    let payload: Vec<u8> = (0..512 * 1024u32)
        .map(|index| (index.wrapping_mul(31) ^ (index >> 9)) as u8)
        .collect();

    client.send_binary(payload.clone()).await;

    let echoed = client.receive_binary().await;
    assert_eq!(echoed.len(), payload.len());
    assert!(
        echoed == payload,
        "the echoed bytes differ from the sent ones"
    );
}

async fn empty_messages_come_back_empty_and_keep_their_kind(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;

    client.send_text("").await;
    assert_eq!(client.receive_message().await, Message::text(""));

    client.send_binary(Vec::new()).await;
    assert_eq!(client.receive_message().await, Message::binary(Vec::new()));
}

async fn a_fragmented_message_reaches_the_function_as_one_message(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;

    client
        .send_all(text_fragments(&["one ", "two ", "three"]))
        .await;
    assert_eq!(
        client.receive_message().await,
        Message::text("one two three")
    );

    client
        .send_all(binary_fragments([vec![1, 2], vec![3], vec![4, 5, 6]]))
        .await;
    assert_eq!(
        client.receive_message().await,
        Message::binary(vec![1, 2, 3, 4, 5, 6])
    );
}

async fn a_thousand_pipelined_messages_come_back_in_order(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;
    // Alternating kinds also checks that text never turns into binary or back.
    let messages: Vec<Message> = (0..1000)
        .map(|index| {
            if index % 2 == 0 {
                Message::text(format!("message {index}"))
            } else {
                Message::binary(format!("message {index}").into_bytes())
            }
        })
        .collect();

    let replies = client.exchange_pipelined(messages.clone()).await;

    for (index, (sent, received)) in messages.iter().zip(&replies).enumerate() {
        assert_eq!(received, sent, "reply {index} is out of order or altered");
    }
}

async fn fifty_concurrent_connections_each_get_only_their_own_echoes(function: &str) {
    let host = echo_host(function).await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(host.connect("echo").await);
    }

    let conversations = clients
        .into_iter()
        .enumerate()
        .map(|(connection, mut client)| {
            tokio::spawn(async move {
                for message in 0..5 {
                    let text = format!("connection {connection} message {message}");
                    assert_eq!(client.ask(&text).await, text);
                }
            })
        });

    for conversation in futures_util::future::join_all(conversations).await {
        conversation.expect("every connection echoes correctly");
    }
}

async fn a_ping_is_answered_by_the_host_without_reaching_the_function(function: &str) {
    let host = echo_host(function).await;
    let mut client = host.connect("echo").await;

    client.ping(b"are you there").await;

    // Had the ping been handed to the function as a message, its echo would come first.
    assert_eq!(client.ask("after the ping").await, "after the ping");
}
