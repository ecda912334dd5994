//! Bearer-token authentication for the admin API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The token every admin request but `/healthz` must present.
#[derive(Clone)]
pub struct AdminToken {
    token: Arc<[u8]>,
    /// Whether `/metrics` answers without the token too.
    public_metrics: bool,
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self {
            token: token.trim().as_bytes().into(),
            public_metrics: false,
        }
    }

    /// Lets `/metrics` answer without the token, for scrapers that cannot send one.
    pub fn with_public_metrics(self, public_metrics: bool) -> Self {
        Self {
            public_metrics,
            ..self
        }
    }

    /// Compares in constant time, so response timing tells nothing about the token.
    fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.token.ct_eq(presented))
    }
}

/// Paths that answer without a token: liveness probes must work without secrets.
const PUBLIC_PATHS: &[&str] = &["/healthz"];

pub async fn require_token(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if PUBLIC_PATHS.contains(&path) || (token.public_metrics && path == "/metrics") {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refusal = match presented {
        Some(presented) if token.matches(presented.trim().as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong admin token"),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header (the token is in WSFN_ADMIN_TOKEN, \
             the --admin-token-file, or <data-dir>/admin-token)",
        ),
    };
    let mut response = refusal.into_response();
    // RFC 6750: a 401 names the scheme the client should use.
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
