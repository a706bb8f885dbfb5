//! Counters the core keeps about its own work, for metrics and for the simulator.
//! Plain integers, updated in place; a driver copies them out with `Node::stats`.

use crate::wire::MessageKind;

const KINDS: usize = MessageKind::ALL.len();

/// Per-message-kind counts and bytes, one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCounters {
    /// Messages by kind (indexed by `MessageKind::index`).
    pub messages: [u64; KINDS],
    /// Encoded bytes by kind, headers excluded.
    pub bytes: [u64; KINDS],
}

impl KindCounters {
    /// Counts one message.
    pub fn add(&mut self, kind: MessageKind, len: usize) {
        self.messages[kind.index()] += 1;
        self.bytes[kind.index()] += len as u64;
    }

    /// Messages of one kind.
    pub fn messages_of(&self, kind: MessageKind) -> u64 {
        self.messages[kind.index()]
    }

    /// Bytes of one kind.
    pub fn bytes_of(&self, kind: MessageKind) -> u64 {
        self.bytes[kind.index()]
    }
}

/// Why the core refused something a peer sent that decoded and validated: a peer
/// asking for what it may not have, or claiming what it may not claim. Exported as
/// `muster_records_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A ping-req naming a target this node does not hold as a member: relaying it would
    /// let any peer aim this node's pings at any address.
    PingReqUnknownTarget,
    /// A ping-req while [`crate::proto::MAX_RELAYS`] relays are already in flight.
    PingReqRelaysFull,
    /// A replicated-state push of a map this node did not pull from that peer.
    UnaskedKvPush,
    /// A claim that this node's own map is at an epoch or version far beyond this
    /// run's clock (it would make the node jump to the end of the number line).
    KvEpochAhead,
    /// An alive record of a member this node does not know while its table holds
    /// [`crate::proto::SwimConfig::max_members`] already.
    MembersFull,
    /// A replicated-state write or push for another member that would take the state
    /// held for others past [`crate::proto::SwimConfig::kv_max_held_bytes`].
    StateHeldFull,
    /// A record whose signature does not verify with the key it must be signed by: the
    /// key it carries for a member not yet bound, else the key the name is bound to.
    BadSignature,
    /// A record for a live (alive or suspect) member carrying another key than the one
    /// its name is bound to: someone speaking for a member it is not.
    NameTaken,
    /// A suspect or dead notice naming a newer incarnation than the one held: only the
    /// member itself, signing, moves its incarnation up.
    AccusationAhead,
    /// In PKI mode, an alive record that a peer's certificate contradicts: its name is
    /// certified to another key, or the certificate at its address names another member
    /// (see [`crate::proto::certified`]).
    NotCertified,
}

impl Refusal {
    /// Every reason, in export order.
    pub const ALL: [Refusal; 10] = [
        Refusal::PingReqUnknownTarget,
        Refusal::PingReqRelaysFull,
        Refusal::UnaskedKvPush,
        Refusal::KvEpochAhead,
        Refusal::MembersFull,
        Refusal::StateHeldFull,
        Refusal::BadSignature,
        Refusal::NameTaken,
        Refusal::AccusationAhead,
        Refusal::NotCertified,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PingReqUnknownTarget => "ping_req_unknown_target",
            Refusal::PingReqRelaysFull => "ping_req_relays_full",
            Refusal::UnaskedKvPush => "unasked_kv_push",
            Refusal::KvEpochAhead => "kv_epoch_ahead",
            Refusal::MembersFull => "members_full",
            Refusal::StateHeldFull => "state_held_full",
            Refusal::BadSignature => "bad_signature",
            Refusal::NameTaken => "name_taken",
            Refusal::AccusationAhead => "accusation_ahead",
            Refusal::NotCertified => "not_certified",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Refusals by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalCounters([u64; Refusal::ALL.len()]);

impl RefusalCounters {
    /// Counts one refusal.
    pub fn add(&mut self, reason: Refusal) {
        self.0[reason.index()] = self.0[reason.index()].saturating_add(1);
    }

    /// Refusals for one reason.
    pub fn of(&self, reason: Refusal) -> u64 {
        self.0[reason.index()]
    }
}

/// Upper bounds of the probe round-trip histogram's buckets, in microseconds: loopback
/// and LAN at the low end, a stretched timeout of a slow peer at the high end.
pub const RTT_BUCKETS_MICROS: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
];

/// Direct-probe round-trip times, bucketed (cumulative buckets are derived when exported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RttHistogram {
    /// Samples per bucket: `counts[i]` are at most `RTT_BUCKETS_MICROS[i]` and above the
    /// previous bound; the last entry counts samples above every bound.
    pub counts: [u64; RTT_BUCKETS_MICROS.len() + 1],
    /// Sum of all samples, microseconds.
    pub sum_micros: u64,
    /// Number of samples.
    pub count: u64,
}

impl RttHistogram {
    /// Records one sample.
    pub fn record(&mut self, rtt: std::time::Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let bucket = RTT_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(RTT_BUCKETS_MICROS.len());
        self.counts[bucket] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.count += 1;
    }
}

/// Everything the core counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Probes started (direct pings of the probe round).
    pub probes: u64,
    /// Probes that ended with no ack, direct or indirect.
    pub probes_failed: u64,
    /// Ping-reqs sent to intermediaries.
    pub indirect_probes: u64,
    /// Pings sent on behalf of another member's ping-req.
    pub relayed_probes: u64,
    /// Nacks sent as an intermediary.
    pub nacks_sent: u64,
    /// Nacks received for our own probes.
    pub nacks_received: u64,
    /// Suspicions this node raised from its own failed probes.
    pub suspicions_raised: u64,
    /// Suspicions this node confirmed with a failed confirmation check.
    pub suspicions_confirmed: u64,
    /// Members this node held suspect that were accepted alive again (a suspicion
    /// refuted by its member, as seen here; the ones this node raised included).
    pub suspicions_cleared: u64,
    /// Confirmation checks started on hearing a suspicion.
    pub confirmation_checks: u64,
    /// Times this node refuted a suspicion or death notice about itself.
    pub refutations: u64,
    /// Members this node declared dead when their suspicion ran out.
    pub deaths_declared: u64,
    /// Failed members contacted again to heal partitions.
    pub reconnect_attempts: u64,
    /// Pings to failed members that a merged table showed alive (partition healing).
    pub revival_pings: u64,
    /// Replicated-state pulls sent (after a push-pull or update showed a peer ahead).
    pub kv_pulls: u64,
    /// Times this node moved its own map to a new epoch after seeing a newer one of itself.
    pub kv_epoch_bumps: u64,
    /// Pull attempts because gossip left a gap in a map's versions for a second (a pull
    /// already in flight for the map is not sent twice).
    pub kv_gap_pulls: u64,
    /// Push-pull offers answered with "in sync" (nothing sent back).
    pub push_pull_in_sync: u64,
    /// Extra gossip rounds sent right after fresh membership news (§9).
    pub eager_gossip_rounds: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagram bytes received, headers included.
    pub datagram_bytes_in: u64,
    /// Datagram bytes sent, headers included.
    pub datagram_bytes_out: u64,
    /// Stream messages received.
    pub streams_in: u64,
    /// Stream messages sent.
    pub streams_out: u64,
    /// Stream bytes received, headers included.
    pub stream_bytes_in: u64,
    /// Stream bytes sent, headers included.
    pub stream_bytes_out: u64,
    /// Messages received, by kind.
    pub received: KindCounters,
    /// Messages sent, by kind.
    pub sent: KindCounters,
    /// Input dropped because it did not decode (truncated, garbage, invalid).
    pub malformed_dropped: u64,
    /// Input dropped because it belongs to another cluster or protocol version.
    pub foreign_dropped: u64,
    /// Pings addressed to another node name (a reused address).
    pub misdirected_pings: u64,
    /// What peers sent that the core refused to act on, by reason.
    pub refused: RefusalCounters,
    /// Round-trip times of direct probes answered by datagram.
    pub probe_rtt: RttHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rtt_samples_land_in_the_first_bucket_that_holds_them() {
        let mut h = RttHistogram::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_micros(250));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(5));
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[4], 1);
        assert_eq!(h.counts[RTT_BUCKETS_MICROS.len()], 1);
        assert_eq!((h.count, h.sum_micros), (4, 5_003_350));
    }
}
