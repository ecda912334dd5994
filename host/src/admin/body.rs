//! The request body of admin routes, with refusals (too large, unreadable) answered as JSON
//! errors like every other admin error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::error::ApiError;

/// The whole request body.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection: BytesRejection| {
                let status = rejection.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is larger than the admin API accepts (see --max-component-size)".to_owned()
                } else {
                    format!("cannot read the request body: {}", rejection.body_text())
                };
                ApiError::new(status, message)
            })
    }
}
