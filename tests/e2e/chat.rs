//! The `chat` sample: rooms are groups, messages are broadcast to the sender's room only; the
//! same tests for its Rust, Python and JavaScript builds.
//!
//! Sends to one connection arrive in order, so when a client's next message is the expected
//! one, nothing that should not have reached it was sent to it before: that is how these
//! tests show that a message stayed out of a room without waiting for a silence.

use serde_json::json;
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::support::{Host, in_every_language};

in_every_language!("chat":
    messages_reach_everyone_in_the_senders_room_and_no_one_else,
    joining_without_a_room_or_a_user_is_refused_with_400,
);

/// Serves the build `function` of chat at `/chat`, restored from a data directory where it was
/// compiled once (the Python and JavaScript builds take many seconds to compile).
async fn chat_host(function: &str) -> Host {
    Host::builder()
        .precompiled_function_served_as("chat", function)
        .start()
        .await
}

async fn messages_reach_everyone_in_the_senders_room_and_no_one_else(function: &str) {
    let host = chat_host(function).await;
    let mut ann = host.connect("chat?room=a&user=ann").await;
    let mut bob = host.connect("chat?room=a&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"}),
        "members are told who joins their room"
    );
    let mut cy = host.connect("chat?room=b&user=cy").await;

    // Quotes, a backslash and non-ASCII text must survive the JSON round trip.
    let text = r#"hello "room a" \ ✓"#;
    ann.send_text(text).await;

    let broadcast = json!({"type": "message", "user": "ann", "text": text});
    assert_eq!(
        ann.receive_json().await,
        broadcast,
        "the sender gets its own message, and nothing from room b came first"
    );
    assert_eq!(
        bob.receive_json().await,
        broadcast,
        "the other member gets it, and was not told about its own join"
    );
    cy.send_text("only for b").await;
    assert_eq!(
        cy.receive_json().await,
        json!({"type": "message", "user": "cy", "text": "only for b"}),
        "nothing from room a reached room b"
    );

    bob.close(1000, "").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "leave", "user": "bob"}),
        "members are told who leaves, and room b's message did not reach room a"
    );
    cy.send_text("still only b").await;
    assert_eq!(
        cy.receive_json().await,
        json!({"type": "message", "user": "cy", "text": "still only b"}),
        "a leave in room a is not announced in room b"
    );
}

async fn joining_without_a_room_or_a_user_is_refused_with_400(function: &str) {
    let host = chat_host(function).await;

    for path in ["chat?user=ann", "chat?room=a", "chat"] {
        assert_eq!(
            host.refused_handshake_status(path).await,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
}
