//! The UDP socket under the QUIC endpoint, metered and optionally lossy.
//!
//! [`MeteredSocket`] wraps quinn's tokio socket and counts every UDP datagram that goes
//! out or comes in, whole QUIC packets included (headers, AEAD tags, ACK-only packets,
//! keep-alives, handshakes): the bytes a packet capture would see, which is how
//! membership systems' bandwidth is compared. For tests and benchmarks it can also drop
//! a share of outgoing packets at random, as a lossy network would (`tc netem` is not
//! available everywhere). GSO batching is turned off (one packet per send) so that
//! counts and losses are per packet.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Loss rates are held as parts per billion, so they fit an atomic integer.
const PPB: f64 = 1e9;

/// Live counters and the loss setting of one socket, shared with the transport.
#[derive(Debug, Default)]
pub(crate) struct WireMeter {
    pub(crate) packets_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) packets_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) packets_dropped: AtomicU64,
    loss_ppb: AtomicU64,
    /// xorshift64* state for loss draws; never 0.
    rng: AtomicU64,
}

impl WireMeter {
    pub(crate) fn new(loss: f64, seed: u64) -> Self {
        let meter = WireMeter {
            rng: AtomicU64::new(seed | 1),
            ..WireMeter::default()
        };
        meter.set_loss(loss);
        meter
    }

    /// Sets the share of outgoing packets to drop, clamped to `0.0..=1.0`.
    pub(crate) fn set_loss(&self, loss: f64) {
        let ppb = (loss.clamp(0.0, 1.0) * PPB) as u64;
        self.loss_ppb.store(ppb, Ordering::Relaxed);
    }

    /// Whether the next outgoing packet is lost.
    fn drop_next(&self) -> bool {
        let ppb = self.loss_ppb.load(Ordering::Relaxed);
        if ppb == 0 {
            return false;
        }
        // A race between two senders may reuse a state; for a loss draw that is harmless.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        let draw = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (draw as f64 / (1u64 << 53) as f64) * PPB < ppb as f64
    }
}

/// quinn's UDP socket, metered, with injected outgoing loss.
pub(crate) struct MeteredSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    meter: Arc<WireMeter>,
}

impl MeteredSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, meter: Arc<WireMeter>) -> Self {
        MeteredSocket { inner, meter }
    }
}

impl fmt::Debug for MeteredSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for MeteredSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.meter.drop_next() {
            // Lost on the wire: the sender believes it went out.
            self.meter.packets_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // Sent without ECN marks: a peer that sees none reports no ECN counts, so its
        // ACK frames are 3 bytes shorter, on nearly every packet of a probe exchange.
        // Membership traffic is a few packets a second; congestion signals buy it nothing.
        let unmarked = Transmit {
            destination: transmit.destination,
            ecn: None,
            contents: transmit.contents,
            segment_size: transmit.segment_size,
            src_ip: transmit.src_ip,
        };
        self.inner.try_send(&unmarked)?;
        let len = transmit.contents.len() as u64;
        let packets = transmit
            .segment_size
            .map_or(1, |s| len.div_ceil(s.max(1) as u64));
        self.meter.packets_out.fetch_add(packets, Ordering::Relaxed);
        self.meter.bytes_out.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &result {
            for m in &meta[..*n] {
                let packets = (m.len as u64).div_ceil(m.stride.max(1) as u64);
                self.meter.packets_in.fetch_add(packets, Ordering::Relaxed);
                self.meter
                    .bytes_in
                    .fetch_add(m.len as u64, Ordering::Relaxed);
            }
        }
        result
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        // One packet per send: counts and injected losses are per packet.
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_draws_match_the_rate() {
        let meter = WireMeter::new(0.1, 42);
        let dropped = (0..100_000).filter(|_| meter.drop_next()).count();
        assert!(
            (9_000..11_000).contains(&dropped),
            "{dropped} of 100,000 dropped at 10%"
        );
        meter.set_loss(0.0);
        assert!(!(0..1000).any(|_| meter.drop_next()));
        meter.set_loss(1.0);
        assert!((0..1000).all(|_| meter.drop_next()));
    }
}
