//! Admin route minting signed connection URLs, for a backend that decides who may connect and
//! hands the client a URL that the host checks before on-connect.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::error::{ApiError, ErrorBody};
use crate::host::Host;
use crate::signing::SignError;

/// The time to live when a request names none.
const DEFAULT_TTL_SECONDS: u64 = 300;

/// The query pairs to sign: a list of `[name, value]` in order, or an object (its pairs in
/// the order written).
pub struct SignedQuery(Vec<(String, String)>);

impl<'de> Deserialize<'de> for SignedQuery {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;

        impl<'de> Visitor<'de> for Pairs {
            type Value = SignedQuery;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of [name, value] pairs or an object of string values")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SignedQuery, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = seq.next_element::<(String, String)>()? {
                    pairs.push(pair);
                }
                Ok(SignedQuery(pairs))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SignedQuery, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(SignedQuery(pairs))
            }
        }

        deserializer.deserialize_any(Pairs)
    }
}

/// What to sign.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlRequest {
    /// Query pairs the function will see, for example `[["room", "lobby"]]` or
    /// `{"room": "lobby"}`. None by default.
    #[schema(value_type = Option<Object>)]
    pub query: Option<SignedQuery>,
    /// How long the URL is accepted, 1 to 86400 seconds; 300 by default.
    pub ttl_seconds: Option<u64>,
}

/// A signed URL.
#[derive(Serialize, ToSchema)]
pub struct SignedUrlResponse {
    /// `/<function>?<query>&wsfn-expires=...&wsfn-signature=...`.
    pub path: String,
    /// The path on the host's WebSocket listener, `ws://<listen address><path>`.
    pub url: String,
    /// When the URL stops being accepted, in unix seconds.
    pub expires_at: u64,
}

/// Mints a signed connection URL for a function.
///
/// The host accepts it until it expires, only for this function and only with exactly these
/// query pairs; on-connect then sees `signed = true` and the pairs without the host's own
/// `wsfn-expires` and `wsfn-signature`.
#[utoipa::path(post, path = "/v1/functions/{name}/signed-url", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body(content = Option<SignedUrlRequest>, content_type = "application/json"),
    responses(
        (status = 200, body = SignedUrlResponse),
        (status = 400, description = "Bad query or time to live", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The host has no signing key", body = ErrorBody)))]
pub async fn signed_url(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Json<SignedUrlResponse>, ApiError> {
    if host.functions.get(&name).is_none() {
        return Err(ApiError::not_found(format!("no function named `{name}`")));
    }
    let request: SignedUrlRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SignedUrlRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "expected {{\"query\": [[\"name\", \"value\"], ...] or {{\"name\": \"value\"}}, \
                 \"ttl_seconds\": N}}: {e}"
            ))
        })?
    };
    let query = request.query.map(|q| q.0).unwrap_or_default();
    let ttl = Duration::from_secs(request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS));
    let signed = host
        .signing
        .sign(&name, &query, ttl, SystemTime::now())
        .map_err(|error| {
            let status = match error {
                SignError::NoKey => StatusCode::CONFLICT,
                SignError::ZeroTtl | SignError::TtlTooLong | SignError::ReservedName(_) => {
                    StatusCode::BAD_REQUEST
                }
            };
            ApiError::new(status, error.to_string())
        })?;
    let url = match host.listen_address.get() {
        Some(address) => format!("ws://{address}{}", signed.path_and_query),
        None => String::new(),
    };
    Ok(Json(SignedUrlResponse {
        path: signed.path_and_query,
        url,
        expires_at: signed.expires_at,
    }))
}
