//! A follower of a function's live log (`GET /v1/functions/{name}/logs`): reads the chunked
//! answer as it arrives and hands out one JSON line at a time.

use std::collections::VecDeque;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{Admin, within};

pub struct LogStream {
    body: Incoming,
    pending: Vec<u8>,
    lines: VecDeque<Value>,
    /// Every line read so far, for failure messages.
    seen: Vec<Value>,
}

impl LogStream {
    /// Opens the stream; the host has subscribed once this returns.
    pub async fn open(admin: &Admin, name: &str) -> Self {
        let path = format!("/v1/functions/{name}/logs");
        let mut request = Request::get(format!("{}{path}", admin.base()));
        if let Some(token) = admin.token() {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = within(
            &format!("the answer to GET {path}"),
            client.request(request),
        )
        .await
        .unwrap_or_else(|error| panic!("GET {path} failed: {error}"));
        assert_eq!(response.status(), 200, "GET {path}");
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(content_type, "application/x-ndjson", "GET {path}");
        Self {
            body: response.into_body(),
            pending: Vec::new(),
            lines: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` once the host ended the stream.
    pub async fn next(&mut self) -> Option<Value> {
        self.read(false).await
    }

    /// The next line, or `None` once the stream ended or broke off (its host was killed).
    pub async fn next_until_cut(&mut self) -> Option<Value> {
        self.read(true).await
    }

    async fn read(&mut self, may_break: bool) -> Option<Value> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            let frame = within("the next log line", self.body.frame()).await?;
            let frame = match frame {
                Ok(frame) => frame,
                Err(_) if may_break => return None,
                Err(error) => panic!("the log stream broke: {error}"),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.pending.extend_from_slice(&data);
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let value: Value = serde_json::from_slice(&line).unwrap_or_else(|error| {
                    panic!(
                        "a log line is one JSON object ({error}): {:?}",
                        String::from_utf8_lossy(&line)
                    )
                });
                assert!(
                    value["ts"].is_string(),
                    "a log line has a timestamp: {value}"
                );
                assert!(value["kind"].is_string(), "a log line has a kind: {value}");
                self.seen.push(value.clone());
                self.lines.push_back(value);
            }
        }
    }

    /// Reads until a line matches `wanted` (described by `what`), and returns it.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!("the log stream ended before {what}; read {:#?}", self.seen),
            }
        }
    }
}
