//! Notifications: connect to `/notify?user=U`; send `{"to":"V","text":"..."}` to reach every
//! connection of user V, who receives `{"from":"U","text":"..."}`. The sender gets
//! `{"delivered":N}`, N being how many of V's connections it reached.
//!
//! Each user's connections share the group `user:<name>`, so anything outside can push to a
//! user too, by publishing to that group through the host's admin API.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wsfn_guest::{ConnectRequest, Connection, Decision, Function, Group, Message};

/// What a client sends.
#[derive(Deserialize)]
struct Send {
    to: String,
    text: String,
}

/// What the recipient receives.
#[derive(Serialize)]
struct Delivery<'a> {
    from: &'a str,
    text: &'a str,
}

/// The group holding every connection of `user`.
fn user_group(user: &str) -> Group {
    Group::new(format!("user:{user}"))
}

struct Notify;

impl Function for Notify {
    fn on_connect(request: ConnectRequest) -> Decision {
        match request.query_param("user").filter(|user| !user.is_empty()) {
            // The attachment remembers the sender's name for later messages.
            Some(user) => Decision::accept()
                .join(user_group(user).name())
                .attachment(user),
            None => Decision::reject(400, "connect with ?user=NAME"),
        }
    }

    fn on_message(conn: Connection, message: Message) {
        let reply_error = |what: String| {
            let _ = conn.reply_json(&json!({ "error": what }));
        };
        if !message.is_text() {
            return reply_error("expected a text message".to_owned());
        }
        let send: Send = match message.parse_json() {
            Ok(send) => send,
            Err(e) => return reply_error(format!("expected {{\"to\":..,\"text\":..}}: {e}")),
        };
        let from = match conn.attachment_text() {
            Ok(Some(from)) => from,
            Ok(None) => return reply_error("sender unknown".to_owned()),
            Err(e) => return reply_error(wsfn_guest::Error::from(e).to_string()),
        };
        let delivery = Delivery {
            from: &from,
            text: &send.text,
        };
        match user_group(&send.to).publish_json(&delivery) {
            Ok(delivered) => {
                let _ = conn.reply_json(&json!({ "delivered": delivered }));
            }
            Err(e) => reply_error(e.to_string()),
        }
    }
}

wsfn_guest::export!(Notify);
