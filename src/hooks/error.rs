//! [`HookError`]: why one attempt to run a hook failed. Each failure is logged and
//! counted, and the attempt retried; none reaches the protocol.

use std::process::ExitStatus;
use std::time::Duration;

use crate::duration::format_duration;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The attempt took longer than the hook's `timeout` (a command is killed).
    #[error("timed out after {}", format_duration(*.0))]
    Timeout(Duration),
    /// The command could not be started (missing program, not executable, ...).
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The command exited with a status other than 0, or was killed by a signal.
    #[error("exited with {status}{}", stderr_note(.stderr))]
    Exit {
        /// How it ended.
        status: ExitStatus,
        /// The start of what it wrote to stderr, trimmed.
        stderr: String,
    },
    /// A webhook's request failed (connection, TLS, a status outside 2xx, timeout).
    #[error(transparent)]
    Http(#[from] crate::http_client::HttpError),
    /// Writing the event to the command or waiting for it failed midway.
    #[error("request failed: {0}")]
    Io(#[from] std::io::Error),
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr:?}")
    }
}
