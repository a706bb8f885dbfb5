//! [`serve`]: the API's HTTP/1.1 server (hyper), with the limits that keep a flood of
//! clients from taking the agent down with it.
//!
//! - **Connections**: at most [`ServerLimits::max_connections`] are served at once. One
//!   more is answered `503` with a JSON error and closed (at most [`MAX_REFUSING`]
//!   refusals are written at a time; past that a connection is closed unanswered), so
//!   the agent keeps file descriptors for its checks, hooks and mesh.
//! - **Header timeout**: a request whose headers are not complete within
//!   [`ServerLimits::header_timeout`] closes its connection (half-sent headers hold
//!   nothing for long).
//! - **Idle timeout**: a connection that moves no byte for
//!   [`ServerLimits::idle_timeout`] is closed between requests (an event stream's
//!   keep-alive comments count as bytes, so a quiet stream stays open); one that still
//!   moves nothing a second period later is dropped, request or not.
//! - **TLS** (optional): the handshake must finish within the header timeout.
//!
//! The router sees each request with the connection's [`ConnAddrs`] as an extension
//! (see [`super::access`]). [`ServerStats`] counts what happened, for `/metrics`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::api::ConnAddrs;
use crate::metrics::{Exposition, Kind, MetricsSource};

/// Connections served at once unless configured (`api_max_connections`): far more than
/// the local tools and scrapers an agent serves; [`ServerLimits::fitted`] lowers it to
/// fit the process's file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a client may take to send a request's headers (and a TLS handshake): a
/// local client sends them in one write; ten seconds covers a loaded host.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may move no byte before it is closed: clients that keep a
/// connection for reuse come back within seconds; an event stream sends a keep-alive
/// comment every 15 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Refusals (`503` answers to connections over the limit) written at once; each holds a
/// descriptor for at most a second.
pub const MAX_REFUSING: usize = 32;

/// How long writing a refusal may take before the connection is just closed.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// The share of the file-descriptor limit API connections may hold: the rest is for the
/// mesh, DNS, checks (three pipes per `exec` run), hooks and refusals.
const FD_SHARE: u64 = 4;

/// How long to pause accepting after an error such as running out of descriptors, so the
/// loop does not spin while connections close.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The answer to a connection over the limit.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 52\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
{\"error\":\"too many connections to this agent's API\"}";

/// The server's limits. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request's headers (and to finish a TLS handshake).
    pub header_timeout: Duration,
    /// Time without a byte before a connection is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ServerLimits {
    /// `max_connections` lowered to a quarter of `fd_limit` (the process's descriptor
    /// limit), and at least 8.
    pub fn fitted(self, fd_limit: u64) -> ServerLimits {
        let share = usize::try_from(fd_limit / FD_SHARE).unwrap_or(usize::MAX);
        ServerLimits {
            max_connections: self.max_connections.min(share).max(8),
            ..self
        }
    }
}

/// What the server counted, for `/metrics`.
#[derive(Debug, Default)]
pub struct ServerStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    idle_closed: AtomicU64,
    tls_failed: AtomicU64,
    accept_errors: AtomicU64,
    max_connections: AtomicU64,
    fd_limit: AtomicU64,
}

impl ServerStats {
    /// Records the process's descriptor limit, for `/metrics`.
    pub fn set_fd_limit(&self, limit: u64) {
        self.fd_limit.store(limit, Ordering::Relaxed);
    }

    /// Connections refused because the server was at its limit.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

impl MetricsSource for ServerStats {
    fn write_metrics(&self, out: &mut Exposition) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        out.single(
            "muster_api_connections_open",
            Kind::Gauge,
            "HTTP API connections open now.",
            get(&self.open),
        );
        out.single(
            "muster_api_connections_max",
            Kind::Gauge,
            "HTTP API connections served at once; more are answered 503.",
            get(&self.max_connections),
        );
        out.single(
            "muster_api_connections_accepted_total",
            Kind::Counter,
            "HTTP API connections accepted and served.",
            get(&self.accepted),
        );
        out.single(
            "muster_api_connections_refused_total",
            Kind::Counter,
            "HTTP API connections refused because the limit was reached.",
            get(&self.refused),
        );
        out.single(
            "muster_api_connections_idle_closed_total",
            Kind::Counter,
            "HTTP API connections closed after moving no byte for the idle timeout.",
            get(&self.idle_closed),
        );
        out.single(
            "muster_api_tls_handshakes_failed_total",
            Kind::Counter,
            "HTTP API TLS handshakes that failed or timed out.",
            get(&self.tls_failed),
        );
        out.single(
            "muster_api_accept_errors_total",
            Kind::Counter,
            "Errors accepting HTTP API connections (e.g. out of file descriptors).",
            get(&self.accept_errors),
        );
        out.single(
            "muster_process_fd_limit",
            Kind::Gauge,
            "The agent's file-descriptor limit (RLIMIT_NOFILE, soft), after raising it to the hard limit at start.",
            get(&self.fd_limit),
        );
    }
}

/// Serves `router` on `listener` within `limits` (over TLS with `tls`) until `shutdown`
/// completes; then stops accepting, closes idle connections, lets requests in flight
/// finish, and returns once every connection has closed (callers bound that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    stats: Arc<ServerStats>,
    shutdown: impl Future<Output = ()>,
) {
    let max = limits.max_connections.max(1);
    stats
        .max_connections
        .store(u64::try_from(max).unwrap_or(u64::MAX), Ordering::Relaxed);
    let slots = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "HTTP API cannot accept a connection; pausing");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(REFUSAL_WRITE, stream.write_all(BUSY)).await;
                    drop(permit);
                });
            }
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let conn = ConnAddrs { peer, local };
        let router = router.clone();
        let stats = stats.clone();
        let stopping = stopping.clone();
        let tls = tls.clone();
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            connection(stream, tls, conn, router, limits, stopping, &stats).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    stop.send_replace(true);
    // Every connection holds a slot until it ends.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

/// Serves one connection (after its TLS handshake, if any).
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    conn: ConnAddrs,
    router: Router,
    limits: ServerLimits,
    stopping: watch::Receiver<bool>,
    stats: &ServerStats,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(Counted::new(stream), conn, router, limits, stopping, stats).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    http(Counted::new(stream), conn, router, limits, stopping, stats).await;
                }
                Ok(Err(e)) => {
                    stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %conn.peer, error = %e, "API TLS handshake failed");
                }
                Err(_) => {
                    stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %conn.peer, "API TLS handshake timed out");
                }
            }
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client closes, a limit closes it, or the server
/// stops.
async fn http<I>(
    io: Counted<I>,
    conn: ConnAddrs,
    router: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<bool>,
    stats: &ServerStats,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let moved = io.moved.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(conn);
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(limits.idle_timeout);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    idle_check.tick().await;
    let mut last_moved = moved.load(Ordering::Relaxed);
    let mut closing = false;
    let mut idle_periods = 0u32;
    loop {
        tokio::select! {
            outcome = connection.as_mut() => {
                if let Err(e) = outcome {
                    tracing::debug!(peer = %conn.peer, error = %e, "API connection ended");
                }
                return;
            }
            changed = stopping.changed(), if !closing => {
                // A dropped sender means the server is gone: stop too.
                let _ = changed;
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick() => {
                let now_moved = moved.load(Ordering::Relaxed);
                if now_moved != last_moved {
                    last_moved = now_moved;
                    idle_periods = 0;
                    continue;
                }
                idle_periods += 1;
                if idle_periods == 1 {
                    stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                } else {
                    return;
                }
            }
        }
    }
}

/// An I/O stream that counts the bytes it moves (for the idle timeout).
struct Counted<I> {
    inner: I,
    moved: Arc<AtomicU64>,
}

impl<I> Counted<I> {
    fn new(inner: I) -> Counted<I> {
        Counted {
            inner,
            moved: Arc::new(AtomicU64::new(0)),
        }
    }

    fn add(&self, n: usize) {
        if n > 0 {
            self.moved
                .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.add(read);
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.add(*n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why the API's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TlsFilesError {
    /// `api_tls_cert` or `api_tls_key`.
    pub field: &'static str,
    /// What is wrong, naming the file.
    pub reason: String,
}

/// A TLS acceptor (TLS 1.2 and 1.3, ring, ALPN `http/1.1`) for the certificate chain in
/// `cert` and the private key in `key` (PEM files).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsFilesError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsFilesError {
            field: "api_tls_cert",
            reason: format!("{}: {e}", cert.display()),
        })?;
    if chain.is_empty() {
        return Err(TlsFilesError {
            field: "api_tls_cert",
            reason: format!("{}: no certificate in the file", cert.display()),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFilesError {
        field: "api_tls_key",
        reason: format!("{}: {e}", key.display()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| TlsFilesError {
            field: "api_tls_key",
            reason: format!("{}: {e}", key.display()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Raises the process's soft file-descriptor limit to its hard limit, and returns the
/// limit in force (0 when it cannot be read).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return u64::MAX;
    };
    if limit.maximum != Some(current) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum.unwrap_or(u64::MAX),
            Err(e) => tracing::debug!(error = %e, "cannot raise the file-descriptor limit"),
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_a_quarter_of_the_descriptors() {
        let limits = ServerLimits::default();
        assert_eq!(
            limits.fitted(1 << 20).max_connections,
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(limits.fitted(1024).max_connections, 256);
        assert_eq!(limits.fitted(256).max_connections, 64);
        assert_eq!(limits.fitted(16).max_connections, 8);
    }

    #[test]
    fn the_busy_answer_declares_its_body_length() {
        let text = std::str::from_utf8(BUSY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
        let _: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    }
}
