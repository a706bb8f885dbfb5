//! The CLI's client of the local API, blocking, on ureq (plain HTTP/1.1: the API listens
//! on loopback): [`request`] sends one call and reads the JSON answer, whatever its
//! status, and [`follow_events`] reads the event stream as it comes ([`read_events`]
//! parses Server-Sent Events). Blocking, so a CLI command needs no async runtime for
//! one request; the agent's own HTTP client (webhooks, checks) is async, on hyper
//! ([`crate::http_client`]).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use ureq::http;

/// How long the CLI waits on the local agent before giving up (a join waits up to 10 s
/// for a seed, and a leave for the departure to spread: both fit).
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long the CLI waits for the connection itself: the agent is local, so an address
/// that does not answer at once is the wrong one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer accepted: a 10,000-member list is a few MiB.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Longest SSE line accepted.
const MAX_LINE: usize = 1024 * 1024;

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

/// The agent for one kind of call: connections within [`CONNECT_TIMEOUT`], the whole
/// call within `timeout` (none for a stream, which may stay quiet for long), every
/// status an answer (the API's errors are JSON bodies the CLI shows), no redirects, no
/// proxy from the environment (the agent is local).
fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(timeout)
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("muster/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The request of `call` to the agent at `addr`, accepting `accept`.
fn build(
    addr: SocketAddr,
    call: &Call<'_>,
    accept: &str,
    last_id: Option<&str>,
) -> Result<http::Request<String>, ClientError> {
    let mut builder = http::Request::builder()
        .method(call.method)
        .uri(format!("http://{addr}{}", call.path))
        .header("accept", accept);
    if let Some(token) = call.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(id) = last_id {
        builder = builder.header("last-event-id", id);
    }
    if call.body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(call.body.unwrap_or_default().to_owned())
        .map_err(|_| ClientError::Malformed { addr })
}

/// Sends `request`; a connection that is refused or not made in time means no agent.
fn send(
    agent: &ureq::Agent,
    addr: SocketAddr,
    request: http::Request<String>,
) -> Result<http::Response<ureq::Body>, ClientError> {
    agent.run(request).map_err(|e| match e {
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning { addr }
        }
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
        | ureq::Error::ConnectionFailed => ClientError::NotRunning { addr },
        ureq::Error::Io(source) => ClientError::Io { addr, source },
        other => ClientError::Io {
            addr,
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Sends `call` to the agent's API at `addr`: the status code and the body (at most
/// [`MAX_RESPONSE`] bytes), whatever the status.
pub fn request(addr: SocketAddr, call: Call<'_>) -> Result<(u16, String), ClientError> {
    let request = build(addr, &call, "application/json", None)?;
    let mut response = send(&agent(Some(TIMEOUT)), addr, request)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::Io(source) => ClientError::Io { addr, source },
            _ => ClientError::Malformed { addr },
        })?;
    Ok((status, body))
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

/// Follows the event stream `call` asks for (a GET of e.g.
/// `/v1/events?event=member-failed`), resuming after `last_id` if given, calling
/// `on_event` for each event until it breaks or the stream ends.
pub fn follow_events(
    addr: SocketAddr,
    call: Call<'_>,
    last_id: Option<&str>,
    on_event: impl FnMut(SseMessage) -> ControlFlow<()>,
) -> Result<StreamOutcome, ClientError> {
    let request = build(addr, &call, "text/event-stream", last_id)?;
    // No overall timeout: a quiet cluster sends only keep-alive comments.
    let response = send(&agent(None), addr, request)?;
    let status = response.status().as_u16();
    let body = response.into_body().into_reader();
    if status != 200 {
        let mut raw = Vec::new();
        let _ = body.take(MAX_RESPONSE).read_to_end(&mut raw);
        return Ok(StreamOutcome::Refused(
            status,
            String::from_utf8_lossy(&raw).into_owned(),
        ));
    }
    read_events(BufReader::new(body), on_event).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => ClientError::Malformed { addr },
        _ => ClientError::Io { addr, source: e },
    })?;
    Ok(StreamOutcome::Ended)
}

/// Reads Server-Sent Events from `reader` (the body of an event stream), calling
/// `on_event` for each complete one until it breaks or the input ends. Comments
/// (keep-alives) are skipped; a line longer than [`MAX_LINE`] or not UTF-8 is an
/// `InvalidData` error. (The fuzz target `http` feeds it arbitrary bytes.)
pub fn read_events(
    mut reader: impl BufRead,
    mut on_event: impl FnMut(SseMessage) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut message = SseMessage::default();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Ok(());
        }
        if raw.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "event stream line too long",
            ));
        }
        let line = std::str::from_utf8(&raw)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            .trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !message.data.is_empty() || !message.event.is_empty() {
                let mut done = std::mem::take(&mut message);
                if done.event.is_empty() {
                    done.event = "message".into();
                }
                if on_event(done).is_break() {
                    return Ok(());
                }
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
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
    fn server_sent_events_are_read_whole_and_comments_skipped() {
        let raw = ": keep-alive\n\nid: 7\nevent: member-failed\ndata: {\"a\":\ndata: 1}\n\n\
                   data: plain\r\n\r\nid: 9\ndata: cut off";
        let mut seen = Vec::new();
        read_events(raw.as_bytes(), |m| {
            seen.push(m);
            ControlFlow::Continue(())
        })
        .expect("valid events");
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].id.as_deref(), Some("7"));
        assert_eq!(seen[0].event, "member-failed");
        assert_eq!(seen[0].data, "{\"a\":\n1}");
        assert_eq!(
            (seen[1].event.as_str(), seen[1].data.as_str()),
            ("message", "plain")
        );
        let long = format!("data: {}\n\n", "x".repeat(MAX_LINE + 1));
        let err = read_events(long.as_bytes(), |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
