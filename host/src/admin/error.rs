//! Admin API errors: every failure is a status and a JSON body `{"error": "..."}` that says
//! what to do about it.

use axum::Json;
use axum::http::StatusCode;
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
