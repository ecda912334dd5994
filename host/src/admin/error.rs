//! Admin API errors: every failure is a status and a JSON body `{"error": "..."}` that says
//! what to do about it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::functions::DeployError;
use crate::runtime::LoadError;

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words a person can act on.
    pub error: String,
}

/// An error answered to an admin API client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// The most of a non-JSON error body that is carried into the JSON one.
const REJECTION_TEXT_LIMIT: usize = 1024;

/// Makes every error answer JSON, including the ones the handlers never see: axum's own
/// rejections of a path, query or body it cannot read are plain text. Headers of the original
/// (`WWW-Authenticate`, `Allow`) are kept.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REJECTION_TEXT_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let (_, json_body) = ApiError::new(status, message).into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, json_body)
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        let status = match &error {
            DeployError::InvalidName(_) | DeployError::NotWasm | DeployError::NotComponent => {
                StatusCode::BAD_REQUEST
            }
            DeployError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DeployError::Load(
                LoadError::Invalid(_) | LoadError::UnknownImport(_) | LoadError::NoHandlers,
            )
            | DeployError::Start(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::NoSuchFunction(_) | DeployError::NoSuchVersion { .. } => {
                StatusCode::NOT_FOUND
            }
            DeployError::NoEarlierVersion(_) => StatusCode::CONFLICT,
            // The host's own failure, not the component's.
            DeployError::Storage(_) | DeployError::Load(LoadError::Compiler(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            DeployError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!("admin request failed: {error}");
        }
        Self::new(status, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_s_fault_is_422_and_the_host_s_is_500() {
        let invalid = DeployError::Load(LoadError::Invalid("bad section".into()));
        assert_eq!(
            ApiError::from(invalid).status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let compiler = DeployError::Load(LoadError::Compiler("no thread".into()));
        let error = ApiError::from(compiler);
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            error.message.contains("the host could not compile"),
            "{}",
            error.message
        );
    }
}
