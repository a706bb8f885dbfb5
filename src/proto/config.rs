//! Protocol timing and sizing: [`SwimConfig`] with `lan`, `wan` and `local` presets.
//!
//! Every default carries the reason for its number. Deployment settings (addresses,
//! names, TLS) belong to the agent, not here. `validate()` names the offending field.

use std::time::Duration;

use crate::wire::{DATAGRAM_HEADER_LEN, MAX_DATAGRAM_LEN};

/// A probe's outcome is due this many probe timeouts after its ping: one for the direct
/// ack, one more for the indirect path (intermediaries nack at 80% of their own timeout).
/// When the indirect phase starts the deadline moves out, if need be, to one timeout
/// plus the slowest asked helper's round trip.
pub const PROBE_DEADLINE_TIMEOUTS: u32 = 2;

/// A configuration value that cannot work, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The field's name as written in config files.
    pub field: &'static str,
    /// Why the value was refused.
    pub reason: String,
}

/// Timing and sizing of the SWIM/Lifeguard protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct SwimConfig {
    /// Time between probes of successive members, before awareness stretching.
    pub probe_interval: Duration,
    /// Wait for a direct ack before asking intermediaries. The actual timeout toward a
    /// peer is never below this and grows with the peer's measured round-trip time.
    pub probe_timeout: Duration,
    /// Intermediaries asked to probe a target that missed its direct ack (SWIM's k).
    pub indirect_checks: u32,
    /// The probe timeout toward a peer is at least this many times its smoothed RTT, so a
    /// member in a far region is not suspected for being far.
    pub rtt_timeout_mult: u32,
    /// Minimum suspicion timeout is `suspicion_mult × max(1, log10 N) × probe_interval`.
    pub suspicion_mult: f64,
    /// Maximum suspicion timeout, as a multiple of the minimum.
    pub suspicion_max_mult: f64,
    /// Independent confirmations that shrink a suspicion from its maximum to its minimum.
    pub expected_confirmations: u32,
    /// Expected number of members that, on first hearing a suspicion, probe the suspect
    /// themselves right away. Their failed probes are the confirmations Lifeguard needs,
    /// so a real failure reaches the minimum timeout quickly; their successful probes
    /// carry the suspicion to the suspect (buddy system) so a false one is refuted at
    /// once. `0` turns it off.
    pub confirm_probes: f64,
    /// Bound of the local health score (Lifeguard), which multiplies probe interval and
    /// timeout by up to this much.
    pub awareness_max: u32,
    /// Time between gossip rounds (only sent when updates are queued).
    pub gossip_interval: Duration,
    /// Members sent a gossip datagram per round.
    pub gossip_fanout: u32,
    /// Each update is sent `retransmit_mult × ceil(log10(N + 1))` times.
    pub retransmit_mult: u32,
    /// Base interval of full-state anti-entropy with one random member; scaled up with
    /// cluster size as memberlist does.
    pub push_pull_interval: Duration,
    /// Failed members (still in their tombstone window) are contacted again so a healed
    /// partition merges without an operator: the cluster as a whole makes about 8
    /// attempts per this interval (each node one per `interval × N / 8`).
    pub reconnect_interval: Duration,
    /// How long a failed member is remembered (and re-contacted) before it is reaped.
    pub dead_retention: Duration,
    /// How long a member that left is remembered before it is reaped.
    pub left_retention: Duration,
    /// How long a join waits for any seed to answer before reporting failure.
    pub join_timeout: Duration,
    /// Upper bound on how long a graceful leave keeps gossiping its departure.
    pub leave_timeout: Duration,
    /// Largest datagram the node builds, header included.
    pub datagram_budget: usize,
    /// Updates kept queued for gossip; past this the most-sent are dropped first
    /// (push-pull repairs anything lost).
    pub max_queued_updates: usize,
    /// Largest replicated key-value map this node may publish (keys plus values).
    pub kv_max_bytes: usize,
    /// Most bytes of replicated state (live keys and values) held for other members, all
    /// maps together; a write or push that would pass it is refused and counted. A
    /// bound on what peers can make this node store.
    pub kv_max_held_bytes: usize,
    /// Most members the table holds, this node and departed members included; an alive
    /// record of an unknown member past it is refused and counted. A bound on what
    /// peers can make this node remember, not a cluster size to plan for.
    pub max_members: usize,
}

/// [`SwimConfig::max_members`] unless configured.
pub const DEFAULT_MAX_MEMBERS: usize = 100_000;

impl Default for SwimConfig {
    fn default() -> Self {
        Self::lan()
    }
}

impl SwimConfig {
    /// A data-centre LAN: sub-millisecond RTT, occasional loss and slow hosts.
    pub fn lan() -> Self {
        SwimConfig {
            // One probe per second per node: the same probe bandwidth as memberlist.
            probe_interval: Duration::from_secs(1),
            // LAN RTTs are < 1 ms; 200 ms leaves room for a GC pause or a loaded host.
            // A consistently slow peer gets a longer timeout from its measured RTTs, and
            // awareness stretches it on a struggling prober.
            probe_timeout: Duration::from_millis(200),
            // SWIM's k = 3, as memberlist: three independent paths make a lossy link
            // almost never look like a failure.
            indirect_checks: 3,
            // Three RTTs: an ack beyond that is lost, not late.
            rtt_timeout_mult: 3,
            // memberlist uses 4. The minimum only has to cover a refutation spreading:
            // the suspect hears of its suspicion at once (buddy pings, confirmation
            // checks), and its alive takes ~log3(N) gossip rounds to reach everyone.
            // Swept in the simulator (docs/performance.md): 1.0 let a 1 s slow node be
            // declared failed at 32 nodes; 1.25 never did, at 32 to 1,000 nodes, and
            // gives 3.75 s at N = 1,000 instead of memberlist's 12 s. An unconfirmed
            // suspicion still waits 6× longer.
            suspicion_mult: 1.25,
            // Lifeguard's default: an unconfirmed suspicion waits six times the minimum.
            suspicion_max_mult: 6.0,
            // Lifeguard/memberlist: two independent confirmations reach the minimum.
            expected_confirmations: 2,
            // Two extra probers per suspicion (≈ 2 ping/ack pairs cluster-wide): enough to
            // bring the two confirmations, negligible bandwidth at any N.
            confirm_probes: 2.0,
            // Lifeguard/memberlist: up to 8× slower probing on an unhealthy node.
            awareness_max: 8,
            // memberlist: 200 ms gossip to 3 members spreads an update to 1,000 nodes in
            // about a second.
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            // memberlist's 4 × log10(N+1) transmissions reach every node w.h.p.
            retransmit_mult: 4,
            // memberlist's 30 s, but an in-sync exchange is one digest, not two tables.
            push_pull_interval: Duration::from_secs(30),
            // About 8 attempts cluster-wide every 10 s: a healed partition is found within
            // a couple of seconds, and a dead host costs the cluster < 1 dial per second.
            reconnect_interval: Duration::from_secs(10),
            // Serf-like: failed members are re-contacted for 30 minutes, then forgotten.
            dead_retention: Duration::from_secs(30 * 60),
            // A departed member's name can come back after 5 minutes.
            left_retention: Duration::from_secs(5 * 60),
            // A seed that has not answered in 5 s is down or unreachable.
            join_timeout: Duration::from_secs(5),
            // Enough gossip rounds for the leave to reach every node several times.
            leave_timeout: Duration::from_secs(3),
            // Fits one QUIC datagram on any path with a 1,280-byte MTU.
            datagram_budget: 1150,
            // 4,096 updates ≈ 300 KiB per node: a join storm of thousands still spreads,
            // and push-pull repairs the rest.
            max_queued_updates: 4096,
            // Room for a few dozen service records and small app data; every member holds
            // every member's map, so 64 KiB × 1,000 members is 64 MB per node at most.
            kv_max_bytes: 64 * 1024,
            // Ten times the largest cluster the simulator runs; a member costs a few
            // hundred bytes here, so the table stays in the tens of MB.
            max_members: DEFAULT_MAX_MEMBERS,
            // 256 MiB: 4,000 members with full 64 KiB maps; services and tags take a
            // few hundred bytes per member, so real clusters stay far below.
            kv_max_held_bytes: 256 * 1024 * 1024,
        }
    }

    /// A wide-area network: tens to hundreds of milliseconds between members.
    pub fn wan() -> Self {
        SwimConfig {
            // memberlist WAN: slower probing over expensive, lossy links.
            probe_interval: Duration::from_secs(3),
            // Far above cross-continent RTTs.
            probe_timeout: Duration::from_secs(1),
            suspicion_mult: 3.0,
            gossip_interval: Duration::from_millis(500),
            gossip_fanout: 4,
            push_pull_interval: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(30),
            leave_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            ..Self::lan()
        }
    }

    /// Loopback or one host: everything fast, for development and tests.
    pub fn local() -> Self {
        SwimConfig {
            // Loopback RTTs are microseconds; probe faster for quicker feedback.
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(100),
            gossip_interval: Duration::from_millis(100),
            push_pull_interval: Duration::from_secs(15),
            reconnect_interval: Duration::from_secs(5),
            leave_timeout: Duration::from_secs(1),
            join_timeout: Duration::from_secs(2),
            ..Self::lan()
        }
    }

    /// A preset by name: `lan`, `wan` or `local`.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        match name {
            "lan" => Ok(Self::lan()),
            "wan" => Ok(Self::wan()),
            "local" => Ok(Self::local()),
            other => Err(ConfigError {
                field: "profile",
                reason: format!("unknown profile {other:?}; expected lan, wan or local"),
            }),
        }
    }

    /// Checks every field, naming the first that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn err(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                field,
                reason: reason.into(),
            })
        }
        let ms = Duration::from_millis;
        if self.probe_interval < ms(10) {
            return err("probe_interval", "must be at least 10ms");
        }
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return err(
                "probe_timeout",
                "must be above zero and below probe_interval",
            );
        }
        if self.indirect_checks > 16 {
            return err("indirect_checks", "must be at most 16");
        }
        if self.rtt_timeout_mult == 0 {
            return err("rtt_timeout_mult", "must be at least 1");
        }
        if !(self.suspicion_mult.is_finite() && self.suspicion_mult >= 0.5) {
            return err("suspicion_mult", "must be a number of at least 0.5");
        }
        if !(self.suspicion_max_mult.is_finite() && self.suspicion_max_mult >= 1.0) {
            return err("suspicion_max_mult", "must be a number of at least 1");
        }
        if self.expected_confirmations > 16 {
            return err("expected_confirmations", "must be at most 16");
        }
        if !(self.confirm_probes.is_finite() && (0.0..=16.0).contains(&self.confirm_probes)) {
            return err("confirm_probes", "must be between 0 and 16");
        }
        if self.awareness_max == 0 || self.awareness_max > 64 {
            return err("awareness_max", "must be between 1 and 64");
        }
        if self.gossip_interval < ms(5) {
            return err("gossip_interval", "must be at least 5ms");
        }
        if self.gossip_fanout == 0 || self.gossip_fanout > 32 {
            return err("gossip_fanout", "must be between 1 and 32");
        }
        if self.retransmit_mult == 0 {
            return err("retransmit_mult", "must be at least 1");
        }
        if self.push_pull_interval < ms(100) {
            return err("push_pull_interval", "must be at least 100ms");
        }
        if self.reconnect_interval < ms(100) {
            return err("reconnect_interval", "must be at least 100ms");
        }
        if self.dead_retention < self.probe_interval {
            return err("dead_retention", "must be at least one probe_interval");
        }
        if self.left_retention < self.probe_interval {
            return err("left_retention", "must be at least one probe_interval");
        }
        if self.join_timeout.is_zero() {
            return err("join_timeout", "must be above zero");
        }
        if self.leave_timeout.is_zero() {
            return err("leave_timeout", "must be above zero");
        }
        if self.kv_max_bytes > crate::wire::MAX_KV_MAP_LEN {
            return err("kv_max_bytes", "must be at most 1 MiB (1048576)");
        }
        if self.datagram_budget < 512 || self.datagram_budget > MAX_DATAGRAM_LEN {
            return err(
                "datagram_budget",
                format!(
                    "must be between 512 and {MAX_DATAGRAM_LEN} bytes (header is {DATAGRAM_HEADER_LEN})"
                ),
            );
        }
        if self.max_queued_updates < 16 {
            return err("max_queued_updates", "must be at least 16");
        }
        if self.kv_max_held_bytes < crate::wire::MAX_KV_MAP_LEN {
            return err(
                "kv_max_held_bytes",
                format!(
                    "must be at least {} (one member's largest map)",
                    crate::wire::MAX_KV_MAP_LEN
                ),
            );
        }
        if self.max_members < 2 {
            return err(
                "max_members",
                "must be at least 2 (this node and one other)",
            );
        }
        Ok(())
    }

    /// Minimum suspicion timeout for a cluster of `n` live members.
    pub fn suspicion_min(&self, n: usize) -> Duration {
        crate::proto::suspicion::min_timeout(self.suspicion_mult, n, self.probe_interval)
    }

    /// Maximum suspicion timeout for a cluster of `n` live members.
    pub fn suspicion_max(&self, n: usize) -> Duration {
        self.suspicion_min(n).mul_f64(self.suspicion_max_mult)
    }

    /// How many times each update is sent in a cluster of `n` members:
    /// `retransmit_mult × ceil(log10(n + 1))`.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
        self.retransmit_mult * scale
    }

    /// Push-pull interval for `n` members: memberlist's scaling, one more multiple of the
    /// base for every doubling past 32 members, so the total push-pull load stays flat.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        const THRESHOLD: usize = 32;
        if n <= THRESHOLD {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() + 1.0;
        self.push_pull_interval.mul_f64(mult)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for c in [SwimConfig::lan(), SwimConfig::wan(), SwimConfig::local()] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let c = SwimConfig {
            probe_timeout: Duration::from_secs(2),
            ..SwimConfig::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "probe_timeout");
        let c = SwimConfig {
            gossip_fanout: 0,
            ..SwimConfig::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "gossip_fanout");
        let c = SwimConfig {
            suspicion_mult: f64::NAN,
            ..SwimConfig::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "suspicion_mult");
        assert_eq!(SwimConfig::preset("moon").unwrap_err().field, "profile");
    }

    #[test]
    fn retransmit_limit_table() {
        let c = SwimConfig::lan();
        for (n, want) in [
            (0, 4),
            (1, 4),
            (9, 4),
            (10, 8),
            (32, 8),
            (99, 8),
            (100, 12),
            (1000, 16),
            (10_000, 20),
        ] {
            assert_eq!(c.retransmit_limit(n), want, "n = {n}");
        }
    }

    #[test]
    fn push_pull_interval_scales_like_memberlist() {
        let c = SwimConfig::lan();
        let s = |n| c.push_pull_interval_for(n).as_secs();
        assert_eq!(s(16), 30);
        assert_eq!(s(32), 30);
        assert_eq!(s(64), 60);
        assert_eq!(s(65), 90);
        assert_eq!(s(1000), 180);
        assert_eq!(s(10_000), 300);
    }
}
