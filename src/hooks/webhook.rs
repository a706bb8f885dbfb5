//! Webhook hooks: POST the event as JSON to an `http://` or `https://` URL with a
//! minimal HTTP/1.1 client (one request per connection, `Connection: close`, redirects
//! not followed). Success is a 2xx status line within the timeout; the body of the
//! answer is not read.
//!
//! HTTPS uses rustls with the ring provider (never aws-lc: two providers in one process
//! make rustls's default builders panic) and the Mozilla roots from `webpki-roots`; the
//! host's own trust store is not consulted.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hooks::error::HookError;

/// The `User-Agent` every webhook request carries.
pub const USER_AGENT: &str = concat!("muster/", env!("CARGO_PKG_VERSION"));

/// Longest status line read: real servers send a few dozen bytes.
const MAX_STATUS_LINE: usize = 8192;

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

impl TlsClient {
    /// Ring provider, safe default protocol versions, the Mozilla roots.
    pub(crate) fn new() -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
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
    tokio::time::timeout(timeout, post_now(url, headers, body, tls))
        .await
        .unwrap_or(Err(HookError::Timeout(timeout)))
}

async fn post_now(
    url: &WebhookUrl,
    headers: &[(String, String)],
    body: &[u8],
    tls: Option<&TlsClient>,
) -> Result<(), HookError> {
    let addr = format!("{}:{}", url.host, url.port);
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|source| HookError::Connect {
            addr: addr.clone(),
            source,
        })?;
    // Small writes, one request: do not wait for more data to coalesce.
    let _ = tcp.set_nodelay(true);
    let request = request(url, headers, body);
    if !url.tls {
        return exchange(tcp, &request).await;
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
    exchange(stream, &request).await
}

/// The request's bytes: head and body.
fn request(url: &WebhookUrl, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path,
        url.host_header(),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` and reads the status line.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &[u8],
) -> Result<(), HookError> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    while !line.contains(&b'\n') {
        if line.len() > MAX_STATUS_LINE {
            return Err(HookError::Response("status line too long".into()));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(HookError::Response(
                "connection closed before a status line".into(),
            ));
        }
        line.extend_from_slice(&buf[..n]);
    }
    let status = parse_status(&line)?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(HookError::Status { status })
    }
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
        let bytes = request(&url, &[("X-Team".into(), "ops".into())], b"{\"a\":1}");
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
}
