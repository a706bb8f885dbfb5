//! A minimal HTTP/1.1 client (one request per connection, `Connection: close`, redirects
//! not followed), for two callers:
//!
//! - webhook hooks: POST the event as JSON to an `http://` or `https://` URL. Success is
//!   a 2xx status line within the timeout; the body of the answer is not read.
//! - HTTP health checks ([`crate::routing::check`]): GET a URL, keeping the status code
//!   and the first bytes of the body (read until the `Content-Length`, the end of a
//!   chunked body, the end of the connection, the caller's limit or the deadline,
//!   whichever comes first; a chunked body is decoded).
//!
//! HTTPS uses rustls with the ring provider (never aws-lc: two providers in one process
//! make rustls's default builders panic) and the Mozilla roots from `webpki-roots`; the
//! host's own trust store is not consulted.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::hooks::error::HookError;

/// The `User-Agent` every webhook request carries.
pub const USER_AGENT: &str = concat!("muster/", env!("CARGO_PKG_VERSION"));

/// Longest status line read: real servers send a few dozen bytes.
const MAX_STATUS_LINE: usize = 8192;

/// Longest answer head (status line and headers) read when the body is wanted: real
/// servers send a few hundred bytes; nginx's own default limit is 8 KiB per buffer.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// Port (80 or 443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WebhookUrl {
    /// Parses `http://host[:port][/path][?query]` (or `https://`); a fragment is
    /// dropped. User info (`user:pass@`) is refused: put credentials in `headers`.
    pub fn parse(url: &str) -> Result<WebhookUrl, String> {
        let bad = |why: &str| format!("{url:?}: {why}");
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad(
                "user info in the URL is not supported; send credentials in headers",
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected :port after ]"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(WebhookUrl {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` header: the host, bracketed if IPv6, with the port unless default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

/// The TLS client shared by every `https://` hook of a runner.
#[derive(Clone)]
pub(crate) struct TlsClient(tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

/// CA certificates trusted besides the Mozilla roots and the system's, for every
/// `https://` hook and check of this process (`https_ca_file`); set once at start.
static EXTRA_ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Trusts `certs` too for `https://` hooks and checks; only the first call counts
/// (false for a later one). Call it before starting hooks and services.
pub fn trust_also(certs: Vec<CertificateDer<'static>>) -> bool {
    EXTRA_ROOTS.set(certs).is_ok()
}

/// The system's trusted certificates (`/etc/ssl/certs` and the like), read once; none
/// where there are none (a `FROM scratch` container).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "a system trust store file could not be read");
        }
        found.certs
    })
}

impl TlsClient {
    /// Ring provider, safe default protocol versions; trusts the Mozilla roots, the
    /// system's trust store and whatever [`trust_also`] added.
    pub(crate) fn new() -> TlsClient {
        TlsClient::trusting(EXTRA_ROOTS.get().map_or(&[], Vec::as_slice))
    }

    /// [`TlsClient::new`] with `extra` as the added CAs.
    pub(crate) fn trusting(extra: &[CertificateDer<'static>]) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // A certificate the parser cannot take is skipped (counted by rustls), as
        // browsers skip them: one bad file in a system store must not stop hooks.
        roots.add_parsable_certificates(system_roots().iter().cloned());
        roots.add_parsable_certificates(extra.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsClient(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// POSTs `body` to `url` once, within `timeout`; `Ok` on a 2xx status.
pub(crate) async fn post(
    url: &WebhookUrl,
    headers: &[(String, String)],
    body: &[u8],
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> Result<(), HookError> {
    let request = request(url, "POST", headers, Some(body));
    let answer = send(url, &request, tls, timeout, 0).await?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(HookError::Status {
            status: answer.status,
        })
    }
}

/// The answer to a GET: its status code, whatever it is, and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The HTTP status code.
    pub(crate) status: u16,
    /// At most the caller's limit of body bytes (decoded if chunked).
    pub(crate) body: Vec<u8>,
}

/// GETs `url` once, within `timeout`, keeping at most `body_limit` bytes of the body.
/// Any status is an `Ok`; an error means no status line came. Once the status line is
/// in, running out of time while reading the body keeps what came, not an error.
pub(crate) async fn get(
    url: &WebhookUrl,
    tls: Option<&TlsClient>,
    timeout: Duration,
    body_limit: usize,
) -> Result<Answer, HookError> {
    let request = request(url, "GET", &[], None);
    send(url, &request, tls, timeout, body_limit).await
}

/// Sends `request` to `url` and reads the answer, within `timeout`; `body_limit` 0
/// reads the status line only.
async fn send(
    url: &WebhookUrl,
    request: &[u8],
    tls: Option<&TlsClient>,
    timeout: Duration,
    body_limit: usize,
) -> Result<Answer, HookError> {
    let deadline = Instant::now() + timeout;
    // The body read inside stops at the same deadline and keeps what came; `timeout_at`
    // polls its future before its timer, so that partial answer wins the tie.
    tokio::time::timeout_at(
        deadline,
        send_now(url, request, tls, Exchange::new(deadline, body_limit)),
    )
    .await
    .unwrap_or(Err(HookError::Timeout(timeout)))
}

async fn send_now(
    url: &WebhookUrl,
    request: &[u8],
    tls: Option<&TlsClient>,
    exchange: Exchange,
) -> Result<Answer, HookError> {
    let addr = format!("{}:{}", url.host, url.port);
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|source| HookError::Connect {
            addr: addr.clone(),
            source,
        })?;
    // Small writes, one request: do not wait for more data to coalesce.
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return exchange.run(tcp, request).await;
    }
    // `validate` refuses https:// hooks without a client; none is a bug, said plainly.
    let Some(TlsClient(connector)) = tls else {
        return Err(HookError::Response(
            "no TLS client for an https:// URL".into(),
        ));
    };
    let name =
        rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| HookError::Tls {
            host: url.host.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|source| HookError::Tls {
            host: url.host.clone(),
            source,
        })?;
    exchange.run(stream, request).await
}

/// The request's bytes: head and body. A body is sent as JSON.
fn request(
    url: &WebhookUrl,
    method: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
        url.path,
        url.host_header(),
    );
    match body {
        Some(body) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )),
        None => head.push_str("Accept: */*\r\n"),
    }
    head.push_str("Connection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// How much of an answer to read, and until when.
struct Exchange {
    /// When reading the body stops, keeping what came.
    deadline: Instant,
    /// Body bytes kept; 0 reads the status line only.
    body_limit: usize,
}

impl Exchange {
    fn new(deadline: Instant, body_limit: usize) -> Exchange {
        Exchange {
            deadline,
            body_limit,
        }
    }

    /// Sends `request` and reads the status line, then (if a body is wanted) the rest of
    /// the head and the start of the body.
    async fn run(
        self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        request: &[u8],
    ) -> Result<Answer, HookError> {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        while !head.contains(&b'\n') {
            if head.len() > MAX_STATUS_LINE {
                return Err(HookError::Response("status line too long".into()));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(HookError::Response(
                    "connection closed before a status line".into(),
                ));
            }
            head.extend_from_slice(&buf[..n]);
        }
        let status = parse_status(&head)?;
        let mut answer = Answer {
            status,
            body: Vec::new(),
        };
        if self.body_limit == 0 {
            return Ok(answer);
        }
        let end = loop {
            if let Some(end) = head_end(&head) {
                break end;
            }
            if head.len() > MAX_HEAD {
                // Too much head to bother with: the status stands, without a body.
                return Ok(answer);
            }
            match self.read(&mut stream, &mut buf).await {
                Some(n) => head.extend_from_slice(&buf[..n]),
                // The status is in: an answer cut short is still an answer.
                None => return Ok(answer),
            }
        };
        let mut body = head.split_off(end);
        let (length, chunked) = framing(&head);
        let want = length.map_or(self.body_limit, |n| n.min(self.body_limit));
        while body.len() < want && !(chunked && body.ends_with(b"0\r\n\r\n")) {
            match self.read(&mut stream, &mut buf).await {
                Some(n) => body.extend_from_slice(&buf[..n]),
                None => break,
            }
        }
        body.truncate(want);
        answer.body = if chunked { dechunk(&body) } else { body };
        Ok(answer)
    }

    /// One read before the deadline: `None` at the end of the stream, on an error or
    /// when time is up.
    async fn read(&self, stream: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Option<usize> {
        match tokio::time::timeout_at(self.deadline, stream.read(buf)).await {
            Ok(Ok(n)) if n > 0 => Some(n),
            _ => None,
        }
    }
}

/// Reads one answer from `stream` as a webhook or an HTTP check does once its request is
/// sent: the status code and, when `body_limit` is above zero, up to that many bytes of
/// the body (dechunked), whatever arrived before `deadline`. (The fuzz target `http`
/// feeds it arbitrary bytes.)
pub async fn read_answer(
    stream: impl AsyncRead + Unpin,
    body_limit: usize,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), HookError> {
    let answer = Exchange::new(deadline, body_limit)
        .run(tokio::io::join(stream, tokio::io::sink()), b"")
        .await?;
    Ok((answer.status, answer.body))
}

/// Where the body starts: after the first empty line (`\r\n\r\n`, or a bare `\n\n`
/// from a sloppy server).
fn head_end(head: &[u8]) -> Option<usize> {
    head.iter().enumerate().find_map(|(i, b)| {
        let rest = &head[i + 1..];
        match b {
            b'\n' if rest.starts_with(b"\n") => Some(i + 2),
            b'\n' if rest.starts_with(b"\r\n") => Some(i + 3),
            _ => None,
        }
    })
}

/// The `Content-Length` (if any) and whether the body is chunked, from the head.
fn framing(head: &[u8]) -> (Option<usize>, bool) {
    let text = String::from_utf8_lossy(head);
    let mut length = None;
    let mut chunked = false;
    for line in text.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    // A chunked body's length is in its chunks, whatever the head says.
    (length.filter(|_| !chunked), chunked)
}

/// The data of a chunked body, as far as `raw` holds it (a cut-off last chunk keeps
/// what is there; anything malformed ends the data).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(line_end) = rest.iter().position(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(&rest[..line_end]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        rest = &rest[line_end + 1..];
        let take = size.min(rest.len());
        data.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        // The CRLF after the chunk's data.
        rest = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .unwrap_or(rest);
    }
    data
}

/// The status code of `HTTP/1.x NNN reason\r\n…`.
fn parse_status(head: &[u8]) -> Result<u16, HookError> {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HookError::Response(format!(
            "not an HTTP/1.x status line: {:?}",
            line.chars().take(80).collect::<String>()
        )));
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..1000).contains(c))
        .ok_or_else(|| HookError::Response(format!("bad status code {code:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let url = |s| WebhookUrl::parse(s).unwrap();
        let u = url("http://127.0.0.1:9000/alerts?x=1#frag");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 9000, "/alerts?x=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = url("HTTPS://alerts.example.com");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "alerts.example.com", 443, "/")
        );
        assert_eq!(u.host_header(), "alerts.example.com");
        let u = url("http://[::1]:8080?q");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/?q")
        );
        assert_eq!(u.host_header(), "[::1]:8080");
        assert_eq!(url("http://[::1]/").port, 80);
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("ftp://x/", "must start with http:// or https://"),
            ("localhost:80", "must start with http:// or https://"),
            ("http:///path", "the host is empty"),
            ("http://:80/", "the host is empty"),
            ("http://h:0/", "the port must be"),
            ("http://h:http/", "the port must be"),
            ("http://u:p@h/", "user info"),
            ("http://[::1/", "unclosed ["),
            ("http://h/a b", "spaces"),
        ] {
            let err = WebhookUrl::parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn the_request_carries_json_headers_and_the_body() {
        let url = WebhookUrl::parse("http://h:81/a").unwrap();
        let bytes = request(
            &url,
            "POST",
            &[("X-Team".into(), "ops".into())],
            Some(b"{\"a\":1}"),
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("POST /a HTTP/1.1\r\nHost: h:81\r\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("User-Agent: {USER_AGENT}\r\n")),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: application/json\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 7\r\n"), "{text}");
        assert!(text.ends_with("X-Team: ops\r\n\r\n{\"a\":1}"), "{text}");
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n").unwrap(), 204);
        assert_eq!(parse_status(b"HTTP/1.0 500\r\n").unwrap(), 500);
        assert!(parse_status(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 abc\r\n").is_err());
    }

    #[tokio::test]
    async fn a_non_2xx_answer_and_a_closed_port_are_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in ["HTTP/1.1 503 Busy\r\n\r\n", "HTTP/1.1 202 Accepted\r\n\r\n"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let url = WebhookUrl::parse(&format!("http://{addr}/x")).unwrap();
        let t = Duration::from_secs(20);
        let err = post(&url, &[], b"{}", None, t).await.unwrap_err();
        assert!(matches!(err, HookError::Status { status: 503 }), "{err}");
        post(&url, &[], b"{}", None, t).await.unwrap();
        // The listener is gone now.
        let err = post(&url, &[], b"{}", None, t).await.unwrap_err();
        assert!(matches!(err, HookError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_https_hook_refuses_a_server_without_a_trusted_certificate() {
        // A plain-TCP server that answers the ClientHello with garbage: the handshake
        // must fail as a TLS error, not hang or pass.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let url = WebhookUrl::parse(&format!("https://localhost:{}/x", addr.port())).unwrap();
        let client = TlsClient::new();
        let err = post(&url, &[], b"{}", Some(&client), Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Tls { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_https_hook_trusts_a_ca_given_to_it_and_refuses_it_otherwise() {
        use crate::transport::pki;
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200);
        // A private CA, as an operator's internal one, and a server certificate from it.
        let ca = pki::create_ca("internal CA", now, 30).unwrap();
        let server = pki::issue_node(&ca, "localhost", now, 10).unwrap();
        let chain = crate::transport::identity::parse_certificates(
            std::path::Path::new("server"),
            server.cert.as_bytes(),
        )
        .unwrap();
        use rustls::pki_types::pem::PemObject;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let url = WebhookUrl::parse(&format!("https://localhost:{}/x", addr.port())).unwrap();
        let t = Duration::from_secs(20);
        // Only Mozilla's and the system's roots: the private CA is unknown.
        let err = post(&url, &[], b"{}", Some(&TlsClient::trusting(&[])), t)
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Tls { .. }), "{err}");
        // With the CA added (what https_ca_file does), the same server is trusted.
        let ca_certs = crate::transport::identity::parse_certificates(
            std::path::Path::new("ca"),
            ca.cert.as_bytes(),
        )
        .unwrap();
        post(&url, &[], b"{}", Some(&TlsClient::trusting(&ca_certs)), t)
            .await
            .unwrap();
    }

    /// Serves each of `answers` to one connection, then holds that connection open, so
    /// a client that waits for the end of the stream waits forever.
    async fn serve_and_hold(answers: Vec<Vec<u8>>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                s.write_all(&answer).await.unwrap();
                held.push(s);
            }
            std::future::pending::<()>().await;
        });
        addr
    }

    #[tokio::test]
    async fn a_get_reads_a_sized_or_chunked_body_without_waiting_for_the_close() {
        let addr = serve_and_hold(vec![
            b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhello, and more".to_vec(),
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"
                .to_vec(),
        ])
        .await;
        let url = WebhookUrl::parse(&format!("http://{addr}/health")).unwrap();
        // The request's own timeout is far past the test's: reaching it is a failure.
        let get = |limit| {
            tokio::time::timeout(
                Duration::from_secs(30),
                get(&url, None, Duration::from_secs(300), limit),
            )
        };
        let answer = get(4096).await.expect("the Content-Length ends the body");
        assert_eq!(
            answer.unwrap(),
            Answer {
                status: 500,
                body: b"hello".to_vec()
            }
        );
        let answer = get(4096).await.expect("the last chunk ends the body");
        assert_eq!(answer.unwrap().body, b"hello world");
    }

    #[tokio::test]
    async fn a_get_keeps_at_most_the_limit_and_what_came_before_the_deadline() {
        let mut long = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 10_000));
        let addr = serve_and_hold(vec![
            long,
            b"HTTP/1.1 429 Slow Down\r\n\r\npartial".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(),
        ])
        .await;
        let url = WebhookUrl::parse(&format!("http://{addr}/")).unwrap();
        let answer = get(&url, None, Duration::from_secs(20), 4096)
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body.len()), (200, 4096));
        // No length and the connection held open: the deadline ends the body.
        let t = Duration::from_millis(300);
        let answer = get(&url, None, t, 4096).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (429, &b"partial"[..])
        );
        // Cut off inside the head: the status still counts.
        let answer = get(&url, None, t, 4096).await.unwrap();
        assert_eq!((answer.status, answer.body.len()), (200, 0));
    }

    #[tokio::test]
    async fn a_get_without_a_status_line_in_time_is_a_timeout() {
        let addr = serve_and_hold(vec![Vec::new()]).await;
        let url = WebhookUrl::parse(&format!("http://{addr}/")).unwrap();
        let t = Duration::from_millis(200);
        let err = get(&url, None, t, 4096).await.unwrap_err();
        assert!(matches!(err, HookError::Timeout(_)), "{err}");
    }

    #[test]
    fn heads_end_at_the_first_empty_line_and_chunks_decode() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\nA: b\n\nbody"), Some(22));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            (Some(12), false)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            (None, true)
        );
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"3\r\nabc\r\n10\r\nde"), b"abcde");
        assert_eq!(dechunk(b"zz\r\nabc"), b"");
    }

    #[test]
    fn a_get_asks_for_anything_and_sends_no_body() {
        let url = WebhookUrl::parse("http://h/health").unwrap();
        let text = String::from_utf8(request(&url, "GET", &[], None)).unwrap();
        assert!(
            text.starts_with("GET /health HTTP/1.1\r\nHost: h\r\n"),
            "{text}"
        );
        assert!(text.contains("Accept: */*\r\n"), "{text}");
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
    }
}
