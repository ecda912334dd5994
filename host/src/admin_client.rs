//! The client side of the admin API, for `wsfn-host deploy`, `functions`, `rollback` and `logs`.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::cli::ClientArgs;

pub struct AdminClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The admin token a client presents: WSFN_ADMIN_TOKEN, the token file, or the one a host
/// generated into its data directory.
fn find_token(args: &ClientArgs) -> Result<String> {
    if let Ok(token) = std::env::var("WSFN_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let path = match &args.admin_token_file {
        Some(path) => path.clone(),
        None => args.data_dir.join("admin-token"),
    };
    read_token(&path).with_context(|| {
        format!(
            "no admin token: set WSFN_ADMIN_TOKEN, pass --admin-token-file, or run from where \
             the host's data directory is ({} not readable)",
            path.display()
        )
    })
}

pub fn read_token(path: &Path) -> Result<String> {
    let token = std::fs::read_to_string(path)?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(token.to_owned())
}

impl AdminClient {
    pub fn new(args: &ClientArgs) -> Result<Self> {
        let base = args.admin_url.trim_end_matches('/').to_owned();
        base.parse::<Uri>()
            .with_context(|| format!("`{base}` is not a URL"))?;
        Ok(Self {
            base,
            token: find_token(args)?,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request; a non-success status becomes an error carrying the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Value)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body))?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(anyhow!("{status}: {message}"));
        }
        Ok((status, value))
    }
}

impl AdminClient {
    /// Starts a GET whose answer is a stream, and returns the body to read as it arrives.
    pub async fn open_stream(&self, path: &str) -> Result<hyper::body::Incoming> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let body = response.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(anyhow!("{status}: {message}"))
    }
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
    use super::format_time;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }
}
