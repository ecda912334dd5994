//! The client side of the admin API, shared by the client commands: where the API is, which
//! token to present and where it came from, and errors that say both when the API refuses.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use wsfn_host::launch::GENERATED_TOKEN_FILE;

/// How the client commands reach a running host's admin API.
#[derive(Args)]
pub struct ClientArgs {
    /// The admin API of the host: `http://HOST:PORT`; `HOST:PORT` alone means http.
    #[arg(long, env = "WSFN_ADMIN_URL", default_value = "http://127.0.0.1:8081",
          value_parser = admin_url)]
    pub admin_url: String,

    /// File holding the admin token. WSFN_ADMIN_TOKEN, which holds the token itself, wins over
    /// it; without either, the token a host generated into <data-dir>/admin-token is used.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// The host's data directory, where a generated admin token is found.
    #[arg(long, env = "WSFN_DATA_DIR", default_value = ".wsfn")]
    pub data_dir: PathBuf,
}

/// Checks an admin URL and gives it its scheme: `127.0.0.1:8081` is `http://127.0.0.1:8081`.
/// A path is kept, for an API behind a proxy under a prefix.
fn admin_url(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let example = "use http://HOST:PORT, e.g. http://127.0.0.1:8081";
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("`{text}` is not a URL ({error}): {example}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "`{other}://` is not supported: the admin client speaks plain HTTP; {example} \
                 (reach a remote host through an SSH tunnel or a proxy on this machine)"
            ));
        }
        None => return Err(format!("`{text}` has no scheme: {example}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{text}` names no host: {example}"));
    }
    if uri.query().is_some() {
        return Err(format!(
            "`{text}` has a query; the admin URL takes none: {example}"
        ));
    }
    Ok(url)
}

/// Where the token a client presents came from, to say so when the API refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSource {
    Environment,
    File(PathBuf),
    DataDir(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => write!(f, "WSFN_ADMIN_TOKEN"),
            Self::File(path) => write!(f, "--admin-token-file {}", path.display()),
            Self::DataDir(path) => write!(f, "the data directory's {}", path.display()),
        }
    }
}

/// The admin token: WSFN_ADMIN_TOKEN, the token file, or the one a host generated into its
/// data directory.
fn find_token(args: &ClientArgs) -> Result<(String, TokenSource)> {
    if let Ok(token) = std::env::var("WSFN_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok((token.trim().to_owned(), TokenSource::Environment));
    }
    let path = match &args.admin_token_file {
        Some(path) => path.clone(),
        None => args.data_dir.join(GENERATED_TOKEN_FILE),
    };
    let token = read_token(&path).with_context(|| {
        format!(
            "no admin token: set WSFN_ADMIN_TOKEN, pass --admin-token-file, or pass --data-dir \
             with the host's data directory ({} is not readable)",
            path.display()
        )
    })?;
    let source = match args.admin_token_file {
        Some(_) => TokenSource::File(path),
        None => TokenSource::DataDir(path),
    };
    Ok((token, source))
}

fn read_token(path: &Path) -> Result<String> {
    let token = std::fs::read_to_string(path)?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(token.to_owned())
}

/// A client of one host's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    token_source: TokenSource,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    pub fn new(args: &ClientArgs) -> Result<Self> {
        let (token, token_source) = find_token(args)?;
        Ok(Self {
            base: args.admin_url.clone(),
            token,
            token_source,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request and returns the JSON answer; a non-success status becomes an error
    /// carrying the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Value> {
        let response = self.send(method, path, content_type, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Starts a GET whose answer is a stream, and returns the body to read as it arrives.
    pub async fn open_stream(&self, path: &str) -> Result<Incoming> {
        let response = self
            .send(Method::GET, path, "application/json", Bytes::new())
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let body = response.into_body().collect().await?.to_bytes();
        Err(self.refusal(status, &body))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body))?;
        self.client
            .request(request)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))
    }

    /// The error for a refused request: the API's own message, and for a refused token, which
    /// API refused which token.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let message = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        if status == StatusCode::UNAUTHORIZED {
            return anyhow!(
                "{status}: the admin API at {} refused the token from {} ({message}); give the \
                 host's token with WSFN_ADMIN_TOKEN or --admin-token-file, or its data directory \
                 with --data-dir",
                self.base,
                self.token_source
            );
        }
        anyhow!("{status}: {message}")
    }
}

/// A function, group or connection name as one segment of a request path.
pub fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Formats milliseconds since the Unix epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn format_time(ms: u64) -> String {
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`, cut to the second with a space for the `T`.
    let mut text = wsfn_host::observe::rfc3339_millis(ms);
    text.truncate(19);
    text.replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn an_admin_url_without_a_scheme_is_http() {
        assert_eq!(
            admin_url("127.0.0.1:8081").as_deref(),
            Ok("http://127.0.0.1:8081")
        );
        assert_eq!(
            admin_url("http://10.0.0.2:9000/").as_deref(),
            Ok("http://10.0.0.2:9000")
        );
        assert_eq!(
            admin_url("http://proxy/wsfn").as_deref(),
            Ok("http://proxy/wsfn")
        );
        assert!(
            admin_url("https://host:1")
                .unwrap_err()
                .contains("plain HTTP")
        );
        assert!(admin_url("http://h:1/?x=1").unwrap_err().contains("query"));
        assert!(admin_url("http://[::1").unwrap_err().contains("not a URL"));
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("user:bob"), "user:bob");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
