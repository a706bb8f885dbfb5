//! [`HookError`]: why one attempt to run a hook failed. Each failure is logged and
//! counted, and the attempt retried; none reaches the protocol.

use std::process::ExitStatus;
use std::time::Duration;

use crate::agent::settings::duration::format_duration;

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
    /// No TCP connection to the webhook's host.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TLS handshake with an `https://` webhook failed (certificate, protocol).
    #[error("tls handshake with {host}: {source}")]
    Tls {
        /// The host name checked against the certificate.
        host: String,
        /// What rustls said.
        source: std::io::Error,
    },
    /// The webhook answered with a status outside 2xx.
    #[error("answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// Sending the request or reading the answer failed midway.
    #[error("request failed: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP/1.x.
    #[error("bad response: {0}")]
    Response(String),
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr:?}")
    }
}
