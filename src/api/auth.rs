//! The API token: mutating requests (`POST`, `PUT`, `DELETE`, `PATCH`) must carry
//! `Authorization: Bearer <token>` when the agent has one (`api_token_file`). Reads stay
//! open: the membership is what every member gossips anyway; changing it is not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ApiState};

/// Shortest token accepted: long enough not to be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token for the API's mutating endpoints. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(Arc<str>);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Shorter than [`MIN_TOKEN_LEN`] (after trimming surrounding whitespace).
    #[error("the API token must be at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// Contains whitespace or control characters, which no header could carry.
    #[error("the API token must be one line of visible ASCII characters")]
    BadCharacters,
}

impl ApiToken {
    /// A token from text (a file's contents: surrounding whitespace is trimmed).
    pub fn new(text: &str) -> Result<ApiToken, TokenError> {
        let token = text.trim();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacters);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        Ok(ApiToken(token.into()))
    }

    /// The token text, for clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the texts differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

/// Whether a method changes something.
fn mutates(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: refuses mutating requests without the token (when one is set).
pub(super) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token
        && mutates(request.method())
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| token.matches(g)) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_checked_and_compared_exactly() {
        let token = ApiToken::new("  0123456789abcdef\n").expect("valid");
        assert_eq!(token.as_str(), "0123456789abcdef");
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeX"));
        assert!(!token.matches("0123456789abcde"));
        assert_eq!(ApiToken::new("short"), Err(TokenError::TooShort));
        assert_eq!(
            ApiToken::new("0123456789 abcdef"),
            Err(TokenError::BadCharacters)
        );
        assert_eq!(format!("{token:?}"), "ApiToken(..)");
    }
}
