//! [`ApiError`]: every way a request can fail, and the JSON body each one becomes
//! (`{"error": "...", "field": "..."}`, `field` only when one parameter is to blame).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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
    /// A request body is not the JSON the endpoint takes, or a field in it is invalid.
    #[error("{reason}")]
    BadBody {
        /// The field at fault (`body` when the body as a whole is).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is not declared as JSON.
    #[error("expected a JSON body (Content-Type: application/json)")]
    NotJson,
    /// The body is over the size limit.
    #[error("request body too large: the limit is {0} bytes")]
    TooLarge(usize),
    /// A mutating request without the API token (or with a wrong one).
    #[error("missing or wrong API token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The request names a host this API does not answer to (DNS rebinding).
    #[error(
        "this API does not answer to host {0:?}: use its address, or list the name in \
         api_allowed_hosts"
    )]
    MisdirectedHost(String),
    /// A mutation a browser sent from another site (`Origin`, `Sec-Fetch-Site`).
    #[error("cross-site requests may not change anything")]
    CrossSite,
    /// A mutation to an agent that has no token to check it against.
    #[error(
        "changes through the API are closed: this agent has no API token (set data_dir, \
         where one is generated, or api_token_file)"
    )]
    NoToken,
    /// Something the API may not do unless a setting allows it.
    #[error("{reason}")]
    Forbidden {
        /// The field of the request at fault.
        field: String,
        /// Why, naming the setting that allows it.
        reason: String,
    },
    /// `GET /v1/members/{name}` (or force-leave) of a name not in the membership.
    #[error("no member named {0:?}")]
    UnknownMember(String),
    /// A service no live member runs (and this agent does not run either).
    #[error("no service named {0:?}")]
    UnknownService(String),
    /// A change to a service this agent does not run itself.
    #[error("this agent runs no service named {0:?}")]
    NotLocalService(String),
    /// What was asked for does not exist right now (a service with no primary).
    #[error("{0}")]
    Unavailable(String),
    /// The agent refuses the change in its current state (e.g. force-leave of a live
    /// member, anything after it has left).
    #[error("{0}")]
    Conflict(String),
    /// No seed of a join answered in time; the agent keeps retrying in the background.
    #[error("{0}")]
    JoinTimeout(String),
    /// The mesh has stopped; nothing can be changed any more.
    #[error("the agent is shutting down")]
    Stopped,
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

    /// A [`ApiError::BadBody`] about `field`.
    pub fn bad_body(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadBody {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery { .. } | ApiError::BadBody { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::CrossSite | ApiError::NoToken | ApiError::Forbidden { .. } => {
                StatusCode::FORBIDDEN
            }
            ApiError::UnknownMember(_)
            | ApiError::UnknownRoute(_)
            | ApiError::UnknownService(_)
            | ApiError::NotLocalService(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::JoinTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Stopped | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// What went wrong, one lowercase line.
    pub error: String,
    /// The parameter or body field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::BadQuery { field, .. }
            | ApiError::BadBody { field, .. }
            | ApiError::Forbidden { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            field,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if self == ApiError::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
