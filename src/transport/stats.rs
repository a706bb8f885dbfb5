//! Transport counters: handshakes, connections, traffic and drops. Shared atomics updated
//! by every task of the transport; [`TransportStats`] is a plain copy for readers.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::socket::WireMeter;

/// A copy of the transport's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Dials started (a send to a peer without a live connection).
    pub dials: u64,
    /// Handshakes completed, dialed or accepted.
    pub handshakes_ok: u64,
    /// Handshakes that failed, for any reason (timeouts and refusals included). A peer
    /// that refuses our client certificate does so just after our side of the TLS 1.3
    /// handshake completed; that refusal is counted here too.
    pub handshakes_failed: u64,
    /// The failures that were TLS refusals, by either side: a certificate that does not
    /// chain to the cluster CA, or an ALPN (cluster name) mismatch.
    pub handshakes_refused: u64,
    /// Incoming handshakes in progress now.
    pub handshakes_pending: u64,
    /// Incoming connections turned away because too many were open.
    pub connections_refused: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Connections closed by the cache: the least recently used of a full cache.
    pub evictions: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes of datagrams sent.
    pub datagram_bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes of datagrams received.
    pub datagram_bytes_in: u64,
    /// Stream messages sent.
    pub streams_out: u64,
    /// Bytes of stream messages sent.
    pub stream_bytes_out: u64,
    /// Stream messages received.
    pub streams_in: u64,
    /// Bytes of stream messages received.
    pub stream_bytes_in: u64,
    /// Datagrams not sent: larger than the path carries, or the peer takes none.
    pub datagrams_too_large: u64,
    /// Sends that failed otherwise (dial failed, connection lost).
    pub send_failures: u64,
    /// Received datagrams dropped because the driver's queue was full.
    pub incoming_dropped: u64,
    /// Received streams dropped: over the size limit, reset, or the connection was lost.
    pub streams_dropped: u64,
    /// UDP packets sent: every QUIC packet (handshakes, ACK-only packets, keep-alives).
    pub udp_packets_out: u64,
    /// UDP payload bytes sent: whole QUIC packets, what a packet capture sees.
    pub udp_bytes_out: u64,
    /// UDP packets received.
    pub udp_packets_in: u64,
    /// UDP payload bytes received.
    pub udp_bytes_in: u64,
    /// Outgoing UDP packets dropped on purpose ([`crate::transport::TransportOptions::loss`]).
    pub udp_packets_dropped: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dials: AtomicU64,
    pub(crate) handshakes_ok: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) handshakes_refused: AtomicU64,
    pub(crate) handshakes_pending: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) open_connections: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagram_bytes_out: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagram_bytes_in: AtomicU64,
    pub(crate) streams_out: AtomicU64,
    pub(crate) stream_bytes_out: AtomicU64,
    pub(crate) streams_in: AtomicU64,
    pub(crate) stream_bytes_in: AtomicU64,
    pub(crate) datagrams_too_large: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) incoming_dropped: AtomicU64,
    pub(crate) streams_dropped: AtomicU64,
}

/// Adds `n` to a counter. Relaxed: counters are independent figures, not synchronisation.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// A consistent-enough copy (each counter read once).
    pub(crate) fn snapshot(&self, wire: &WireMeter) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            dials: get(&self.dials),
            handshakes_ok: get(&self.handshakes_ok),
            handshakes_failed: get(&self.handshakes_failed),
            handshakes_refused: get(&self.handshakes_refused),
            handshakes_pending: get(&self.handshakes_pending),
            connections_refused: get(&self.connections_refused),
            open_connections: get(&self.open_connections),
            evictions: get(&self.evictions),
            datagrams_out: get(&self.datagrams_out),
            datagram_bytes_out: get(&self.datagram_bytes_out),
            datagrams_in: get(&self.datagrams_in),
            datagram_bytes_in: get(&self.datagram_bytes_in),
            streams_out: get(&self.streams_out),
            stream_bytes_out: get(&self.stream_bytes_out),
            streams_in: get(&self.streams_in),
            stream_bytes_in: get(&self.stream_bytes_in),
            datagrams_too_large: get(&self.datagrams_too_large),
            send_failures: get(&self.send_failures),
            incoming_dropped: get(&self.incoming_dropped),
            streams_dropped: get(&self.streams_dropped),
            udp_packets_out: get(&wire.packets_out),
            udp_bytes_out: get(&wire.bytes_out),
            udp_packets_in: get(&wire.packets_in),
            udp_bytes_in: get(&wire.bytes_in),
            udp_packets_dropped: get(&wire.packets_dropped),
        }
    }
}
