//! `GET /metrics`: the agent's counters in the Prometheus text exposition format
//! (written with [`crate::metrics`]): every value is a copy taken at scrape time from
//! the core's [`Stats`], the transport's [`TransportStats`], the membership snapshot, the
//! event journal and any extra [`MetricsSource`] (the hooks), so there is no registry to
//! keep in step with them.
//!
//! Names follow Prometheus conventions: `muster_` prefix, base units (seconds, bytes),
//! `_total` on counters, labels for dimensions (`status`, `region`, `direction`, `type`).

use std::collections::BTreeMap;

use crate::events::Status;
use crate::metrics::{Exposition, Kind, MetricsSource};
use crate::proto::{KindCounters, MemberInfo, RTT_BUCKETS_MICROS, Refusal, Stats};
use crate::transport::TransportStats;
use crate::wire::MessageKind;

/// Everything a scrape reads, copied out before writing.
#[derive(Debug)]
pub struct Scrape<'a> {
    /// This agent's name.
    pub name: &'a str,
    /// The membership snapshot.
    pub members: &'a [MemberInfo],
    /// The health score.
    pub health_score: u32,
    /// The core's counters (`None` once the mesh has stopped).
    pub node: Option<&'a Stats>,
    /// The transport's counters.
    pub transport: &'a TransportStats,
    /// Events recorded by the journal, by kind name.
    pub events: &'a BTreeMap<&'static str, u64>,
}

/// Writes the whole exposition.
pub fn render(scrape: &Scrape<'_>, extra: &[std::sync::Arc<dyn MetricsSource>]) -> String {
    let mut out = Exposition::default();
    out.family(
        "muster_info",
        Kind::Gauge,
        "This agent: always 1, labelled with its name and version.",
    );
    out.sample(
        "muster_info",
        &[
            ("name", scrape.name),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    write_members(&mut out, scrape.members);
    out.single(
        "muster_health_score",
        Kind::Gauge,
        "Lifeguard local health score: 0 is healthy; higher stretches this agent's probing.",
        f64::from(scrape.health_score),
    );
    if let Some(stats) = scrape.node {
        write_node(&mut out, stats);
    }
    write_transport(&mut out, scrape.transport);
    out.family(
        "muster_events_total",
        Kind::Counter,
        "Membership events this agent recorded, by event.",
    );
    for (kind, n) in scrape.events {
        out.sample("muster_events_total", &[("event", kind)], *n as f64);
    }
    out.single(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of the agent process.",
        crate::process_stats::rss_bytes() as f64,
    );
    out.single(
        "process_cpu_seconds_total",
        Kind::Counter,
        "CPU time used by the agent process, user and system.",
        crate::process_stats::cpu_seconds(),
    );
    for source in extra {
        source.write_metrics(&mut out);
    }
    out.finish()
}

fn write_members(out: &mut Exposition, members: &[MemberInfo]) {
    let mut counts: BTreeMap<(String, Status), u64> = BTreeMap::new();
    let mut regions = std::collections::BTreeSet::new();
    for m in members {
        regions.insert(m.region.to_string());
        *counts
            .entry((m.region.to_string(), Status::of(m.state)))
            .or_default() += 1;
    }
    out.family(
        "muster_members",
        Kind::Gauge,
        "Members this agent knows, by status and region (failed and left until reaped).",
    );
    // Every status of every known region, zero or not, so a series never vanishes.
    for region in &regions {
        for status in Status::ALL {
            let n = counts.get(&(region.clone(), status)).copied().unwrap_or(0);
            out.sample(
                "muster_members",
                &[("status", status.as_str()), ("region", region)],
                n as f64,
            );
        }
    }
}

/// A per-message-kind family: name, help, and the counter it reads.
type PerKind = (
    &'static str,
    &'static str,
    fn(&KindCounters, MessageKind) -> u64,
);

fn write_node(out: &mut Exposition, s: &Stats) {
    let counters: [(&str, &str, u64); 18] = [
        ("muster_probes_total", "Direct probes started.", s.probes),
        (
            "muster_probes_failed_total",
            "Probes that got no ack, direct or indirect.",
            s.probes_failed,
        ),
        (
            "muster_indirect_probes_total",
            "Ping-reqs sent to intermediaries.",
            s.indirect_probes,
        ),
        (
            "muster_relayed_probes_total",
            "Pings sent for another member's ping-req.",
            s.relayed_probes,
        ),
        (
            "muster_nacks_sent_total",
            "Nacks sent as an intermediary.",
            s.nacks_sent,
        ),
        (
            "muster_nacks_received_total",
            "Nacks received for this agent's probes.",
            s.nacks_received,
        ),
        (
            "muster_suspicions_raised_total",
            "Suspicions raised from this agent's failed probes.",
            s.suspicions_raised,
        ),
        (
            "muster_suspicions_confirmed_total",
            "Suspicions confirmed by a failed confirmation check.",
            s.suspicions_confirmed,
        ),
        (
            "muster_suspicions_refuted_total",
            "Suspicions and death notices about this agent that it refuted.",
            s.refutations,
        ),
        (
            "muster_suspicions_cleared_total",
            "Members this agent held suspect that refuted it (accepted alive again).",
            s.suspicions_cleared,
        ),
        (
            "muster_deaths_declared_total",
            "Members this agent declared failed when their suspicion ran out.",
            s.deaths_declared,
        ),
        (
            "muster_reconnect_attempts_total",
            "Failed members contacted again to heal partitions.",
            s.reconnect_attempts,
        ),
        (
            "muster_push_pull_in_sync_total",
            "Push-pull offers answered as already in sync.",
            s.push_pull_in_sync,
        ),
        (
            "muster_misdirected_pings_total",
            "Pings addressed to another node name (a reused address).",
            s.misdirected_pings,
        ),
        (
            "muster_confirmation_checks_total",
            "Confirmation checks started on hearing a suspicion.",
            s.confirmation_checks,
        ),
        (
            "muster_state_pulls_total",
            "Replicated-state pulls sent after a peer or an update showed this agent behind.",
            s.kv_pulls,
        ),
        (
            "muster_state_gap_pulls_total",
            "Replicated-state pull attempts because gossip left a version missing for a second.",
            s.kv_gap_pulls,
        ),
        (
            "muster_state_epoch_bumps_total",
            "Times this agent moved its own replicated state above a newer copy of it seen out there.",
            s.kv_epoch_bumps,
        ),
    ];
    for (name, help, value) in counters {
        out.single(name, Kind::Counter, help, value as f64);
    }
    let per_kind: [PerKind; 2] = [
        (
            "muster_messages_total",
            "Protocol messages by direction and type.",
            KindCounters::messages_of,
        ),
        (
            "muster_message_bytes_total",
            "Encoded protocol message bytes (headers excluded) by direction and type.",
            KindCounters::bytes_of,
        ),
    ];
    for (name, help, count) in per_kind {
        out.family(name, Kind::Counter, help);
        for (direction, kinds) in [("in", &s.received), ("out", &s.sent)] {
            for kind in MessageKind::ALL {
                out.sample(
                    name,
                    &[("direction", direction), ("type", kind.as_str())],
                    count(kinds, kind) as f64,
                );
            }
        }
    }
    out.family(
        "muster_dropped_input_total",
        Kind::Counter,
        "Input the protocol dropped, by reason.",
    );
    for (reason, n) in [
        ("malformed", s.malformed_dropped),
        ("foreign", s.foreign_dropped),
    ] {
        out.sample(
            "muster_dropped_input_total",
            &[("reason", reason)],
            n as f64,
        );
    }
    out.family(
        "muster_records_refused_total",
        Kind::Counter,
        "What peers sent that decoded but the protocol refused to act on, by reason.",
    );
    for reason in Refusal::ALL {
        out.sample(
            "muster_records_refused_total",
            &[("reason", reason.as_str())],
            s.refused.of(reason) as f64,
        );
    }
    let buckets: Vec<(f64, u64)> = RTT_BUCKETS_MICROS
        .iter()
        .zip(s.probe_rtt.counts)
        .map(|(&bound, n)| (bound as f64 / 1e6, n))
        .collect();
    out.histogram(
        "muster_probe_rtt_seconds",
        "Round-trip time of direct probes answered by datagram.",
        &buckets,
        s.probe_rtt.sum_micros as f64 / 1e6,
        s.probe_rtt.count,
    );
}

fn write_transport(out: &mut Exposition, t: &TransportStats) {
    out.family(
        "muster_quic_handshakes_total",
        Kind::Counter,
        "QUIC handshakes, dialed or accepted, by outcome (refused: a TLS refusal, also counted as failed).",
    );
    for (outcome, n) in [
        ("ok", t.handshakes_ok),
        ("failed", t.handshakes_failed),
        ("refused", t.handshakes_refused),
    ] {
        out.sample(
            "muster_quic_handshakes_total",
            &[("outcome", outcome)],
            n as f64,
        );
    }
    let gauges = [
        (
            "muster_quic_connections_open",
            "QUIC connections open now.",
            t.open_connections,
        ),
        (
            "muster_quic_handshakes_pending",
            "Incoming QUIC handshakes in progress.",
            t.handshakes_pending,
        ),
    ];
    for (name, help, v) in gauges {
        out.single(name, Kind::Gauge, help, v as f64);
    }
    let counters = [
        (
            "muster_quic_dials_total",
            "Dials started to peers without a live connection.",
            t.dials,
        ),
        (
            "muster_quic_connections_refused_total",
            "Incoming connections turned away at the connection limit.",
            t.connections_refused,
        ),
        (
            "muster_quic_evictions_total",
            "Idle connections closed to make room in the cache.",
            t.evictions,
        ),
        (
            "muster_send_failures_total",
            "Sends that failed (dial failed, connection lost, too large).",
            t.send_failures + t.datagrams_too_large,
        ),
        (
            "muster_incoming_dropped_total",
            "Received messages dropped: the driver's queue was full, or a stream was bad.",
            t.incoming_dropped + t.streams_dropped,
        ),
    ];
    for (name, help, v) in counters {
        out.single(name, Kind::Counter, help, v as f64);
    }
    let udp = [
        (
            "muster_udp_packets_total",
            "UDP packets (whole QUIC packets: handshakes, ACKs and keep-alives included) by direction.",
            t.udp_packets_in,
            t.udp_packets_out,
        ),
        (
            "muster_udp_bytes_total",
            "UDP payload bytes (what a packet capture sees) by direction.",
            t.udp_bytes_in,
            t.udp_bytes_out,
        ),
    ];
    for (name, help, inbound, outbound) in udp {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[("direction", "in")], inbound as f64);
        out.sample(name, &[("direction", "out")], outbound as f64);
    }
}
