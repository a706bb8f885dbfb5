//! A minimal client of the local API, for the CLI: one blocking HTTP/1.1 GET over a
//! plain TCP connection to the agent on loopback. Deliberately small: the agent is local,
//! answers JSON with a Content-Length, and closes the connection when asked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the CLI waits on the local agent before giving up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer accepted: a 10,000-member list is a few MiB.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Why a request to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address.
    #[error(
        "no agent answers at {addr} (is `muster agent` running? set --api-addr or MUSTER_API_ADDR)"
    )]
    NotRunning {
        /// The API address tried.
        addr: SocketAddr,
    },
    /// The connection failed otherwise.
    #[error("talking to the agent at {addr}: {source}")]
    Io {
        /// The API address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The answer is not an HTTP response.
    #[error("the agent at {addr} sent a malformed answer")]
    Malformed {
        /// The API address.
        addr: SocketAddr,
    },
}

/// `GET path_and_query` from the agent's API at `addr`: the status code and the body.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning { addr },
        _ => ClientError::Io { addr, source: e },
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(io)?;
    let text = String::from_utf8(raw).map_err(|_| ClientError::Malformed { addr })?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(ClientError::Malformed { addr })?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(ClientError::Malformed { addr })?;
    Ok((status, body.to_owned()))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass as they are).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("web-1"), "web-1");
        assert_eq!(encode("env:prod"), "env%3Aprod");
        assert_eq!(encode("a*b?"), "a%2Ab%3F");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn nothing_listening_is_reported_as_not_running() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = free.local_addr().expect("addr");
        drop(free);
        let err = get(addr, "/v1/members").expect_err("nothing listens");
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err}");
        assert!(err.to_string().contains("is `muster agent` running?"));
    }
}
