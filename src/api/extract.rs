//! The API's extractors: a JSON body ([`JsonBody`]) and a path segment ([`PathParam`])
//! whose rejections are [`ApiError`]s, so a bad body or path gets the same JSON error
//! body as every other refusal instead of axum's plain text; and the body bound
//! ([`MAX_BODY`]) for every request, those whose handler reads no body included.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::ApiError;

/// Largest request body accepted: tags are at most 512 bytes and a seed list is short.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON request body: every way it can be wrong is an [`ApiError`] (400 naming the
/// field, 413 past [`MAX_BODY`], 415 when not JSON).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(body_error(&rejection)),
        }
    }
}

/// The [`ApiError`] for a rejected JSON body, naming the field serde blamed.
pub(super) fn body_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::NotJson,
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(MAX_BODY),
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: set.k: invalid
            // type: ..." — the path before the first ": " names the field.
            let text = e.body_text();
            let detail = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, d)| d);
            match detail.split_once(": ") {
                // A path names a field only when it starts with one (`[0]` of a body
                // that is an array where an object belongs names nothing useful).
                Some((path, reason))
                    if !path.contains(' ')
                        && path.starts_with(|c: char| c.is_ascii_alphabetic()) =>
                {
                    ApiError::bad_body(path, reason.to_owned())
                }
                _ => ApiError::bad_body("body", detail.to_owned()),
            }
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_body("body", "the body is not valid JSON")
        }
        other => ApiError::bad_body("body", other.body_text()),
    }
}

/// One path segment (a member, service or key name), percent-decoded. A segment that
/// does not decode to UTF-8 is a 400 naming `path`.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => Ok(PathParam(segment)),
            Err(rejection) => Err(ApiError::bad_query(
                "path",
                format!("bad path segment: {}", rejection.body_text()),
            )),
        }
    }
}

/// Middleware: a request that declares a body over [`MAX_BODY`] is refused with 413
/// before any handler runs, so `POST /v1/leave` with a huge body does not leave. (A body
/// sent without a length is bounded where a handler reads it.)
pub(super) async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::TooLarge(MAX_BODY).into_response();
    }
    next.run(request).await
}
