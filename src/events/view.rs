//! The JSON shapes of the API's answers. Field names are part of the API: change them
//! only with a new version prefix.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::availability::AvailabilityView;
use crate::events::status::Status;
use crate::proto::{MemberInfo, Time};
use crate::wire::Tags;

/// One member, as `GET /v1/members`, `/v1/members/{name}` and `/v1/self` show it.
/// Serialized through [`MemberFields`], the one definition of the record's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Unique node name.
    pub name: String,
    /// Address of its endpoint, `ip:port`.
    pub addr: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Status as this agent sees it.
    pub status: Status,
    /// Latest incarnation known.
    pub incarnation: u64,
    /// Tags, by key.
    pub tags: Tags,
    /// Milliseconds since this agent saw the status change (or first heard of the
    /// member), on this agent's monotonic clock. No wall-clock time: agents' clocks need
    /// not agree, and the protocol never reads one.
    pub status_changed_ms_ago: u64,
    /// Smoothed direct-probe round-trip time from this agent, in milliseconds
    /// (microsecond precision); `null` until measured, and always for this agent itself.
    pub rtt_ms: Option<f64>,
    /// The node key the member's name is bound to, hex (docs/protocol.md §17).
    pub node_key: String,
    /// Availability history as this agent saw it (member lists and lookups only; absent
    /// in event records).
    pub availability: Option<AvailabilityView>,
}

/// A member record's fields as they are written, borrowed: [`MemberView`] serializes
/// through it, and member lists ([`MemberRow`]) write straight from the membership
/// snapshot without copying each record into owned strings first.
#[derive(Serialize)]
struct MemberFields<'a, A: std::fmt::Display, K: std::fmt::Display> {
    name: &'a str,
    #[serde(serialize_with = "as_text")]
    addr: A,
    region: &'a str,
    zone: &'a str,
    status: Status,
    incarnation: u64,
    tags: &'a Tags,
    status_changed_ms_ago: u64,
    rtt_ms: Option<f64>,
    #[serde(serialize_with = "as_text")]
    node_key: K,
    #[serde(skip_serializing_if = "Option::is_none")]
    availability: Option<&'a AvailabilityView>,
}

/// Writes a value as its text, without an intermediate `String`.
fn as_text<A: std::fmt::Display, S: serde::Serializer>(value: &A, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Milliseconds from `then` to `now`.
fn ms_since(now: Time, then: Time) -> u64 {
    u64::try_from(now.saturating_since(then).as_millis()).unwrap_or(u64::MAX)
}

/// A round trip in milliseconds with microsecond precision.
fn rtt_ms(rtt: Option<std::time::Duration>) -> Option<f64> {
    rtt.map(|d| d.as_micros() as f64 / 1000.0)
}

impl Serialize for MemberView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MemberFields {
            name: &self.name,
            addr: &self.addr,
            region: &self.region,
            zone: &self.zone,
            status: self.status,
            incarnation: self.incarnation,
            tags: &self.tags,
            status_changed_ms_ago: self.status_changed_ms_ago,
            rtt_ms: self.rtt_ms,
            node_key: &self.node_key,
            availability: self.availability.as_ref(),
        }
        .serialize(s)
    }
}

impl MemberView {
    /// The view of `m` at `now` (on the clock of `m.state_changed`).
    pub fn new(m: &MemberInfo, now: Time) -> MemberView {
        MemberView {
            name: m.name.to_string(),
            addr: m.addr.to_string(),
            region: m.region.to_string(),
            zone: m.zone.to_string(),
            status: Status::of(m.state),
            incarnation: m.incarnation,
            tags: m.tags.clone(),
            status_changed_ms_ago: ms_since(now, m.state_changed),
            rtt_ms: rtt_ms(m.rtt),
            node_key: m.key.to_string(),
            availability: None,
        }
    }

    /// The same view with its availability history; a member the event journal has not
    /// recorded yet (the snapshot can be a moment ahead of it) shows as just observed.
    pub fn with_availability(mut self, availability: Option<AvailabilityView>) -> MemberView {
        self.availability = Some(with_unobserved(availability, self.status));
        self
    }
}

/// `availability`, or a just-observed one for a member the journal has not recorded yet.
fn with_unobserved(availability: Option<AvailabilityView>, status: Status) -> AvailabilityView {
    availability.unwrap_or_else(|| AvailabilityView::unobserved(status))
}

/// One member of a list as `GET /v1/members` writes it: the same record as
/// [`MemberView`] with its availability, borrowed from the snapshot.
#[derive(Debug)]
pub struct MemberRow<'a> {
    member: &'a MemberInfo,
    now: Time,
    availability: AvailabilityView,
}

impl<'a> MemberRow<'a> {
    /// `member` at `now`, with its availability history if the journal has one.
    pub fn new(member: &'a MemberInfo, now: Time, availability: Option<AvailabilityView>) -> Self {
        MemberRow {
            member,
            now,
            availability: with_unobserved(availability, Status::of(member.state)),
        }
    }
}

impl Serialize for MemberRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.member;
        MemberFields {
            name: m.name.as_str(),
            addr: m.addr,
            region: m.region.as_str(),
            zone: m.zone.as_str(),
            status: Status::of(m.state),
            incarnation: m.incarnation,
            tags: &m.tags,
            status_changed_ms_ago: ms_since(self.now, m.state_changed),
            rtt_ms: rtt_ms(m.rtt),
            node_key: m.key,
            availability: Some(&self.availability),
        }
        .serialize(s)
    }
}

/// Member counts by status; every status is present, zero or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Alive members.
    pub alive: usize,
    /// Suspect members.
    pub suspect: usize,
    /// Failed members not yet reaped.
    pub failed: usize,
    /// Departed members not yet reaped.
    pub left: usize,
}

impl StatusCounts {
    /// Counts one member.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Alive => self.alive += 1,
            Status::Suspect => self.suspect += 1,
            Status::Failed => self.failed += 1,
            Status::Left => self.left += 1,
        }
    }
}

/// `GET /v1/cluster`: the membership in numbers, as this agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// This agent's node name.
    pub name: String,
    /// Every record this agent holds, tombstones (failed, left) included.
    pub members: usize,
    /// Alive and suspect members, this agent included.
    pub live: usize,
    /// Counts by status.
    pub by_status: StatusCounts,
    /// Counts by status within each region, regions in name order.
    pub by_region: BTreeMap<String, StatusCounts>,
    /// This agent's membership digest, 16 hex digits: agents that agree on who is live
    /// at which incarnation show the same value (a string, so no JSON reader rounds it).
    pub digest: String,
    /// This agent's Lifeguard health score: 0 is healthy; it rises with missed acks and
    /// refutations, and stretches this agent's probing.
    pub health_score: u32,
}

impl ClusterView {
    /// Counts a snapshot.
    pub fn new(name: &str, members: &[MemberInfo], digest: u64, health_score: u32) -> ClusterView {
        let mut by_status = StatusCounts::default();
        let mut by_region: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for m in members {
            let status = Status::of(m.state);
            by_status.add(status);
            by_region
                .entry(m.region.to_string())
                .or_default()
                .add(status);
        }
        ClusterView {
            name: name.to_owned(),
            members: members.len(),
            live: by_status.alive + by_status.suspect,
            by_status,
            by_region,
            digest: format!("{digest:016x}"),
            health_score,
        }
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthView {
    /// `ok`, or `unavailable`.
    pub status: &'static str,
    /// Why not ok; absent when ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The Lifeguard health score (0 is healthy; at its maximum the agent is degraded).
    pub health_score: u32,
}
