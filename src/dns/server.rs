//! [`DnsServer`]: the sockets and tasks that carry DNS messages to
//! [`message::respond`] and back, over UDP and TCP on one address.
//!
//! Answers are cheap synchronous reads (a route answer from the debounced catalog, a map
//! lookup), so each task answers inline: no task per query. UDP: a few tasks share one
//! socket, each receiving, answering and sending in a loop. TCP (RFC 7766): one task
//! accepts; each connection is a task reading length-prefixed queries one after another,
//! closed after [`TCP_IDLE`] without a complete query, at most [`MAX_TCP_CONNECTIONS`]
//! at once (more are closed at once: clients fall back to UDP or retry).
//!
//! UDP queries pass a per-source [`RateLimiter`] first ([`RateLimit::default`] unless
//! [`DnsServer::with_rate_limit`] says otherwise): a limited query is dropped, or
//! answered empty with TC (see [`super::limiter`]), and counted. TCP is not limited:
//! its handshake proves the source, and the connection cap bounds it.
//!
//! Network input never stops the server: a bad packet is answered (FORMERR) or dropped
//! and counted, and socket errors are logged and the loop goes on.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::limiter::{RateLimit, RateLimiter, Verdict};
use super::message::{self, Authority, Transport, ZoneData};
use super::zone::{AgentZone, MemberFeed, follow_members};
use crate::agent::MeshView;
use crate::metrics::{Exposition, Kind, MetricsSource};
use crate::routing::services::Services;

/// Tasks sharing the UDP socket: one per core, up to four (each answers in a few
/// microseconds; more would only contend for the router's lock).
const MAX_UDP_TASKS: usize = 4;

/// Largest datagram read. Queries are tens of bytes; a longer datagram is cut here and
/// then answered FORMERR.
const UDP_BUFFER: usize = 4096;

/// A TCP connection is closed after this long without a complete query: RFC 7766 asks
/// servers to keep idle connections for seconds, not minutes.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// Most TCP connections served at once: DNS over TCP here is the fallback for truncated
/// answers, so a few hundred is far beyond normal use and bounds what a flood can hold.
pub const MAX_TCP_CONNECTIONS: usize = 256;

/// How many times to look for a port free for both UDP and TCP when asked for port 0.
const BIND_ATTEMPTS: usize = 16;

/// The bound UDP socket and TCP listener, on the same address. Bound before anything
/// else starts, so a taken port stops the agent early.
#[derive(Debug)]
pub struct DnsSockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsSockets {
    /// Binds UDP and TCP on `addr`. With port 0, both get the same free port.
    pub async fn bind(addr: SocketAddr) -> io::Result<DnsSockets> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let udp = UdpSocket::bind(addr).await?;
            let bound = udp.local_addr()?;
            match TcpListener::bind(bound).await {
                Ok(tcp) => return Ok(DnsSockets { udp, tcp }),
                // The UDP port was free but its TCP twin is not: try another.
                Err(e)
                    if addr.port() == 0
                        && e.kind() == io::ErrorKind::AddrInUse
                        && attempts < BIND_ATTEMPTS => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Counts of what the server did, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Responses sent, by [`RCODES`] index.
    responses: [AtomicU64; RCODES.len()],
    /// Responses sent with TC set.
    truncated: AtomicU64,
    /// Messages not answered: too short to carry an id, or responses.
    dropped: AtomicU64,
    /// TCP connections closed at once because [`MAX_TCP_CONNECTIONS`] were open.
    tcp_refused: AtomicU64,
    /// UDP queries over their source's rate limit and dropped.
    limited_dropped: AtomicU64,
    /// UDP queries over their source's rate limit and answered empty with TC.
    limited_truncated: AtomicU64,
}

/// Response codes counted apart, by their usual names; the last is every other code.
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "OTHER",
];

fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

impl DnsStats {
    /// Responses sent so far, every code.
    pub fn responses(&self) -> u64 {
        self.responses
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Responses sent so far with `rcode`'s name (`NOERROR`, `NXDOMAIN`, ...; `OTHER`).
    pub fn responses_with(&self, rcode: &str) -> u64 {
        RCODES
            .iter()
            .position(|r| *r == rcode)
            .map_or(0, |i| self.responses[i].load(Ordering::Relaxed))
    }

    /// Messages dropped unanswered.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Responses truncated (TC set) for their size; limited queries answered TC are
    /// not counted here but in [`DnsStats::limited`].
    pub fn truncated(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// UDP queries over their source's rate limit: dropped, or answered empty with TC.
    /// Counted here only, not in [`DnsStats::responses`] nor [`DnsStats::dropped`].
    pub fn limited(&self) -> u64 {
        self.limited_dropped.load(Ordering::Relaxed) + self.limited_truncated()
    }

    /// Of [`DnsStats::limited`], those answered empty with TC.
    pub fn limited_truncated(&self) -> u64 {
        self.limited_truncated.load(Ordering::Relaxed)
    }

    fn count(&self, reply: Option<&message::Reply>) {
        match reply {
            Some(reply) => {
                self.responses[rcode_index(reply.rcode)].fetch_add(1, Ordering::Relaxed);
                if reply.truncated {
                    self.truncated.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl MetricsSource for DnsStats {
    fn write_metrics(&self, out: &mut Exposition) {
        out.family(
            "muster_dns_responses_total",
            Kind::Counter,
            "DNS responses sent, by response code.",
        );
        for (i, rcode) in RCODES.iter().enumerate() {
            let n = self.responses[i].load(Ordering::Relaxed);
            out.sample("muster_dns_responses_total", &[("rcode", rcode)], n as f64);
        }
        out.single(
            "muster_dns_truncated_total",
            Kind::Counter,
            "DNS responses sent truncated (TC set: the client retries over TCP).",
            self.truncated() as f64,
        );
        out.single(
            "muster_dns_dropped_total",
            Kind::Counter,
            "DNS messages dropped unanswered: too short to carry an id, or responses.",
            self.dropped() as f64,
        );
        out.single(
            "muster_dns_tcp_refused_total",
            Kind::Counter,
            "DNS TCP connections closed at once because the connection limit was reached.",
            self.tcp_refused.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "muster_dns_queries_limited_total",
            Kind::Counter,
            "DNS UDP queries over their source's rate limit, by what they got: \
             dropped, or truncated (an empty answer with TC set).",
        );
        for (action, n) in [
            ("dropped", &self.limited_dropped),
            ("truncated", &self.limited_truncated),
        ] {
            out.sample(
                "muster_dns_queries_limited_total",
                &[("action", action)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

/// The UDP rate limit the tasks apply, and whether it is off: an agent that turned it
/// off (`dns_rate_limit = 0`) answers every query without taking the limiter's lock.
#[derive(Debug)]
struct UdpLimit {
    off: AtomicBool,
    limiter: Mutex<RateLimiter>,
}

impl UdpLimit {
    fn new(limit: RateLimit) -> UdpLimit {
        UdpLimit {
            off: AtomicBool::new(limit.is_off()),
            limiter: Mutex::new(RateLimiter::new(limit)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RateLimiter> {
        // A panic while checking leaves at worst one bucket off by a token.
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `limit` from now on, every source starting with a full bucket.
    fn set(&self, limit: RateLimit) {
        let mut limiter = self.lock();
        *limiter = RateLimiter::new(limit);
        self.off.store(limit.is_off(), Ordering::Relaxed);
    }

    /// The verdict on a query from `source` at `now`.
    fn check(&self, source: std::net::IpAddr, now: tokio::time::Instant) -> Verdict {
        if self.off.load(Ordering::Relaxed) {
            return Verdict::Answer;
        }
        self.lock().check(source, now)
    }
}

/// What every task shares: the zone, the SOA settings, the counts, the UDP limit.
struct Shared<Z> {
    zone: Z,
    authority: Authority,
    stats: Arc<DnsStats>,
    limit: Arc<UdpLimit>,
}

impl<Z: ZoneData> Shared<Z> {
    fn respond(&self, packet: &[u8], transport: Transport) -> Option<message::Reply> {
        let reply = message::respond(packet, &self.zone, &self.authority, transport);
        self.stats.count(reply.as_ref());
        reply
    }

    /// What to send back for a UDP `packet` from `from`: its answer within the rate
    /// limit, an empty TC answer or nothing past it.
    fn respond_udp(&self, packet: &[u8], from: SocketAddr) -> Option<message::Reply> {
        // The limiter's clock: `tokio::time::Instant` (the lint guards the std one),
        // read here only.
        let now = tokio::time::Instant::now();
        let verdict = self.limit.check(from.ip(), now);
        match verdict {
            Verdict::Answer => self.respond(packet, Transport::Udp),
            Verdict::Slip => {
                let reply = message::retry_over_tcp(packet);
                let counter = match reply {
                    Some(_) => &self.stats.limited_truncated,
                    None => &self.stats.limited_dropped,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                reply
            }
            Verdict::Drop => {
                self.stats.limited_dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// A running DNS server. Stop it with [`DnsServer::shutdown`]; dropping it leaves the
/// tasks running.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    stats: Arc<DnsStats>,
    limit: Arc<UdpLimit>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves the agent's zone on `sockets` (on the current tokio runtime): services
    /// from `services`, members from `view`, every record with `ttl` (whole seconds),
    /// UDP answers limited by [`RateLimit::default`] (see [`DnsServer::with_rate_limit`]).
    pub fn start(
        sockets: DnsSockets,
        view: &MeshView,
        services: Services,
        ttl: Duration,
    ) -> io::Result<DnsServer> {
        let feed = Arc::new(MemberFeed::new(view));
        let zone = AgentZone::new(services, &feed);
        let ttl = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        let authority = Authority::new(view.name(), ttl);
        let mut server = DnsServer::serve(sockets, zone, authority)?;
        server
            .tasks
            .push(tokio::spawn(follow_members(view.clone(), feed)));
        Ok(server)
    }

    /// Serves any zone on `sockets`: for tests and benchmarks of the server alone. UDP
    /// answers are limited by [`RateLimit::default`], as with [`DnsServer::start`].
    pub fn serve<Z: ZoneData + Send + Sync + 'static>(
        sockets: DnsSockets,
        zone: Z,
        authority: Authority,
    ) -> io::Result<DnsServer> {
        let addr = sockets.local_addr()?;
        let stats = Arc::new(DnsStats::default());
        let limit = Arc::new(UdpLimit::new(RateLimit::default()));
        let shared = Arc::new(Shared {
            zone,
            authority,
            stats: stats.clone(),
            limit: limit.clone(),
        });
        let udp = Arc::new(sockets.udp);
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_UDP_TASKS);
        let mut tasks: Vec<JoinHandle<()>> = (0..workers)
            .map(|_| tokio::spawn(serve_udp(udp.clone(), shared.clone())))
            .collect();
        tasks.push(tokio::spawn(serve_tcp(sockets.tcp, shared)));
        Ok(DnsServer {
            addr,
            stats,
            limit,
            tasks,
        })
    }

    /// Limits UDP answers per source to `limit` from now on ([`RateLimit::OFF`]: no
    /// limit), every source starting with a full bucket. Meant right after
    /// [`DnsServer::start`] or [`DnsServer::serve`]: `DnsServer::start(..)?.with_rate_limit(..)`.
    pub fn with_rate_limit(self, limit: RateLimit) -> DnsServer {
        self.limit.set(limit);
        self
    }

    /// The UDP rate limit per source it applies.
    pub fn rate_limit(&self) -> RateLimit {
        self.limit.lock().limit()
    }

    /// The address it serves (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counts, shared: they keep counting while it runs.
    pub fn stats(&self) -> Arc<DnsStats> {
        self.stats.clone()
    }

    /// Stops every task and closes the sockets (open TCP connections too); returns once
    /// they are closed.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            // Cancelled, as asked; a panic would already have been reported.
            let _ = task.await;
        }
    }
}

/// One UDP task: receive, answer, send, until aborted.
async fn serve_udp<Z: ZoneData>(socket: Arc<UdpSocket>, shared: Arc<Shared<Z>>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // E.g. an ICMP error reported on the socket: the next datagram is fine.
                // A short pause keeps an error that repeats from spinning a core.
                tracing::debug!(error = %e, "DNS UDP receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let Some(reply) = shared.respond_udp(&buf[..len], from) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply.bytes, from).await {
            tracing::debug!(%from, error = %e, "DNS UDP answer not sent");
        }
    }
}

/// The TCP accept loop, until aborted (which also ends its connections).
async fn serve_tcp<Z: ZoneData + Send + Sync + 'static>(
    listener: TcpListener,
    shared: Arc<Shared<Z>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, "DNS TCP connection limit reached; closing");
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            serve_connection(stream, &shared).await;
            drop(slot);
        });
    }
}

/// One TCP connection: length-prefixed queries, answered in order.
async fn serve_connection<Z: ZoneData>(mut stream: TcpStream, shared: &Shared<Z>) {
    let mut len = [0u8; 2];
    loop {
        let read = tokio::time::timeout(TCP_IDLE, async {
            stream.read_exact(&mut len).await?;
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut query).await?;
            Ok::<_, io::Error>(query)
        })
        .await;
        let query = match read {
            Ok(Ok(query)) if !query.is_empty() => query,
            // Idle, closed, reset, or an empty message: done with this client.
            _ => return,
        };
        let Some(reply) = shared.respond(&query, Transport::Tcp) else {
            return;
        };
        // `respond` keeps TCP answers within 65,535 bytes.
        let Ok(prefix) = u16::try_from(reply.bytes.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(2 + reply.bytes.len());
        out.extend_from_slice(&prefix.to_be_bytes());
        out.extend_from_slice(&reply.bytes);
        match tokio::time::timeout(TCP_IDLE, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_turned_off_answers_everything_and_one_turned_on_limits_again() {
        let source: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let now = tokio::time::Instant::now();
        let limit = UdpLimit::new(RateLimit::OFF);
        assert!((0..10_000).all(|_| limit.check(source, now) == Verdict::Answer));
        limit.set(RateLimit::per_second(1));
        let verdicts: Vec<Verdict> = (0..5).map(|_| limit.check(source, now)).collect();
        assert!(verdicts.contains(&Verdict::Answer), "{verdicts:?}");
        assert!(
            verdicts.iter().any(|v| *v != Verdict::Answer),
            "a burst past the limit is limited: {verdicts:?}"
        );
        limit.set(RateLimit::OFF);
        assert_eq!(limit.check(source, now), Verdict::Answer);
    }
}
