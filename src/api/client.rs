//! A minimal client of the local API, for the CLI: blocking HTTP/1.1 over a plain TCP
//! connection to the agent. Deliberately small: the agent is local and answers JSON;
//! [`request`] reads one answer (by `Content-Length`, chunks, or to the close), and
//! [`follow_events`] reads the event stream as it comes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::time::Duration;

/// How long the CLI waits on the local agent before giving up (a join waits up to 10 s
/// for a seed, and a leave for the departure to spread: both fit).
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long the CLI waits for the connection itself: the agent is local, so an address
/// that does not answer at once is the wrong one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer accepted: a 10,000-member list is a few MiB.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Longest header or SSE line accepted.
const MAX_LINE: usize = 1024 * 1024;

/// Most header lines read from an answer (the agent sends about ten).
const MAX_HEADERS: usize = 256;

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

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `GET`, `POST`, `PUT`...
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// A JSON body, if any.
    pub body: Option<&'a str>,
    /// The bearer token, if any.
    pub token: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A `GET` of `path` without a token.
    pub fn get(path: &'a str) -> Call<'a> {
        Call {
            method: "GET",
            path,
            body: None,
            token: None,
        }
    }
}

fn connect(addr: SocketAddr, read_timeout: Option<Duration>) -> Result<TcpStream, ClientError> {
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut => {
                ClientError::NotRunning { addr }
            }
            _ => ClientError::Io { addr, source: e },
        })?;
    let io = |source| ClientError::Io { addr, source };
    stream.set_read_timeout(read_timeout).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    Ok(stream)
}

fn send(
    stream: &mut TcpStream,
    addr: SocketAddr,
    call: &Call<'_>,
    accept: &str,
    extra: &str,
) -> Result<(), ClientError> {
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n{extra}",
        call.method, call.path
    );
    if let Some(token) = call.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match call.body {
        Some(body) => request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None if call.method != "GET" => request.push_str("Content-Length: 0\r\n\r\n"),
        None => request.push_str("\r\n"),
    }
    stream
        .write_all(request.as_bytes())
        .map_err(|source| ClientError::Io { addr, source })
}

/// The status line and headers of an answer (header names lowercased).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

fn read_line(reader: &mut impl BufRead, addr: SocketAddr) -> Result<Option<String>, ClientError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|source| ClientError::Io { addr, source })?;
    if n == 0 {
        return Ok(None);
    }
    let text = String::from_utf8(line).map_err(|_| ClientError::Malformed { addr })?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

fn read_head(reader: &mut impl BufRead, addr: SocketAddr) -> Result<Head, ClientError> {
    let status_line = read_line(reader, addr)?.ok_or(ClientError::Malformed { addr })?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(ClientError::Malformed { addr })?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, addr)?.ok_or(ClientError::Malformed { addr })?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ClientError::Malformed { addr });
        }
        let (k, v) = line
            .split_once(':')
            .ok_or(ClientError::Malformed { addr })?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Ok(Head { status, headers })
}

/// A reader of a chunked body's data.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunked encoding");
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            if (&mut self.inner)
                .take(MAX_LINE as u64)
                .read_line(&mut size)?
                == 0
            {
                return Ok(0);
            }
            let size = size.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16).map_err(|_| bad())?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

/// Sends `call` to the agent's API at `addr`: the status code and the body.
pub fn request(addr: SocketAddr, call: Call<'_>) -> Result<(u16, String), ClientError> {
    let mut stream = connect(addr, Some(TIMEOUT))?;
    send(&mut stream, addr, &call, "application/json", "")?;
    read_response(BufReader::new(stream), addr)
}

/// Reads one answer from `reader`: its status code and its body, framed by
/// `Content-Length`, by chunks, or by the end of the stream, at most [`MAX_RESPONSE`]
/// bytes. `addr` only names the server in errors. (The fuzz target `http` feeds it
/// arbitrary bytes.)
pub fn read_response(
    mut reader: impl BufRead,
    addr: SocketAddr,
) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let head = read_head(&mut reader, addr)?;
    let mut raw = Vec::new();
    if head.chunked() {
        Chunked {
            inner: reader,
            left: 0,
            done: false,
        }
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(io)?;
    } else if let Some(len) = head.header("content-length") {
        let len: u64 = len.parse().map_err(|_| ClientError::Malformed { addr })?;
        reader
            .take(len.min(MAX_RESPONSE))
            .read_to_end(&mut raw)
            .map_err(io)?;
    } else {
        reader
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .map_err(io)?;
    }
    let body = String::from_utf8(raw).map_err(|_| ClientError::Malformed { addr })?;
    Ok((head.status, body))
}

/// `GET path_and_query` from the agent's API at `addr`: the status code and the body.
pub fn get(addr: SocketAddr, path_and_query: &str) -> Result<(u16, String), ClientError> {
    request(addr, Call::get(path_and_query))
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `event:` field (`message` if absent).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// What a stream request got instead of a stream.
#[derive(Debug)]
pub enum StreamOutcome {
    /// The stream ended (the agent stopped, or `on_event` said to stop).
    Ended,
    /// The agent refused: its status and body.
    Refused(u16, String),
}

/// Follows the event stream `call` asks for (a GET of e.g. `/v1/events?event=member-failed`), resuming
/// after `last_id` if given, calling `on_event` for each event until it breaks or the
/// stream ends.
pub fn follow_events(
    addr: SocketAddr,
    call: Call<'_>,
    last_id: Option<&str>,
    mut on_event: impl FnMut(SseMessage) -> ControlFlow<()>,
) -> Result<StreamOutcome, ClientError> {
    // No read timeout: a quiet cluster sends only keep-alive comments.
    let mut stream = connect(addr, None)?;
    let extra = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    send(&mut stream, addr, &call, "text/event-stream", &extra)?;
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader, addr)?;
    let mut body: Box<dyn BufRead> = if head.chunked() {
        Box::new(BufReader::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        }))
    } else {
        Box::new(reader)
    };
    if head.status != 200 {
        let mut raw = Vec::new();
        let _ = body.take(MAX_RESPONSE).read_to_end(&mut raw);
        return Ok(StreamOutcome::Refused(
            head.status,
            String::from_utf8_lossy(&raw).into_owned(),
        ));
    }
    let mut message = SseMessage::default();
    while let Some(line) = read_line(&mut body, addr)? {
        if line.is_empty() {
            if !message.data.is_empty() || !message.event.is_empty() {
                let mut done = std::mem::take(&mut message);
                if done.event.is_empty() {
                    done.event = "message".into();
                }
                if on_event(done).is_break() {
                    return Ok(StreamOutcome::Ended);
                }
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = Some(value.to_owned()),
            "event" => message.event = value.to_owned(),
            "data" => {
                if !message.data.is_empty() {
                    message.data.push('\n');
                }
                message.data.push_str(value);
            }
            _ => {}
        }
    }
    Ok(StreamOutcome::Ended)
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

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked {
            inner: &raw[..],
            left: 0,
            done: false,
        }
        .read_to_string(&mut out)
        .expect("valid chunks");
        assert_eq!(out, "hello, world");
    }
}
