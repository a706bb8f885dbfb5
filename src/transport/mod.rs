//! The QUIC transport: one endpoint per agent that both accepts and dials, mutual TLS
//! identities, and a bounded connection cache.
//!
//! Probes and gossip travel as QUIC datagrams; join and push-pull messages travel as one
//! unidirectional stream each (the whole message, then finish: its length is where the
//! stream ends). Everything received from any connection goes into one channel of
//! [`Incoming`] messages for the agent's driver.
//!
//! | file | holds |
//! |---|---|
//! | `identity` | [`ClusterKey`], the derived cluster CA, node certificates, PKI files |
//! | `peer_cert` | a peer certificate's node names and key, for the core's name binding in PKI mode |
//! | `pki` | a CA and node certificates for `tls_ca`/`tls_cert`/`tls_key` (`muster tls`) |
//! | `tls` | rustls and quinn configs: TLS 1.3, mutual auth, ALPN bound to the cluster name |
//! | `endpoint` | [`Transport`]: the endpoint, dialing, sending, the per-connection readers |
//! | `conn_cache` | the bounded, least-recently-used cache of connections by peer address |
//! | `stats` | [`TransportStats`]: handshakes, connections, traffic, drops |
//!
//! # The `from` address
//!
//! The core identifies peers by the socket address in its member table: the address each
//! agent listens on. Each agent uses its single endpoint (one UDP socket) for accepting
//! *and* dialing, so the source address of a connection a peer dialed is that peer's
//! listening socket, and [`Incoming::from`] is exactly the address the core knows. For
//! connections this agent dialed, `from` is the address it dialed. This holds when a
//! peer's packets leave from the address it advertises (the same host address, no NAT
//! between members); connection migration is disabled so the address cannot change
//! under a live connection. `tests/mesh_loopback.rs` checks it on loopback.

mod conn_cache;
mod endpoint;
pub mod identity;
pub mod peer_cert;
pub mod pki;
mod socket;
mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

pub use endpoint::{Transport, TransportOptions};
pub use identity::{CLUSTER_SERVER_NAME, ClusterCa, ClusterKey, Identity, IdentityError};
pub use stats::TransportStats;

use crate::proto::Channel;

/// A whole message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The peer's listening address (see the module docs).
    pub from: SocketAddr,
    /// What the peer's certificate says (names, key), when
    /// [`TransportOptions::certified_names`] asks for it.
    pub peer: Option<Arc<crate::proto::PeerCertificate>>,
    /// The datagram, or the whole stream message.
    pub bytes: Bytes,
    /// Which channel it came on.
    pub channel: Channel,
    /// Its share of the incoming queue's byte budget, given back when it is dropped.
    charge: QueueCharge,
}

/// Bytes a message holds of the incoming queue's budget
/// ([`TransportOptions::incoming_bytes`]), given back when the message is dropped (a
/// clone takes its own share). Equal to any other: it is bookkeeping, not content.
#[derive(Debug)]
struct QueueCharge {
    queued: Arc<AtomicUsize>,
    len: usize,
}

impl QueueCharge {
    /// Takes `len` bytes of `budget` from `queued`, or `None` if they are not there.
    fn take(queued: &Arc<AtomicUsize>, len: usize, budget: usize) -> Option<QueueCharge> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(len).filter(|after| *after <= budget)
            })
            .ok()?;
        Some(QueueCharge {
            queued: queued.clone(),
            len,
        })
    }
}

impl Clone for QueueCharge {
    fn clone(&self) -> QueueCharge {
        self.queued.fetch_add(self.len, Ordering::AcqRel);
        QueueCharge {
            queued: self.queued.clone(),
            len: self.len,
        }
    }
}

impl Drop for QueueCharge {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.len, Ordering::AcqRel);
    }
}

impl PartialEq for QueueCharge {
    fn eq(&self, _: &QueueCharge) -> bool {
        true
    }
}

impl Eq for QueueCharge {}

/// Why the transport could not be set up or could not send.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cluster name does not fit the ALPN protocol id.
    #[error("cluster name is {len} bytes; at most {max} fit the TLS handshake")]
    ClusterNameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// rustls refused the configuration (a bad certificate or key, usually).
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The CA certificates cannot be used to verify peers.
    #[error("tls client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The crypto provider lacks the cipher suite QUIC starts with.
    #[error("quic crypto: {0}")]
    QuicCrypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A connection to the peer could not be established.
    #[error("dial {to}: {source}")]
    Dial {
        /// The peer.
        to: SocketAddr,
        /// What went wrong.
        source: DialError,
    },
    /// The peer's connection does not carry datagrams at all.
    #[error("peer {to} does not accept datagrams")]
    DatagramsUnsupported {
        /// The peer.
        to: SocketAddr,
    },
    /// The datagram is larger than the connection can carry now.
    #[error("datagram of {len} bytes to {to} exceeds the path's {max}")]
    DatagramTooLarge {
        /// The peer.
        to: SocketAddr,
        /// The datagram's size.
        len: usize,
        /// What the path carries.
        max: usize,
    },
    /// Sending a datagram failed (the connection was lost, usually).
    #[error("datagram to {to}: {source}")]
    SendDatagram {
        /// The peer.
        to: SocketAddr,
        /// The error.
        source: quinn::SendDatagramError,
    },
    /// Opening a stream failed.
    #[error("stream to {to}: {source}")]
    OpenStream {
        /// The peer.
        to: SocketAddr,
        /// The error.
        source: quinn::ConnectionError,
    },
    /// Writing a stream failed.
    #[error("stream to {to}: {source}")]
    WriteStream {
        /// The peer.
        to: SocketAddr,
        /// The error.
        source: quinn::WriteError,
    },
    /// A stream message is larger than a receiver accepts.
    #[error("stream message of {len} bytes to {to} exceeds the limit of {max}")]
    StreamTooLarge {
        /// The peer.
        to: SocketAddr,
        /// The message's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stream message could not be handed to QUIC in time (the peer grants no credit).
    #[error("stream message to {to} not sent within the time limit")]
    StreamTimeout {
        /// The peer.
        to: SocketAddr,
    },
}

/// Why a dial failed. Cloneable, because every sender waiting on the same dial gets it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    /// The dial could not start (a bad address, or the endpoint is closed).
    #[error("{0}")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake failed: refused certificate or ALPN, or the connection was lost.
    #[error("handshake: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    /// No answer within the dial timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

#[cfg(test)]
mod queue_charge_tests {
    use super::*;

    #[test]
    fn the_incoming_byte_budget_is_taken_refused_and_given_back() {
        let queued = Arc::new(AtomicUsize::new(0));
        let a = QueueCharge::take(&queued, 600, 1000).expect("within the budget");
        assert!(
            QueueCharge::take(&queued, 500, 1000).is_none(),
            "past the budget"
        );
        let b = QueueCharge::take(&queued, 400, 1000).expect("exactly the budget");
        assert_eq!(queued.load(Ordering::Acquire), 1000);
        drop(a);
        assert_eq!(queued.load(Ordering::Acquire), 400);
        let c = b.clone();
        assert_eq!(
            queued.load(Ordering::Acquire),
            800,
            "a clone takes its own share"
        );
        drop((b, c));
        assert_eq!(queued.load(Ordering::Acquire), 0);
        let all = QueueCharge::take(&queued, usize::MAX, usize::MAX).expect("the whole range");
        assert!(
            QueueCharge::take(&queued, 1, usize::MAX).is_none(),
            "no overflow past usize::MAX"
        );
        drop(all);
        assert_eq!(queued.load(Ordering::Acquire), 0);
    }
}
