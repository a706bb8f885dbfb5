//! [`Transport`]: one quinn endpoint per agent that accepts and dials, the per-connection
//! readers that feed the driver, and the send paths.
//!
//! Every established connection, dialed or accepted, gets one reader task that takes
//! its datagrams and its unidirectional streams (each stream read whole, up to
//! [`MAX_STREAM_LEN`], on its own task) and pushes [`Incoming`] messages into one bounded
//! channel. A full channel drops datagrams (they are unreliable anyway) and makes stream
//! readers wait. Nothing here retries: a failed send is counted, logged at debug and
//! returned; the protocol above decides what to do next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;

use crate::proto::{Channel, PeerCertificate};
use crate::transport::conn_cache::{ConnCache, Lookup};
use crate::transport::identity::{CLUSTER_SERVER_NAME, Identity};
use crate::transport::socket::{MeteredSocket, WireMeter};
use crate::transport::stats::{Counters, TransportStats, add};
use crate::transport::{DialError, Incoming, QueueCharge, TransportError, peer_cert, tls};
use crate::wire::MAX_STREAM_LEN;

/// Application close code: the agent is shutting down.
const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the connection was dropped from the cache (it was the least
/// recently used of a full cache).
const CLOSE_EVICTED: u32 = 1;
/// Length of the connection ids this endpoint issues; see `Transport::bind`.
const CID_LEN: usize = 4;

/// Handshakes in progress above which incoming ones must first validate their address
/// (a stateless retry, one extra round trip); below it, handshakes cost no extra trip.
const VALIDATE_ABOVE_PENDING: u64 = 16;
/// Stream messages being read at once, across all connections: each may hold up to
/// `MAX_STREAM_LEN` bytes, so this bounds what peers can make us buffer.
const MAX_STREAM_READS: usize = 16;
/// Stream messages read at once from one peer address: a peer that stalls its streams
/// holds at most this many of the [`MAX_STREAM_READS`], so others' joins, push-pulls and
/// state pulls still get read.
const MAX_STREAM_READS_PER_PEER: usize = 4;
/// How long one stream message may take to arrive once its read began: the sender gives
/// up after [`STREAM_SEND_TIMEOUT`] too, so a read still going past it is a stalled
/// stream, and its permit goes to someone else.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a stream message may take to hand to QUIC (open, write, finish).
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code: the membership protocol declared the peer failed.
const CLOSE_PEER_FAILED: u32 = 2;
/// Stream stop code: the message exceeded the size limit.
const STOP_TOO_LONG: u32 = 1;

/// Limits of a [`Transport`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransportOptions {
    /// Connections kept in the cache; past this the least recently used is closed.
    pub max_cached: usize,
    /// Connections open at once, cached or not (accepted ones beyond the cache stay open
    /// as long as their dialer keeps them); incoming connections past this are refused.
    pub max_open: usize,
    /// How long a dial may take before it is reported as failed.
    pub dial_timeout: Duration,
    /// Messages buffered for the driver.
    pub incoming_queue: usize,
    /// Share of outgoing UDP packets dropped on purpose (0.0–1.0), to test and measure
    /// under loss; 0 in production. Changeable later with [`Transport::set_loss`].
    pub loss: f64,
    /// Incoming handshakes in progress at once; past this an incoming connection is
    /// refused before any TLS work. Far fewer than [`TransportOptions::max_open`]: a
    /// handshake costs more than an open connection and an honest one is over in a
    /// round trip or two.
    pub max_handshakes: usize,
    /// How long an incoming handshake may take before it is abandoned.
    pub handshake_timeout: Duration,
    /// Bytes of received messages waiting for the driver; a message that would take
    /// the queue past this is dropped (and counted), like one past `incoming_queue`.
    pub incoming_bytes: usize,
    /// A secret that survives restarts (the cluster key, or the node's key file), from
    /// which, with the bound address, the QUIC stateless-reset key is derived. Then a
    /// node restarted at the same address can reset its peers' connections to its old
    /// life, which they recognise, instead of those peers sending into a connection
    /// nobody knows until the idle timeout. `None`: a random key per process.
    pub reset_secret: Option<[u8; 32]>,
    /// Hand each message over with what its connection's peer certificate says (node
    /// names and key, [`Incoming::peer`]): in PKI mode, where the CA vouches for names.
    /// Off with a cluster key, whose every holder issues itself any name.
    pub certified_names: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            // Covers every member of a mid-sized cluster a node talks to often (probe
            // targets, gossip fanout, its prober set); others pay a handshake.
            max_cached: 256,
            // Four times the cache: room for every peer's cached connection to us.
            max_open: 1024,
            // A loopback or LAN handshake takes a millisecond; a peer silent for 5 s is
            // down, and its failure detection does not wait on us.
            dial_timeout: Duration::from_secs(5),
            // Several seconds of datagrams at cluster rates; a driver that far behind
            // is better served by drops than by memory growth.
            incoming_queue: 4096,
            // A few dozen handshakes cover a whole cluster (re)connecting to a node at
            // once (dials are spread by the probe and gossip schedules).
            max_handshakes: 64,
            // A WAN handshake is two round trips (well under a second); a peer that
            // takes three seconds is holding state on purpose or is too far gone.
            handshake_timeout: Duration::from_secs(3),
            // Two full-size stream messages (32 MiB each): joins and push-pulls of the
            // largest clusters fit; a flood of them does not grow memory further.
            incoming_bytes: 2 * MAX_STREAM_LEN,
            loss: 0.0,
            reset_secret: None,
            certified_names: false,
        }
    }
}

/// A QUIC endpoint that both accepts and dials, with its connection cache. Cloning is
/// cheap and shares the endpoint. Must be created inside a tokio runtime.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

struct Shared {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    cache: ConnCache,
    counters: Counters,
    meter: Arc<WireMeter>,
    stream_reads: tokio::sync::Semaphore,
    /// Per peer address, the permits of its stream reads in progress (an entry lives as
    /// long as some read of that peer holds or awaits it).
    peer_reads: std::sync::Mutex<HashMap<SocketAddr, Arc<tokio::sync::Semaphore>>>,
    /// Bytes of the messages in `incoming` (given back as the driver drops them).
    queued_bytes: Arc<AtomicUsize>,
    incoming: mpsc::Sender<Incoming>,
    options: TransportOptions,
}

impl Transport {
    /// Binds a UDP socket at `addr`, starts accepting, and returns the transport with
    /// the receiving end of its [`Incoming`] channel.
    pub fn bind(
        addr: SocketAddr,
        identity: &Identity,
        cluster: &str,
        options: TransportOptions,
    ) -> Result<(Transport, mpsc::Receiver<Incoming>), TransportError> {
        let (server, client) = tls::quic_configs(identity, cluster)?;
        let bind_err = |source| TransportError::Bind { addr, source };
        // Endpoint::server, with our metered socket in between.
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let local = socket.local_addr().map_err(bind_err)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let inner = quinn::Runtime::wrap_udp_socket(&*runtime, socket).map_err(bind_err)?;
        let seed = u64::from(addr.port()) ^ 0x9e37_79b9_7f4a_7c15;
        let meter = Arc::new(WireMeter::new(options.loss, seed));
        let socket = Arc::new(MeteredSocket::new(inner, meter.clone()));
        let mut endpoint_config = match options.reset_secret {
            Some(secret) => quinn::EndpointConfig::new(Arc::new(reset_key(&secret, local))),
            None => quinn::EndpointConfig::default(),
        };
        // Every packet carries the receiver's connection id: 4 random bytes instead of
        // quinn's 8 tell apart the few hundred connections an agent holds, and save 4
        // bytes on each of the ~3 packets a probe costs (about 12 B/s per agent).
        endpoint_config
            .cid_generator(|| Box::new(quinn_proto::RandomConnectionIdGenerator::new(CID_LEN)));
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            Some(server),
            socket,
            runtime,
        )
        .map_err(bind_err)?;
        endpoint.set_default_client_config(client);
        let local_addr = endpoint.local_addr().map_err(bind_err)?;
        let (tx, rx) = mpsc::channel(options.incoming_queue.max(1));
        let shared = Arc::new(Shared {
            endpoint,
            local_addr,
            cache: ConnCache::<Connection>::new(options.max_cached),
            counters: Counters::default(),
            meter,
            stream_reads: tokio::sync::Semaphore::new(MAX_STREAM_READS),
            peer_reads: std::sync::Mutex::default(),
            queued_bytes: Arc::default(),
            incoming: tx,
            options,
        });
        tokio::spawn(accept_loop(shared.clone()));
        tracing::debug!(%local_addr, "transport bound");
        Ok((Transport { shared }, rx))
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Sends a datagram over the connection to `to`, dialing first if there is none.
    pub async fn send_datagram(&self, to: SocketAddr, bytes: Bytes) -> Result<(), TransportError> {
        let conn = self.shared.connection(to).await?;
        self.shared.datagram_on(&conn, to, bytes)
    }

    /// Sends a datagram at once if a connection to `to` is ready; `None` (nothing sent)
    /// if a dial is needed, which the caller should do off its hot path with
    /// [`Transport::send_datagram`].
    pub fn send_datagram_if_connected(
        &self,
        to: SocketAddr,
        bytes: &Bytes,
    ) -> Option<Result<(), TransportError>> {
        let conn = self.shared.cache.ready(to)?;
        Some(self.shared.datagram_on(&conn, to, bytes.clone()))
    }

    /// Sends one stream message: a new unidirectional stream carrying `payload`, then
    /// finished. Dials first if needed.
    pub async fn send_stream(
        &self,
        to: SocketAddr,
        payload: Vec<u8>,
    ) -> Result<(), TransportError> {
        let counters = &self.shared.counters;
        let len = payload.len();
        if len > MAX_STREAM_LEN {
            add(&counters.send_failures, 1);
            return Err(TransportError::StreamTooLarge {
                to,
                len,
                max: MAX_STREAM_LEN,
            });
        }
        let conn = self.shared.connection(to).await?;
        let write = async {
            let mut send = conn
                .open_uni()
                .await
                .map_err(|source| TransportError::OpenStream { to, source })?;
            send.write_all(&payload)
                .await
                .map_err(|source| TransportError::WriteStream { to, source })?;
            // Finishing only fails if the peer already stopped the stream, which the
            // write above would have reported; dropping the stream then delivers the rest.
            let _ = send.finish();
            Ok(())
        };
        // A peer that stops granting flow-control credit must not hold this task (and
        // its payload) forever.
        let sent = match tokio::time::timeout(STREAM_SEND_TIMEOUT, write).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::StreamTimeout { to }),
        };
        match &sent {
            Ok(()) => {
                add(&counters.streams_out, 1);
                add(&counters.stream_bytes_out, len as u64);
            }
            Err(_) => add(&counters.send_failures, 1),
        }
        sent
    }

    /// A copy of the counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot(&self.shared.meter)
    }

    /// Sets the share of outgoing UDP packets dropped on purpose (0.0–1.0).
    pub fn set_loss(&self, loss: f64) {
        self.shared.meter.set_loss(loss);
    }

    /// Closes and forgets the cached connection to `to`, if any, so the next send dials
    /// afresh. Called when the membership protocol declares that peer failed: a peer
    /// that restarted at the same address would otherwise be sent to over a connection
    /// its new endpoint no longer knows, until the idle timeout.
    pub fn disconnect(&self, to: SocketAddr) {
        if let Some(conn) = self.shared.cache.ready(to) {
            self.shared.cache.remove(to, conn.stable_id());
            conn.close(VarInt::from_u32(CLOSE_PEER_FAILED), b"peer failed");
        }
    }

    /// Ready connections in the cache.
    pub fn cached_connections(&self) -> usize {
        self.shared.cache.len()
    }

    /// Closes every connection at once (peers see them closed) and stops accepting.
    pub fn close(&self) {
        self.shared
            .endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }

    /// Waits until closed connections have finished telling their peers, up to `limit`.
    pub async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.shared.endpoint.wait_idle()).await;
    }
}

impl Shared {
    /// A live connection to `to`: cached, or dialed (sharing a dial in progress).
    async fn connection(self: &Arc<Self>, to: SocketAddr) -> Result<Connection, TransportError> {
        match self.cache.lookup(to) {
            Lookup::Ready(conn) => Ok(conn),
            Lookup::Dial(cell) => {
                let outcome = cell.get_or_init(|| self.dial(to)).await.clone();
                for evicted in self.cache.settle(to, &cell, &outcome) {
                    self.evict(&evicted);
                }
                outcome.map_err(|source| {
                    add(&self.counters.send_failures, 1);
                    TransportError::Dial { to, source }
                })
            }
        }
    }

    /// One dial; on success the connection gets its reader.
    async fn dial(self: &Arc<Self>, to: SocketAddr) -> Result<Connection, DialError> {
        add(&self.counters.dials, 1);
        let connecting = match self.endpoint.connect(to, CLUSTER_SERVER_NAME) {
            Ok(c) => c,
            Err(e) => {
                add(&self.counters.handshakes_failed, 1);
                tracing::debug!(peer = %to, error = %e, "dial failed to start");
                return Err(e.into());
            }
        };
        match tokio::time::timeout(self.options.dial_timeout, connecting).await {
            Ok(Ok(conn)) => {
                add(&self.counters.handshakes_ok, 1);
                add(&self.counters.open_connections, 1);
                tracing::debug!(peer = %to, "connected");
                tokio::spawn(read_connection(self.clone(), conn.clone(), to));
                Ok(conn)
            }
            Ok(Err(e)) => {
                self.handshake_failed(to, &e);
                Err(e.into())
            }
            Err(_) => {
                add(&self.counters.handshakes_failed, 1);
                tracing::debug!(peer = %to, "dial timed out");
                Err(DialError::Timeout(self.options.dial_timeout))
            }
        }
    }

    /// Completes an incoming handshake; on success the connection is offered to the
    /// cache (so replies to this peer reuse it) and gets its reader.
    async fn accept(self: Arc<Self>, incoming: quinn::Incoming) {
        let from = canonical(incoming.remote_address());
        // quinn has no handshake timer of its own: an abandoned handshake would hold its
        // state until the idle timeout. Dropping it on timeout abandons it.
        let outcome = tokio::time::timeout(self.options.handshake_timeout, incoming).await;
        self.counters
            .handshakes_pending
            .fetch_sub(1, Ordering::Relaxed);
        let Ok(outcome) = outcome else {
            add(&self.counters.handshakes_failed, 1);
            tracing::debug!(peer = %from, "incoming handshake timed out");
            return;
        };
        match outcome {
            Ok(conn) => {
                add(&self.counters.handshakes_ok, 1);
                add(&self.counters.open_connections, 1);
                tracing::debug!(peer = %from, "accepted");
                for stale in self.cache.offer(from, &conn) {
                    self.evict(&stale);
                }
                tokio::spawn(read_connection(self.clone(), conn, from));
            }
            Err(e) => self.handshake_failed(from, &e),
        }
    }

    fn handshake_failed(&self, peer: SocketAddr, e: &ConnectionError) {
        add(&self.counters.handshakes_failed, 1);
        if is_tls_refusal(e) {
            add(&self.counters.handshakes_refused, 1);
            tracing::warn!(%peer, error = %e, "handshake refused: peer is not of this cluster");
        } else {
            tracing::debug!(%peer, error = %e, "handshake failed");
        }
    }

    /// Closes a connection the cache dropped (the least recently used of a full cache).
    fn evict(&self, conn: &Connection) {
        add(&self.counters.evictions, 1);
        conn.close(VarInt::from_u32(CLOSE_EVICTED), b"evicted");
    }

    fn datagram_on(
        &self,
        conn: &Connection,
        to: SocketAddr,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        let len = bytes.len();
        let too_large = |max| {
            add(&self.counters.datagrams_too_large, 1);
            TransportError::DatagramTooLarge { to, len, max }
        };
        match conn.max_datagram_size() {
            None => {
                add(&self.counters.datagrams_too_large, 1);
                return Err(TransportError::DatagramsUnsupported { to });
            }
            Some(max) if len > max => return Err(too_large(max)),
            Some(_) => {}
        }
        match conn.send_datagram(bytes) {
            Ok(()) => {
                add(&self.counters.datagrams_out, 1);
                add(&self.counters.datagram_bytes_out, len as u64);
                Ok(())
            }
            // The path's limit shrank between the check and the send.
            Err(quinn::SendDatagramError::TooLarge) => {
                Err(too_large(conn.max_datagram_size().unwrap_or(0)))
            }
            Err(source) => {
                add(&self.counters.send_failures, 1);
                Err(TransportError::SendDatagram { to, source })
            }
        }
    }

    fn deliver_datagram(&self, from: SocketAddr, peer: &Peer, bytes: Bytes) {
        add(&self.counters.datagrams_in, 1);
        add(&self.counters.datagram_bytes_in, bytes.len() as u64);
        if !self.enqueue(from, peer, bytes, Channel::Datagram) {
            add(&self.counters.incoming_dropped, 1);
        }
    }

    /// Queues a message for the driver, charged to the queue's byte budget; false (and
    /// nothing queued) when the queue is full in messages or in bytes.
    fn enqueue(&self, from: SocketAddr, peer: &Peer, bytes: Bytes, channel: Channel) -> bool {
        let Some(charge) =
            QueueCharge::take(&self.queued_bytes, bytes.len(), self.options.incoming_bytes)
        else {
            return false;
        };
        let msg = Incoming {
            from,
            peer: peer.clone(),
            bytes,
            channel,
            charge,
        };
        !matches!(
            self.incoming.try_send(msg),
            Err(mpsc::error::TrySendError::Full(_))
        )
    }

    /// The permits of `from`'s stream reads (see [`MAX_STREAM_READS_PER_PEER`]).
    fn peer_permits(&self, from: SocketAddr) -> Arc<tokio::sync::Semaphore> {
        let mut map = self
            .peer_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(from)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_STREAM_READS_PER_PEER)))
            .clone()
    }

    /// Forgets `from`'s permits once no read of it holds or awaits them.
    fn release_peer(&self, from: SocketAddr, permits: Arc<tokio::sync::Semaphore>) {
        let mut map = self
            .peer_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        drop(permits);
        if map.get(&from).is_some_and(|p| Arc::strong_count(p) == 1) {
            map.remove(&from);
        }
    }
}

/// The stateless-reset key of the endpoint bound at `addr`: HMAC-SHA256 of the address
/// under `secret`, so it is the same after a restart and different per address.
fn reset_key(secret: &[u8; 32], addr: SocketAddr) -> ring::hmac::Key {
    let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let label = format!("muster stateless reset v1 {addr}");
    let tag = ring::hmac::sign(&derive, label.as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, tag.as_ref())
}

/// Accepts connections until the endpoint closes. Handshakes run on their own tasks, so
/// one slow peer never stalls the others (and `accept` keeps being polled).
async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let open = shared.counters.open_connections.load(Ordering::Relaxed);
        let pending = shared.counters.handshakes_pending.load(Ordering::Relaxed);
        if pending >= shared.options.max_handshakes as u64 {
            add(&shared.counters.connections_refused, 1);
            tracing::debug!(peer = %incoming.remote_address(), pending, "too many handshakes in progress; refused");
            incoming.refuse();
            continue;
        }
        if open + pending >= shared.options.max_open as u64 {
            add(&shared.counters.connections_refused, 1);
            tracing::debug!(peer = %incoming.remote_address(), open, pending, "too many connections; refused");
            incoming.refuse();
            continue;
        }
        // Under a burst of handshakes (a flood of Initials from forged addresses), make
        // the client prove its address with a stateless retry before any state is kept.
        if pending >= VALIDATE_ABOVE_PENDING
            && !incoming.remote_address_validated()
            && incoming.may_retry()
        {
            let _ = incoming.retry();
            continue;
        }
        add(&shared.counters.handshakes_pending, 1);
        tokio::spawn(shared.clone().accept(incoming));
    }
    tracing::debug!("endpoint closed; accept loop done");
}

/// What a connection's peer certificate says, when the transport reports it.
type Peer = Option<Arc<PeerCertificate>>;

/// The peer certificate's names and key, if [`TransportOptions::certified_names`].
fn peer_of(shared: &Shared, conn: &Connection) -> Peer {
    if !shared.options.certified_names {
        return None;
    }
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    peer_cert::read(chain.first()?).map(Arc::new)
}

/// Reads one connection's datagrams and streams until it closes.
async fn read_connection(shared: Arc<Shared>, conn: Connection, from: SocketAddr) {
    let peer = peer_of(&shared, &conn);
    let reason = loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => shared.deliver_datagram(from, &peer, bytes),
                Err(e) => break e,
            },
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    tokio::spawn(read_stream(shared.clone(), recv, from, peer.clone()));
                }
                Err(e) => break e,
            },
        }
    };
    shared
        .counters
        .open_connections
        .fetch_sub(1, Ordering::Relaxed);
    shared.cache.remove(from, conn.stable_id());
    if is_tls_refusal(&reason) {
        // TLS 1.3: a server that rejects our client certificate says so only after our
        // side of the handshake completed (and was counted as ok).
        shared.handshake_failed(from, &reason);
    } else {
        tracing::debug!(peer = %from, reason = %reason, "connection closed");
    }
}

/// Reads one stream message whole and hands it to the driver. At most
/// [`MAX_STREAM_READS`] are read at once; a message the driver has no room for is dropped
/// (anti-entropy and joins retry), never queued ahead of probes.
async fn read_stream(shared: Arc<Shared>, recv: quinn::RecvStream, from: SocketAddr, cert: Peer) {
    let peer = shared.peer_permits(from);
    read_stream_with(&shared, &peer, recv, from, &cert).await;
    shared.release_peer(from, peer);
}

/// [`read_stream`] under its peer's permits and then the shared ones, with the read
/// bounded by [`STREAM_READ_TIMEOUT`].
async fn read_stream_with(
    shared: &Shared,
    peer: &tokio::sync::Semaphore,
    mut recv: quinn::RecvStream,
    from: SocketAddr,
    cert: &Peer,
) {
    // The peer's own permit first: a peer with all of its reads stalled waits here
    // without holding one of the shared permits.
    let Ok(_peer_permit) = peer.acquire().await else {
        return;
    };
    let Ok(_permit) = shared.stream_reads.acquire().await else {
        return; // closed: the transport is shutting down
    };
    let read = tokio::time::timeout(STREAM_READ_TIMEOUT, recv.read_to_end(MAX_STREAM_LEN));
    match read.await {
        Ok(Ok(bytes)) => {
            add(&shared.counters.streams_in, 1);
            add(&shared.counters.stream_bytes_in, bytes.len() as u64);
            if !shared.enqueue(from, cert, Bytes::from(bytes), Channel::Stream) {
                add(&shared.counters.streams_dropped, 1);
            }
        }
        Ok(Err(e)) => {
            add(&shared.counters.streams_dropped, 1);
            tracing::debug!(peer = %from, error = %e, "stream dropped");
            if matches!(e, quinn::ReadToEndError::TooLong) {
                let _ = recv.stop(VarInt::from_u32(STOP_TOO_LONG));
            }
        }
        Err(_) => {
            add(&shared.counters.streams_dropped, 1);
            tracing::debug!(peer = %from, "stream read timed out; dropped");
            let _ = recv.stop(VarInt::from_u32(STOP_TOO_LONG));
        }
    }
}

/// Whether a connection ended because TLS refused the peer or us: a QUIC CRYPTO_ERROR
/// (codes 0x100–0x1ff carry a TLS alert), raised locally or by the peer.
fn is_tls_refusal(e: &ConnectionError) -> bool {
    let code = match e {
        ConnectionError::TransportError(t) => t.code,
        ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

/// An IPv4-mapped IPv6 address (as a dual-stack socket reports IPv4 peers) as plain IPv4,
/// so it matches the address the core knows.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
