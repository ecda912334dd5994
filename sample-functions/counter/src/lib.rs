//! Counter: every message adds one to a named counter and replies the new value as decimal
//! text. Connect to `/counter` for the counter named `counter`, shared by every connection, or
//! to `/counter?name=NAME` for another one; add `&watch=NAME` to also receive `NAME:VALUE`
//! each time that counter grows, whichever connection made it grow.

use serde_json::json;
use wsfn_guest::kv::Bucket;
use wsfn_guest::{ConnectRequest, Connection, Decision, Function, Group, Message};

/// The counter a connection counts when it names none; also its key in the default bucket,
/// so the counter of earlier versions of this sample keeps its value.
const DEFAULT_NAME: &str = "counter";

/// The group of the connections watching the counter `name`.
fn watchers(name: &str) -> Group {
    Group::new(format!("watch:{name}"))
}

/// Reads a query parameter that, when present, must not be empty.
fn name_param<'a>(request: &'a ConnectRequest, param: &str) -> Result<Option<&'a str>, Decision> {
    match request.query_param(param) {
        Some("") => Err(Decision::reject(400, format!("?{param}= needs a counter name"))),
        other => Ok(other),
    }
}

struct Counter;

impl Function for Counter {
    fn on_connect(request: ConnectRequest) -> Decision {
        let (name, watched) = match (name_param(&request, "name"), name_param(&request, "watch"))
        {
            (Ok(name), Ok(watched)) => (name.unwrap_or(DEFAULT_NAME), watched),
            (Err(rejected), _) | (_, Err(rejected)) => return rejected,
        };
        // The attachment carries the counter's name to every later message, so the function
        // keeps no state of its own.
        let decision = Decision::accept().attachment(name);
        match watched {
            Some(watched) => decision.join(watchers(watched).name()),
            None => decision,
        }
    }

    fn on_message(conn: Connection, _message: Message) {
        let reply_error = |what: String| {
            let _ = conn.reply_json(&json!({ "error": what }));
        };
        // A connection accepted by a version without names has no attachment: it counts the
        // default counter, as it always did.
        let name = match conn.attachment_text() {
            Ok(name) => name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            Err(e) => return reply_error(wsfn_guest::Error::from(e).to_string()),
        };
        // `increment` is atomic in the store, so concurrent connections (served by different
        // instances) never lose an update the way a get-then-set would.
        match Bucket::open_default().and_then(|bucket| bucket.increment(&name, 1)) {
            Ok(value) => {
                conn.reply(value.to_string());
                watchers(&name).publish(format!("{name}:{value}"));
            }
            Err(e) => reply_error(e.to_string()),
        }
    }
}

wsfn_guest::export!(Counter);
