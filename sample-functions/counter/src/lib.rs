//! Counter: every message adds one to a counter shared by all connections and replies the
//! new value as decimal text.

use serde_json::json;
use wsfn_guest::kv::Bucket;
use wsfn_guest::{Connection, Function, Message};

/// The key in the function's default bucket.
const COUNTER: &str = "counter";

struct Counter;

impl Function for Counter {
    fn on_message(conn: Connection, _message: Message) {
        // `increment` is atomic in the store, so concurrent connections (served by different
        // instances) never lose an update the way a get-then-set would.
        match Bucket::open_default().and_then(|bucket| bucket.increment(COUNTER, 1)) {
            Ok(value) => conn.reply(value.to_string()),
            Err(e) => {
                let _ = conn.reply_json(&json!({ "error": e.to_string() }));
            }
        }
    }
}

wsfn_guest::export!(Counter);
