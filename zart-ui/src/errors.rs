//! Errors as JSON: `{"code": .., "message": ..}` with a status that fits.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// Stable and machine-readable: [`zart::Error::code`]'s codes, and `unauthorized`,
    /// `read_only`, `bad_request`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    #[serde(skip)]
    status: u16,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
            status: status.as_u16(),
        }
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn read_only() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this API is read-only: actions are refused",
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 503 `audit_unavailable`: the audit entry of an action could not be written, so the
    /// action was not done.
    pub(crate) fn audit_unavailable(err: &zart::Error) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!(
                "the audit log could not be written, so nothing was done: {}",
                zart::error::error_chain(err)
            ),
        )
    }

    /// The HTTP status it is sent with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<zart::Error> for ApiError {
    fn from(err: zart::Error) -> Self {
        use zart::Error as E;
        let status = match &err {
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::InvalidInput { .. } | E::Serialization { .. } => StatusCode::BAD_REQUEST,
            E::Conflict { .. } | E::Finished { .. } | E::NotRetryable { .. } => {
                StatusCode::CONFLICT
            }
            E::Unavailable { .. } | E::Contention { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(error = %zart::error::error_chain(&err), "admin API call failed");
        }
        ApiError::new(status, err.code(), zart::error::error_chain(&err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}
