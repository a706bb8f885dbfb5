//! Creating a file that must be new: written with its mode from the start (no moment
//! when a secret is readable by others) and never over an existing file. The API token,
//! the node key, and the keys and certificates `muster tls` and `muster keygen` write
//! all go through here.

use std::io::Write;
use std::path::Path;

/// Creates `path` with permission bits `mode` (Unix) and writes `contents`, flushed to
/// disk. An existing file is left as it is: the error's kind is `AlreadyExists`.
pub fn create(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_its_mode_and_an_old_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        create(&path, b"one", 0o600).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = create(&path, b"two", 0o600).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
    }
}
