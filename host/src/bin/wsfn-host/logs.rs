//! `wsfn-host logs NAME`: follows a function's live log on a running host and prints each
//! line for a person, until interrupted or until the host ends the stream.

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::admin_client::{AdminClient, ClientArgs, segment};

#[derive(Args)]
pub struct LogsArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn follow(args: LogsArgs) -> Result<()> {
    let client = AdminClient::new(&args.client)?;
    let mut body = client
        .open_stream(&format!("/v1/functions/{}/logs", segment(&args.name)))
        .await
        .with_context(|| format!("following the log of `{}` failed", args.name))?;
    eprintln!("following the log of `{}` (Ctrl-C to stop)", args.name);
    let mut stdout = std::io::stdout();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the log stream broke off")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let text = match serde_json::from_str::<Value>(line) {
                Ok(value) => describe(&args.name, &value),
                Err(_) => line.to_owned(),
            };
            match writeln!(stdout, "{text}") {
                Ok(()) => {}
                // The reader went away (`wsfn-host logs f | head`): nothing left to do.
                Err(error) if error.kind() == ErrorKind::BrokenPipe => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
    }
    eprintln!("the host ended the log stream");
    Ok(())
}

/// One log line for a person: `12:00:01.123 chat stdout [connection] text`.
fn describe(name: &str, line: &Value) -> String {
    let time = line["ts"]
        .as_str()
        .and_then(|ts| ts.get(11..23))
        .unwrap_or("??:??:??.???");
    let kind = line["kind"].as_str().unwrap_or("?");
    let text = |key: &str| line[key].as_str().unwrap_or("").to_owned();
    let connection = line["connection"]
        .as_str()
        .map(|id| format!("[{id}] "))
        .unwrap_or_default();
    let detail = match kind {
        "stdout" | "stderr" => format!("{connection}{}", text("text")),
        "connect" => format!("{connection}from {}", text("remote")),
        "reject" => format!(
            "{} to {}: {}",
            line["status"],
            text("remote"),
            text("reason")
        ),
        "close" => format!("{connection}{} {}", line["code"], text("reason")),
        "fault" => format!(
            "{connection}{} in {}: {}",
            text("fault"),
            text("event"),
            text("message")
        ),
        "deploy" => format!("now serving version {}", line["version"]),
        "rollback" => format!(
            "now serving version {} again (was {})",
            line["version"], line["from"]
        ),
        "removed" => "the function was removed".to_owned(),
        "lagged" => format!("{} lines lost: this client read too slowly", line["missed"]),
        _ => line.to_string(),
    };
    format!("{time} {name} {kind} {detail}")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::describe;
    use serde_json::json;

    #[test]
    fn lines_read_as_time_function_kind_and_detail() {
        let ts = "2026-11-22T12:00:01.123Z";
        let cases = [
            (
                json!({"ts": ts, "kind": "stdout", "connection": "ab12", "text": "hello"}),
                "12:00:01.123 chat stdout [ab12] hello",
            ),
            (
                json!({"ts": ts, "kind": "close", "connection": "ab12", "code": 1000, "reason": "bye"}),
                "12:00:01.123 chat close [ab12] 1000 bye",
            ),
            (
                json!({"ts": ts, "kind": "reject", "status": 403, "remote": "127.0.0.1:5", "reason": "no"}),
                "12:00:01.123 chat reject 403 to 127.0.0.1:5: no",
            ),
            (
                json!({"ts": ts, "kind": "lagged", "missed": 7}),
                "12:00:01.123 chat lagged 7 lines lost: this client read too slowly",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(describe("chat", &line), expected);
        }
    }
}
