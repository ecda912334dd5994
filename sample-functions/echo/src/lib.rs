//! Echo: sends every message back to its sender, text as text and binary as binary.

use wsfn_guest::{Connection, Function, Message};

struct Echo;

impl Function for Echo {
    fn on_message(conn: Connection, message: Message) {
        conn.reply(message)
    }
}

wsfn_guest::export!(Echo);
