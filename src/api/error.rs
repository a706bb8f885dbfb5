//! [`ApiError`]: every way a request can fail, and the JSON body each one becomes
//! (`{"error": "...", "field": "..."}`, `field` only when one query parameter is to blame).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why the API refused a request. Messages are lowercase, as everywhere in Muster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A query parameter is unknown, repeated where it may not be, or has a bad value.
    #[error("{reason}")]
    BadQuery {
        /// The parameter.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `GET /v1/members/{name}` of a name not in the membership.
    #[error("no member named {0:?}")]
    UnknownMember(String),
    /// No route matches the path.
    #[error("no such endpoint: {0}")]
    UnknownRoute(String),
    /// The path exists but not with this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
}

impl ApiError {
    /// A [`ApiError::BadQuery`] about `field`.
    pub fn bad_query(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadQuery {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownMember(_) | ApiError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// What went wrong, one lowercase line.
    pub error: String,
    /// The query parameter at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::BadQuery { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            field,
        };
        (self.status(), Json(body)).into_response()
    }
}
