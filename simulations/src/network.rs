//! The modelled network: where nodes sit (region, zone), how long a packet takes between
//! two of them, which packets are lost or cut off, and what each send costs on the wire.
//!
//! Wire costs follow the real agent's transport (QUIC datagrams and streams over UDP):
//! every datagram pays a QUIC short-header packet overhead; the receiver acknowledges it,
//! either inside a reply it sends straight back (an ACK frame) or in an ACK-only packet;
//! stream messages pay per-packet overhead plus acknowledgements; a stream to an
//! unreachable peer pays a failed handshake. The constants are the transport's packet
//! layout (see `docs/performance.md`), to be re-measured against the running agent.

use std::time::Duration;

use muster::proto::Time;
use rand_pcg::Pcg64Mcg;

use crate::scenario::{Direction, LinkSpec, NetworkSpec};
use crate::sim_rng;

/// Bytes a QUIC 1-RTT packet adds around one DATAGRAM frame: 1 flags byte, an 8-byte
/// connection id, a 2-byte packet number, a 16-byte AEAD tag, frame type and length (3).
pub const DATAGRAM_OVERHEAD: u64 = 30;
/// An ACK frame riding in a packet that goes back anyway.
pub const ACK_FRAME: u64 = 5;
/// A packet carrying only an ACK frame (header, packet number, tag, frame).
pub const ACK_ONLY_PACKET: u64 = 32;
/// Stream payload bytes per packet (QUIC's 1,200-byte minimum path MTU, minus overhead).
pub const STREAM_PACKET_PAYLOAD: u64 = 1_150;
/// Per-packet overhead of a stream packet (header, tag, STREAM frame header).
pub const STREAM_PACKET_OVERHEAD: u64 = 36;
/// A handshake attempt toward an unreachable peer: the padded 1,200-byte Initial sent
/// three times (first try and two probe timeouts) before the dial gives up.
pub const FAILED_HANDSHAKE: u64 = 3 * 1_200;

/// The whole cost of one stream message of `len` bytes: (sender bytes, receiver bytes).
pub fn stream_cost(len: u64) -> (u64, u64) {
    let packets = len.div_ceil(STREAM_PACKET_PAYLOAD).max(1);
    (
        len + packets * STREAM_PACKET_OVERHEAD,
        packets.div_ceil(2) * ACK_ONLY_PACKET,
    )
}

/// A partition in force.
#[derive(Debug, Clone)]
struct Cut {
    group: u16,
    direction: Direction,
}

/// Placement of nodes, latency model, loss and partitions.
#[derive(Debug)]
pub struct Network {
    spec: NetworkSpec,
    /// Current global loss rate.
    pub loss: f64,
    /// Per region pair latency, indexed `[a * regions + b]`.
    links: Vec<LinkSpec>,
    /// Partition group of each node (0 = not cut off).
    groups: Vec<u16>,
    cuts: Vec<Cut>,
    next_group: u16,
    /// Partition groups as they were at the last heal, and when it was.
    healed: Option<(Time, Vec<u16>)>,
}

impl Network {
    /// Builds the model from its spec.
    pub fn new(spec: NetworkSpec) -> Network {
        let r = spec.regions.len();
        let mut links = Vec::with_capacity(r * r);
        for a in 0..r {
            for b in 0..r {
                let explicit = spec.links.iter().find(|l| {
                    (l.from == spec.regions[a].name && l.to == spec.regions[b].name)
                        || (l.to == spec.regions[a].name && l.from == spec.regions[b].name)
                });
                let link = match explicit {
                    Some(l) => l.link.clone(),
                    None if a == b => spec.region_latency.clone(),
                    None => {
                        let ms = (30 + 40 * a.abs_diff(b) as u64).min(150);
                        LinkSpec {
                            mean: Duration::from_millis(ms),
                            jitter: Duration::from_millis(ms) / 10,
                            loss: 0.0,
                        }
                    }
                };
                links.push(link);
            }
        }
        Network {
            loss: spec.loss,
            spec,
            links,
            groups: Vec::new(),
            cuts: Vec::new(),
            next_group: 1,
            healed: None,
        }
    }

    /// Region names.
    pub fn region_names(&self) -> impl Iterator<Item = &str> {
        self.spec.regions.iter().map(|r| r.name.as_str())
    }

    /// Index of a region by name.
    pub fn region_index(&self, name: &str) -> Option<u16> {
        self.spec
            .regions
            .iter()
            .position(|r| r.name == name)
            .map(|i| i as u16)
    }

    /// Region and zone names of a placement.
    pub fn names(&self, region: u16, zone: u16) -> (&str, &str) {
        let r = &self.spec.regions[region as usize];
        (&r.name, &r.zones[zone as usize % r.zones.len()])
    }

    /// Where node `i` of `n` sits: regions by weight (in contiguous blocks), zones
    /// round-robin inside a region.
    pub fn place(&self, i: usize, n: usize) -> (u16, u16) {
        let total: f64 = self.spec.regions.iter().map(|r| r.weight).sum();
        let frac = (i as f64 + 0.5) / n.max(1) as f64;
        let mut acc = 0.0;
        for (ri, r) in self.spec.regions.iter().enumerate() {
            acc += r.weight / total;
            if frac < acc || ri + 1 == self.spec.regions.len() {
                return (ri as u16, (i % r.zones.len()) as u16);
            }
        }
        unreachable!("the last region always matches")
    }

    /// Makes room for node `i` in the partition table.
    pub fn ensure_node(&mut self, i: usize) {
        if self.groups.len() <= i {
            self.groups.resize(i + 1, 0);
        }
    }

    /// Cuts `nodes` off from everyone else.
    pub fn partition(&mut self, nodes: &[usize], direction: Direction) {
        let g = self.next_group;
        self.next_group += 1;
        for &i in nodes {
            self.ensure_node(i);
            self.groups[i] = g;
        }
        self.cuts.push(Cut {
            group: g,
            direction,
        });
    }

    /// Removes every partition at `now`.
    pub fn heal(&mut self, now: Time) {
        if !self.cuts.is_empty() {
            self.healed = Some((now, self.groups.clone()));
        }
        self.cuts.clear();
        self.groups.iter_mut().for_each(|g| *g = 0);
    }

    /// Whether `a` and `b` were on opposite sides of a partition healed less than
    /// `grace` before `now`: news raised during the cut may still be landing.
    pub fn recently_split(&self, a: usize, b: usize, now: Time, grace: Duration) -> bool {
        self.healed.as_ref().is_some_and(|(at, groups)| {
            now.saturating_since(*at) < grace
                && groups.get(a).copied().unwrap_or(0) != groups.get(b).copied().unwrap_or(0)
        })
    }

    /// Whether a partition stops traffic from `a` to `b`.
    pub fn blocked(&self, a: usize, b: usize) -> bool {
        if self.cuts.is_empty() {
            return false;
        }
        let ga = self.groups.get(a).copied().unwrap_or(0);
        let gb = self.groups.get(b).copied().unwrap_or(0);
        if ga == gb {
            return false;
        }
        self.cuts.iter().any(|c| {
            (c.group == ga && c.direction != Direction::Inbound)
                || (c.group == gb && c.direction != Direction::Outbound)
        })
    }

    fn link(&self, ra: u16, za: u16, rb: u16, zb: u16) -> &LinkSpec {
        if ra == rb && za == zb {
            return &self.spec.zone_latency;
        }
        &self.links[ra as usize * self.spec.regions.len() + rb as usize]
    }

    /// One-way delay of a packet between two placements.
    pub fn latency(&self, rng: &mut Pcg64Mcg, a: (u16, u16), b: (u16, u16)) -> Duration {
        let l = self.link(a.0, a.1, b.0, b.1);
        let j = l.jitter.as_secs_f64() * (2.0 * sim_rng::unit(rng) - 1.0);
        Duration::from_secs_f64((l.mean.as_secs_f64() + j).max(20e-6))
    }

    /// Whether a datagram between two placements is lost.
    pub fn lost(&self, rng: &mut Pcg64Mcg, a: (u16, u16), b: (u16, u16)) -> bool {
        let p = self.loss + self.link(a.0, a.1, b.0, b.1).loss;
        p > 0.0 && sim_rng::unit(rng) < p
    }
}

/// Arrival time of a packet sent at `now` after `delay`.
pub fn arrival(now: Time, delay: Duration) -> Time {
    now + delay
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::RegionSpec;
    use muster::proto::Time;

    fn three_regions() -> Network {
        Network::new(NetworkSpec {
            regions: ["a", "b", "c"]
                .iter()
                .map(|n| RegionSpec {
                    name: (*n).into(),
                    zones: vec![format!("{n}-1"), format!("{n}-2")],
                    weight: 1.0,
                })
                .collect(),
            ..NetworkSpec::default()
        })
    }

    #[test]
    fn placement_follows_weights_and_zones() {
        let net = three_regions();
        let placed: Vec<_> = (0..6).map(|i| net.place(i, 6)).collect();
        assert_eq!(placed, vec![(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    }

    #[test]
    fn latency_grows_with_distance() {
        let net = three_regions();
        let mut rng = sim_rng::derive(1, 0);
        let zone = net.latency(&mut rng, (0, 0), (0, 0));
        let region = net.latency(&mut rng, (0, 0), (0, 1));
        let near = net.latency(&mut rng, (0, 0), (1, 0));
        let far = net.latency(&mut rng, (0, 0), (2, 0));
        assert!(
            zone < region && region < near && near < far,
            "{zone:?} {region:?} {near:?} {far:?}"
        );
    }

    #[test]
    fn partitions_cut_the_right_directions() {
        let mut net = three_regions();
        net.ensure_node(3);
        net.partition(&[0], Direction::Outbound);
        assert!(net.blocked(0, 1));
        assert!(!net.blocked(1, 0));
        net.heal(Time::ZERO);
        net.partition(&[0, 1], Direction::Both);
        assert!(net.blocked(0, 2) && net.blocked(2, 0));
        assert!(!net.blocked(0, 1));
        net.heal(Time::ZERO);
        assert!(!net.blocked(0, 2));
        assert!(net.recently_split(0, 2, Time::ZERO, Duration::from_secs(1)));
        assert!(!net.recently_split(0, 1, Time::ZERO, Duration::from_secs(1)));
    }

    #[test]
    fn stream_cost_counts_packets_and_acks() {
        assert_eq!(stream_cost(100), (100 + 36, 32));
        assert_eq!(stream_cost(3 * 1150), (3 * 1150 + 3 * 36, 2 * 32));
    }
}
