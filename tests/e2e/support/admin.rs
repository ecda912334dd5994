//! A client of the host's admin API that fails the test with the whole exchange in the
//! message when an answer is not the expected one.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// Content type of a component upload.
pub const WASM: &str = "application/wasm";
/// Content type that makes a push a binary frame.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Content type of a text push.
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";

#[derive(Clone)]
pub struct Admin {
    /// Such as `http://127.0.0.1:40123`.
    base: String,
    /// The bearer token to present, if any.
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// What the admin API answered.
pub struct ApiResponse {
    /// The request, to say which exchange a failure is about.
    request: String,
    pub status: u16,
    pub content_type: Option<String>,
    headers: HeaderMap,
    pub body: Bytes,
}

impl fmt::Display for ApiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(500).collect();
        write!(
            f,
            "{} answered {} ({}) {body:?}",
            self.request,
            self.status,
            self.content_type.as_deref().unwrap_or("no content type")
        )
    }
}

impl ApiResponse {
    /// Asserts the status and returns the response for further checks.
    pub fn expect_status(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status: {self}");
        self
    }

    /// The body as JSON; fails the test if it is not JSON or not labelled as JSON.
    pub fn json(&self) -> Value {
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|value| value.starts_with(JSON)),
            "the answer should be labelled as JSON: {self}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("the answer should be JSON ({error}): {self}"))
    }

    /// Asserts the status and returns the JSON body.
    pub fn expect_json(self, status: u16) -> Value {
        self.expect_status(status).json()
    }

    /// Asserts an error status with the API's error body, `{"error": "..."}`, and returns
    /// the message, which must say something.
    pub fn expect_error(self, status: u16) -> String {
        let body = self.expect_status(status).json();
        let object = body.as_object().unwrap_or_else(|| {
            panic!("an error body is a JSON object with one field `error`, got {body}")
        });
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["error"],
            "an error body has exactly the field `error`: {body}"
        );
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("`error` is a string: {body}"));
        assert!(
            !message.trim().is_empty(),
            "an error says what went wrong: {body}"
        );
        message.to_owned()
    }

    /// The value of a response header, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec())
            .unwrap_or_else(|error| panic!("the answer should be UTF-8 ({error}): {self}"))
    }
}

impl Admin {
    pub(super) fn new(base: String, token: Option<String>) -> Self {
        Self {
            base,
            token,
            // A fresh connection per request: the server may close a kept-alive connection
            // after refusing a request whose body it did not read, and a pooled client would
            // then send the next request into that closing connection.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }

    /// The base URL, such as `http://127.0.0.1:40123`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token this client presents, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client presenting no token at all.
    pub fn without_token(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    /// The same client presenting `token` instead of the right one.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends one request; `path_and_query` starts with `/`.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> ApiResponse {
        let described = format!("{method} {path_and_query}");
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base));
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(body.into()))
            .unwrap_or_else(|error| panic!("cannot build {described}: {error}"));
        within(&format!("the answer to {described}"), async {
            let response = self
                .client
                .request(request)
                .await
                .unwrap_or_else(|error| panic!("{described} failed: {error:?}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            let body = response
                .into_body()
                .collect()
                .await
                .unwrap_or_else(|error| panic!("reading the answer to {described}: {error}"))
                .to_bytes();
            ApiResponse {
                request: described.clone(),
                status,
                content_type,
                headers,
                body,
            }
        })
        .await
    }

    /// Sends a request while already reading the answer, as curl does, for bodies the host
    /// may refuse before reading them whole. The host then answers and closes the connection
    /// with the rest of the body unread; a client that reads only after writing everything
    /// (such as hyper's) sees that close as a broken pipe instead of the answer.
    pub async fn request_reading_early(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> ApiResponse {
        let described = format!("{method} {path} with {} bytes", body.len());
        let authority = self.base.trim_start_matches("http://").to_owned();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let stream = within(
            &format!("connecting for {described}"),
            TcpStream::connect(&authority),
        )
        .await
        .unwrap_or_else(|error| panic!("cannot connect for {described}: {error}"));
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            // Failing to write the rest once the host has answered is expected.
            if writer.write_all(head.as_bytes()).await.is_ok() {
                let _ = writer.write_all(&body).await;
            }
        });
        let received = within(&format!("the answer to {described}"), async {
            let mut received = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while parse_response(&received).is_none() {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => received.extend_from_slice(&chunk[..read]),
                }
            }
            received
        })
        .await;
        writing.abort();
        let (status, headers, body) = parse_response(&received).unwrap_or_else(|| {
            panic!(
                "{described}: no complete answer before the connection ended, got {:?}",
                String::from_utf8_lossy(&received)
            )
        });
        ApiResponse {
            request: described,
            status,
            content_type: headers
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> ApiResponse {
        self.request(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn delete(&self, path_and_query: &str) -> ApiResponse {
        self.request(Method::DELETE, path_and_query, None, Bytes::new())
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> ApiResponse {
        self.request(Method::POST, path, Some(content_type), body)
            .await
    }

    /// Uploads a component as function `name` (deploy or hot swap).
    pub async fn put_function(&self, name: &str, component: impl Into<Bytes>) -> ApiResponse {
        self.request(
            Method::PUT,
            &format!("/v1/functions/{name}"),
            Some(WASM),
            component,
        )
        .await
    }

    /// Deploys a component that must become a new version, and returns that version's number.
    pub async fn deploy(&self, name: &str, component: impl Into<Bytes>) -> u64 {
        let answer = self.put_function(name, component).await.expect_json(201);
        assert_eq!(answer["unchanged"], false, "a new version: {answer}");
        answer["version"]["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("a deploy names the version it made: {answer}"))
    }

    /// `GET /v1/functions/{name}`, which must exist.
    pub async fn function(&self, name: &str) -> Value {
        self.get(&format!("/v1/functions/{name}"))
            .await
            .expect_json(200)
    }

    /// The number of the version `name` serves.
    pub async fn current_version(&self, name: &str) -> u64 {
        let function = self.function(name).await;
        function["current"]["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("a function names its current version: {function}"))
    }

    /// The open connections of function `name`.
    pub async fn connections(&self, name: &str) -> Vec<Value> {
        let list = self
            .get(&format!("/v1/functions/{name}/connections"))
            .await
            .expect_json(200);
        list.as_array()
            .unwrap_or_else(|| panic!("connections are listed as an array: {list}"))
            .clone()
    }

    /// Rolls `name` back (`body` empty for the previous version) and returns the answer.
    pub async fn rollback(&self, name: &str, body: &str) -> ApiResponse {
        self.post(
            &format!("/v1/functions/{name}/rollback"),
            JSON,
            body.to_owned(),
        )
        .await
    }
}

/// The status, headers and body of a complete HTTP/1.1 response with a `Content-Length`, or
/// `None` while more bytes are needed.
fn parse_response(received: &[u8]) -> Option<(u16, HeaderMap, Bytes)> {
    let head_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..head_end]).expect("an ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a malformed status line: {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("a malformed header line: {line:?}"));
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name"),
            HeaderValue::from_str(value.trim()).expect("a header value"),
        );
    }
    let length: usize = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .expect("the admin API answers with a Content-Length");
    let body = received.get(head_end + 4..head_end + 4 + length)?;
    Some((status, headers, Bytes::copy_from_slice(body)))
}
