//! The API token: a bearer secret that mutating requests (and, with `api_read_token`,
//! reads) carry as `Authorization: Bearer <token>`. [`ApiToken::load_or_create`] gives
//! every agent one by default: the first start writes a random token to
//! `<data dir>/`[`TOKEN_FILE`] (mode 0600), where the CLI on the same host finds it.
//! Who needs it for what is decided in [`super::access`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The token file's name inside the data dir.
pub const TOKEN_FILE: &str = "api.token";

/// Random bytes in a generated token (written as hex: 64 characters).
const GENERATED_BYTES: usize = 32;

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
    /// The system's random source failed.
    #[error("the system's random source failed")]
    NoRandomness,
}

/// Why the token file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading or creating the file failed.
    #[error("cannot read or create the API token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no usable token.
    #[error("the API token file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: TokenError,
    },
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

    /// A new random token (32 bytes from the system's random source, as hex).
    pub fn generate() -> Result<ApiToken, TokenError> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; GENERATED_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TokenError::NoRandomness)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        ApiToken::new(&hex)
    }

    /// Reads the token in `path`, or, when there is no such file, generates one and
    /// writes it there first (created with mode 0600, never over an existing file, so
    /// two agents racing on one data dir end up with the same token).
    pub fn load_or_create(path: &Path) -> Result<ApiToken, TokenFileError> {
        let error = |source| TokenFileError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return ApiToken::new(&text).map_err(|reason| TokenFileError::Invalid {
                    path: path.to_owned(),
                    reason,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let token = ApiToken::generate().map_err(|reason| TokenFileError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        let line = format!("{}\n", token.as_str());
        match crate::new_file::create(path, line.as_bytes(), 0o600) {
            Ok(()) => Ok(token),
            // Another process wrote it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                ApiToken::load_or_create(path)
            }
            Err(e) => Err(error(e)),
        }
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

    #[test]
    fn a_missing_token_file_is_created_private_and_then_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(TOKEN_FILE);
        let first = ApiToken::load_or_create(&path).expect("created");
        assert_eq!(first.as_str().len(), 2 * GENERATED_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(ApiToken::load_or_create(&path).expect("read"), first);
        assert_ne!(ApiToken::generate().expect("random"), first);
        std::fs::write(&path, "short").expect("overwrite");
        assert!(matches!(
            ApiToken::load_or_create(&path),
            Err(TokenFileError::Invalid {
                reason: TokenError::TooShort,
                ..
            })
        ));
    }
}
