//! Chat rooms: connect to `/chat?room=R&user=U`; every text message is broadcast to the room
//! (the sender included) and the room is told when someone joins or leaves.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wsfn_guest::{ConnectRequest, Connection, Decision, Function, Group, Message};

/// Who a connection is, kept by the host as the connection's attachment so that every later
/// event, including `on_close`, can tell without any state in the function.
#[derive(Serialize, Deserialize)]
struct Member {
    room: String,
    user: String,
}

/// What the room receives: `{"type":"join"|"message"|"leave","user":...}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Join { user: &'a str },
    Message { user: &'a str, text: &'a str },
    Leave { user: &'a str },
}

struct Chat;

impl Function for Chat {
    fn on_connect(request: ConnectRequest) -> Decision {
        let (Some(room), Some(user)) = (
            request.query_param("room").filter(|room| !room.is_empty()),
            request.query_param("user").filter(|user| !user.is_empty()),
        ) else {
            return Decision::reject(400, "connect with ?room=ROOM&user=NAME");
        };
        let member = Member {
            room: room.to_owned(),
            user: user.to_owned(),
        };
        // Announce before accepting: the newcomer is not in the group yet, so everyone else
        // hears about the join and the newcomer does not hear about itself.
        let _ = Group::new(room).publish_json(&Event::Join { user });
        Decision::accept()
            .join(room)
            .attachment_json(&member)
            .unwrap_or_else(|e| Decision::reject(500, e.to_string()))
    }

    fn on_message(conn: Connection, message: Message) {
        // Binary messages have no place in a text chat; ignore them rather than guess.
        let Some(text) = message.as_text() else {
            return;
        };
        match conn.attachment_json::<Member>() {
            Ok(Some(member)) => {
                let event = Event::Message {
                    user: &member.user,
                    text,
                };
                let _ = Group::new(member.room).publish_json(&event);
            }
            Ok(None) => {
                let _ = conn.reply_json(&json!({ "type": "error", "text": "no room joined" }));
            }
            Err(e) => {
                let _ = conn.reply_json(&json!({ "type": "error", "text": e.to_string() }));
            }
        }
    }

    fn on_close(conn: Connection, _code: u16, _reason: String) {
        // The closed connection has already left its groups, but its attachment is still
        // readable, so the room can be told who left.
        if let Ok(Some(member)) = conn.attachment_json::<Member>() {
            let _ = Group::new(member.room).publish_json(&Event::Leave { user: &member.user });
        }
    }
}

wsfn_guest::export!(Chat);
