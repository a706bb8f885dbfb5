//! The node key file: the Ed25519 key pair a node signs its own records with
//! (docs/protocol.md §17), as a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, which
//! `openssl pkey` reads too).
//!
//! An agent with a data dir keeps it in `<data dir>/`[`NODE_KEY_FILE`], generated on
//! first start with mode 0600 and never overwritten; `node_key_file` names another file,
//! which must exist. Without either the agent makes a key for this run only, and a
//! restart is a new key: the cluster then gives the name to the new key only once the
//! old one's member has left or been declared failed.

use std::path::{Path, PathBuf};

use crate::proto::NodeSigner;

/// The node key's file name inside the data dir.
pub const NODE_KEY_FILE: &str = "node.key";

/// Why a node key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// Reading or writing failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 private key in PKCS#8 PEM form.
    #[error("node key file {path}: not an Ed25519 private key in PKCS#8 PEM form ({reason})")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Reads the node key in `path`.
pub fn load(path: &Path) -> Result<NodeSigner, NodeKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| NodeKeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Reads the node key in `path`, or, when there is no such file, generates one and
/// writes it there first (mode 0600, never over an existing file, so two agents racing
/// on one data dir end up with the same key).
pub fn load_or_create(path: &Path) -> Result<NodeSigner, NodeKeyError> {
    let io = |source| NodeKeyError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // A first start: the data dir itself may not exist yet.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let (signer, pkcs8) = NodeSigner::generate();
    let pem = to_pem(path, &pkcs8)?;
    match crate::new_file::create(path, pem.as_bytes(), 0o600) {
        Ok(()) => Ok(signer),
        // Another process wrote it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io(e)),
    }
}

fn to_pem(path: &Path, pkcs8: &[u8]) -> Result<String, NodeKeyError> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.to_vec());
    let pair = rcgen::KeyPair::try_from(&der).map_err(|e| NodeKeyError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(pair.serialize_pem())
}

fn parse(path: &Path, text: &str) -> Result<NodeSigner, NodeKeyError> {
    let invalid = |reason: String| NodeKeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let pair = rcgen::KeyPair::from_pem(text).map_err(|e| invalid(e.to_string()))?;
    NodeSigner::from_pkcs8(&pair.serialize_der()).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-yet").join(NODE_KEY_FILE);
        let first = load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_or_create(&path).unwrap().key(), first.key());
        assert_eq!(load(&path).unwrap().key(), first.key());
        let other = load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.key(), first.key());
    }

    #[test]
    fn a_bad_or_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not a key").unwrap();
        let e = load_or_create(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.key") && e.contains("PKCS#8"), "{e}");
        assert_eq!(std::fs::read_to_string(&bad).unwrap(), "not a key", "kept");
        let e = load(&dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.key"), "{e}");
    }
}
