//! The agent's HTTP client, for two callers: webhook hooks ([`crate::hooks`]) POST an
//! event as JSON and want a 2xx status; HTTP health checks ([`crate::routing::check`])
//! GET a URL and keep the status and the first bytes of the body.
//!
//! One request per connection (`Connection: close`), redirects not followed, on hyper's
//! HTTP/1.1 client connection (hyper is in the tree through axum, and its parser is the
//! one the API's server uses). Every exchange is bounded: one deadline for the whole of
//! it, at most `body_limit` bytes of body kept, and hyper's own limits on the head
//! (408 KiB of buffer, 100 headers). Once the head is in, running out of time while reading the
//! body keeps what came: a check's output is what the server managed to say.
//!
//! Why not hyper-util's pooled `Client`: it keeps connections alive and pools them per
//! host, while a check or webhook runs every few seconds and must see a new connection
//! each time (a check that reuses a connection would pass while new ones are refused).
//!
//! | file | holds |
//! |---|---|
//! | `url` | [`HttpUrl`]: `http://` and `https://` URLs, parsed once |
//! | `tls` | [`TlsClient`]: rustls on the ring provider, and which CAs it trusts |

mod tls;
mod url;

pub use tls::{TlsClient, trust_also};
pub use url::HttpUrl;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::duration::format_duration;

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("muster/", env!("CARGO_PKG_VERSION"));

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer's head within the timeout.
    #[error("timed out after {}", format_duration(*.0))]
    Timeout(Duration),
    /// No TCP connection to the host.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TLS handshake with an `https://` URL failed (certificate, protocol).
    #[error("tls handshake with {host}: {source}")]
    Tls {
        /// The host name checked against the certificate.
        host: String,
        /// What rustls said.
        source: std::io::Error,
    },
    /// The answer's status is outside 2xx (for a POST, which wants one).
    #[error("answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// A header given for the request is not a valid header.
    #[error("bad request header {name:?}")]
    Header {
        /// The header's name.
        name: String,
    },
    /// Sending the request or reading the answer failed: the connection broke, or the
    /// answer is not HTTP/1.x.
    #[error("bad response: {0}")]
    Response(String),
}

/// The answer to a GET: its status code, whatever it is, and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// At most the caller's limit of body bytes (decoded if chunked).
    pub body: Vec<u8>,
}

/// POSTs `body` as JSON to `url` once, within `timeout`; `Ok` on a 2xx status.
pub async fn post(
    url: &HttpUrl,
    headers: &[(String, String)],
    body: &[u8],
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> Result<(), HttpError> {
    let request = request(url, headers, Some(body))?;
    let answer = send(url, request, tls, timeout, 0).await?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(HttpError::Status {
            status: answer.status,
        })
    }
}

/// GETs `url` once, within `timeout`, keeping at most `body_limit` bytes of the body.
/// Any status is an `Ok`; an error means no answer's head came.
pub async fn get(
    url: &HttpUrl,
    tls: Option<&TlsClient>,
    timeout: Duration,
    body_limit: usize,
) -> Result<Answer, HttpError> {
    let request = request(url, &[], None)?;
    send(url, request, tls, timeout, body_limit).await
}

/// Reads one answer from `stream` as a GET does once connected: the status code and up
/// to `body_limit` bytes of the body, whatever arrived before `deadline`. What the
/// client writes goes nowhere. (The fuzz target `http` feeds it arbitrary bytes.)
pub async fn read_answer(
    stream: impl AsyncRead + Unpin + Send + 'static,
    body_limit: usize,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), HttpError> {
    let url = HttpUrl::parse("http://fuzz.invalid/").map_err(HttpError::Response)?;
    let request = request(&url, &[], None)?;
    let stream = tokio::io::join(stream, tokio::io::sink());
    let timeout = deadline.saturating_duration_since(Instant::now());
    let answer = tokio::time::timeout_at(deadline, exchange(stream, request, deadline, body_limit))
        .await
        .unwrap_or(Err(HttpError::Timeout(timeout)))?;
    Ok((answer.status, answer.body))
}

/// The request: `Host`, `User-Agent`, `Connection: close`, the caller's headers, and a
/// JSON body or an `Accept: */*` for a GET.
fn request(
    url: &HttpUrl,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Result<Request<Full<Bytes>>, HttpError> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut builder = Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(header::HOST, url.host_header())
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::CONNECTION, "close");
    builder = match body {
        Some(_) => builder.header(header::CONTENT_TYPE, "application/json"),
        None => builder.header(header::ACCEPT, "*/*"),
    };
    for (name, value) in headers {
        let bad = || HttpError::Header { name: name.clone() };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value).map_err(|_| bad())?;
        builder = builder.header(name, value);
    }
    let body = Full::new(Bytes::copy_from_slice(body.unwrap_or_default()));
    builder
        .body(body)
        .map_err(|e| HttpError::Response(format!("cannot build the request: {e}")))
}

/// Connects to `url` (TLS for `https://`), sends `request` and reads the answer, within
/// `timeout`; `body_limit` 0 reads the head only.
async fn send(
    url: &HttpUrl,
    request: Request<Full<Bytes>>,
    tls: Option<&TlsClient>,
    timeout: Duration,
    body_limit: usize,
) -> Result<Answer, HttpError> {
    let deadline = Instant::now() + timeout;
    // The body read inside stops at the same deadline and keeps what came;
    // `timeout_at` polls its future before its timer, so that partial answer wins a tie.
    tokio::time::timeout_at(deadline, async {
        let tcp = connect(url).await?;
        if !url.tls {
            return exchange(tcp, request, deadline, body_limit).await;
        }
        // Config validation gives every https:// URL a client; none is a bug.
        let Some(TlsClient(connector)) = tls else {
            return Err(HttpError::Response(
                "no TLS client for an https:// URL".into(),
            ));
        };
        let tls_error = |source| HttpError::Tls {
            host: url.host.clone(),
            source,
        };
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| tls_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let stream = connector.connect(name, tcp).await.map_err(tls_error)?;
        exchange(stream, request, deadline, body_limit).await
    })
    .await
    .unwrap_or(Err(HttpError::Timeout(timeout)))
}

async fn connect(url: &HttpUrl) -> Result<TcpStream, HttpError> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|source| HttpError::Connect {
            addr: format!("{}:{}", url.host, url.port),
            source,
        })?;
    // Small writes, one request: do not wait for more data to coalesce.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// One request on a fresh connection: the head, then up to `body_limit` bytes of the
/// body, reading stopping at `deadline` with what came.
async fn exchange(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    request: Request<Full<Bytes>>,
    deadline: Instant,
    body_limit: usize,
) -> Result<Answer, HttpError> {
    let broken = |e: hyper::Error| HttpError::Response(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    // The connection's I/O runs beside the request; it ends with this exchange.
    let connection = AbortOnDrop(tokio::spawn(connection));
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while kept.len() < body_limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let room = body_limit - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            // The end of the body, a connection cut short, or time up: what came stands.
            Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    drop(connection);
    Ok(Answer { status, body: kept })
}

/// A spawned task that is aborted when this handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
