//! The event journal: membership events numbered in order, the last
//! [`HISTORY`] of them kept for clients that reconnect (`Last-Event-ID`), offered live to
//! every subscriber (the `GET /v1/events` streams, the event hooks), and folded into each
//! member's [availability](crate::events::availability) history.
//!
//! One task per agent follows the mesh's events; it runs off the protocol path (the
//! driver queues each event for it without waiting, and never drops one:
//! [`Mesh::follow`]), so a slow stream or hook never delays probing, and a burst (a join
//! into a cluster of thousands) is numbered whole. Resuming and recording take the same
//! lock, so a client resuming from an id gets every later event exactly once: the
//! backlog, then the live ones.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use crate::agent::{Mesh, MeshView};
use crate::events::Status;
use crate::events::availability::{Availability, AvailabilityView};
use crate::events::view::MemberView;
use crate::proto::{Event, MemberInfo};
use crate::routing::router::{RuleChange, RuleState};
use crate::routing::services::PrimaryChange;

/// Events kept for resuming clients.
pub const HISTORY: usize = 4096;

/// Events buffered per live subscriber; one that falls further behind is told to resync.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// What happened to a member, as the event stream, hooks and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// First seen (or back after leaving).
    MemberJoined,
    /// A live member changed its address, region, zone or tags.
    MemberUpdated,
    /// Became suspect.
    MemberSuspected,
    /// Alive again after a suspicion or a failure.
    MemberAlive,
    /// Declared failed.
    MemberFailed,
    /// Left gracefully, or was force-left.
    MemberLeft,
    /// Forgotten after its retention time.
    MemberReaped,
    /// Keys of the member's replicated state changed (the record lists them).
    StateChanged,
    /// A `primary`-mode service's primary changed, as this agent computes it (the record
    /// names the service, the new primary and the previous one; `member` is the new
    /// primary's record, or the previous one's when no instance holds the role).
    PrimaryChanged,
    /// A service's failover rule changed state for a caller region, as this agent
    /// judges it (the record names the service, the region, the states from and to, and
    /// why; `member` is this agent's own record).
    FailoverChanged,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::MemberJoined,
        EventKind::MemberUpdated,
        EventKind::MemberSuspected,
        EventKind::MemberAlive,
        EventKind::MemberFailed,
        EventKind::MemberLeft,
        EventKind::MemberReaped,
        EventKind::StateChanged,
        EventKind::PrimaryChanged,
        EventKind::FailoverChanged,
    ];

    /// The kind's name, e.g. `member-failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MemberJoined => "member-joined",
            EventKind::MemberUpdated => "member-updated",
            EventKind::MemberSuspected => "member-suspected",
            EventKind::MemberAlive => "member-alive",
            EventKind::MemberFailed => "member-failed",
            EventKind::MemberLeft => "member-left",
            EventKind::MemberReaped => "member-reaped",
            EventKind::StateChanged => "state-changed",
            EventKind::PrimaryChanged => "primary-changed",
            EventKind::FailoverChanged => "failover-changed",
        }
    }

    /// Parses a kind's name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind and member of a membership event; `None` for events about this agent's
    /// own join and leave, which are not membership changes, and for state changes,
    /// which name their member without its record.
    pub fn of(event: &Event) -> Option<(EventKind, &MemberInfo)> {
        Some(match event {
            Event::MemberJoined(m) => (EventKind::MemberJoined, m),
            Event::MemberUpdated(m) => (EventKind::MemberUpdated, m),
            Event::MemberSuspected(m) => (EventKind::MemberSuspected, m),
            Event::MemberAlive(m) => (EventKind::MemberAlive, m),
            Event::MemberFailed(m) => (EventKind::MemberFailed, m),
            Event::MemberLeft(m) => (EventKind::MemberLeft, m),
            Event::MemberReaped(m) => (EventKind::MemberReaped, m),
            Event::Joined { .. }
            | Event::JoinFailed { .. }
            | Event::NameTaken { .. }
            | Event::LeaveCompleted
            | Event::KvChanged { .. } => {
                return None;
            }
        })
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One numbered event, as `GET /v1/events` sends it and hooks receive it.
///
/// As JSON (the API's event and the hooks' payload): `seq`, `event` (the kind's name),
/// `node`, `time_ms`, `member`, then what the kind carries (`keys`; `service`,
/// `primary`, `previous`; `service`, `region`, `from`, `to`, `reason`), absent fields
/// omitted.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Position in this agent's journal, from 1; the SSE event id.
    pub seq: u64,
    /// The agent that saw it.
    pub node: String,
    /// Wall-clock time the agent recorded it, milliseconds since the Unix epoch (for
    /// people and alerting tools; the protocol itself never reads a wall clock).
    pub time_ms: u64,
    /// The member's record as of the event.
    pub member: MemberView,
    /// What happened, with what only that kind of event carries.
    pub detail: EventDetail,
}

impl EventRecord {
    /// What happened, by name.
    pub fn kind(&self) -> EventKind {
        self.detail.kind()
    }
}

/// What happened to a member, by kind; the kinds that say more than the member's record
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDetail {
    /// [`EventKind::MemberJoined`].
    MemberJoined,
    /// [`EventKind::MemberUpdated`].
    MemberUpdated,
    /// [`EventKind::MemberSuspected`].
    MemberSuspected,
    /// [`EventKind::MemberAlive`].
    MemberAlive,
    /// [`EventKind::MemberFailed`].
    MemberFailed,
    /// [`EventKind::MemberLeft`].
    MemberLeft,
    /// [`EventKind::MemberReaped`].
    MemberReaped,
    /// Keys of the member's replicated state changed.
    StateChanged {
        /// The keys whose value changed (set, changed or deleted).
        keys: Vec<String>,
    },
    /// A `primary`-mode service's primary changed, as this agent computes it; the
    /// record's member is the new primary, or the previous one when none holds the role.
    PrimaryChanged {
        /// The service.
        service: String,
        /// The node holding the role now (none: no instance does).
        primary: Option<String>,
        /// The node that held it before (none: none did).
        previous: Option<String>,
    },
    /// A service's failover rule changed state for callers in a region.
    FailoverChanged {
        /// The service.
        service: String,
        /// The caller region whose rule state changed.
        region: String,
        /// The state before (`normal`, `pending`, `failed-over`, `failing-back`,
        /// `forced`, `remote`).
        from: RuleState,
        /// The state after.
        to: RuleState,
        /// Why, in a sentence.
        reason: String,
    },
}

impl EventDetail {
    /// The detail of a membership kind (`member-*`); `None` for the kinds that carry more.
    pub fn membership(kind: EventKind) -> Option<EventDetail> {
        Some(match kind {
            EventKind::MemberJoined => EventDetail::MemberJoined,
            EventKind::MemberUpdated => EventDetail::MemberUpdated,
            EventKind::MemberSuspected => EventDetail::MemberSuspected,
            EventKind::MemberAlive => EventDetail::MemberAlive,
            EventKind::MemberFailed => EventDetail::MemberFailed,
            EventKind::MemberLeft => EventDetail::MemberLeft,
            EventKind::MemberReaped => EventDetail::MemberReaped,
            EventKind::StateChanged | EventKind::PrimaryChanged | EventKind::FailoverChanged => {
                return None;
            }
        })
    }

    /// The kind's name.
    pub fn kind(&self) -> EventKind {
        match self {
            EventDetail::MemberJoined => EventKind::MemberJoined,
            EventDetail::MemberUpdated => EventKind::MemberUpdated,
            EventDetail::MemberSuspected => EventKind::MemberSuspected,
            EventDetail::MemberAlive => EventKind::MemberAlive,
            EventDetail::MemberFailed => EventKind::MemberFailed,
            EventDetail::MemberLeft => EventKind::MemberLeft,
            EventDetail::MemberReaped => EventKind::MemberReaped,
            EventDetail::StateChanged { .. } => EventKind::StateChanged,
            EventDetail::PrimaryChanged { .. } => EventKind::PrimaryChanged,
            EventDetail::FailoverChanged { .. } => EventKind::FailoverChanged,
        }
    }
}

impl Serialize for EventRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The JSON layout, one flat object (the shape the API and hooks have always sent).
        #[derive(Serialize)]
        struct Wire<'a> {
            seq: u64,
            event: EventKind,
            node: &'a str,
            time_ms: u64,
            member: &'a MemberView,
            #[serde(skip_serializing_if = "Option::is_none")]
            keys: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            service: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            primary: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            previous: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            region: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            from: Option<RuleState>,
            #[serde(skip_serializing_if = "Option::is_none")]
            to: Option<RuleState>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
        }
        let mut wire = Wire {
            seq: self.seq,
            event: self.kind(),
            node: &self.node,
            time_ms: self.time_ms,
            member: &self.member,
            keys: None,
            service: None,
            primary: None,
            previous: None,
            region: None,
            from: None,
            to: None,
            reason: None,
        };
        match &self.detail {
            EventDetail::StateChanged { keys } => wire.keys = Some(keys),
            EventDetail::PrimaryChanged {
                service,
                primary,
                previous,
            } => {
                wire.service = Some(service);
                wire.primary = primary.as_deref();
                wire.previous = previous.as_deref();
            }
            EventDetail::FailoverChanged {
                service,
                region,
                from,
                to,
                reason,
            } => {
                wire.service = Some(service);
                wire.region = Some(region);
                wire.from = Some(*from);
                wire.to = Some(*to);
                wire.reason = Some(reason);
            }
            _ => {}
        }
        wire.serialize(serializer)
    }
}

/// Where a resuming client starts.
#[derive(Debug)]
pub struct Resume {
    /// Set when events after the client's id are no longer all held (too old, or the
    /// id is from before this agent started): the client should re-read the membership.
    pub gap: Option<Gap>,
    /// Held events after the client's id, oldest first.
    pub backlog: Vec<Arc<EventRecord>>,
    /// Every event from the end of the backlog on.
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

/// Events a resuming client cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The id the client asked to resume after.
    pub after: u64,
    /// The oldest id still held (0 if none is).
    pub oldest: u64,
    /// The latest id.
    pub latest: u64,
}

#[derive(Debug)]
struct Shared {
    next_seq: u64,
    counts: BTreeMap<&'static str, u64>,
    history: VecDeque<Arc<EventRecord>>,
    availability: Availability,
}

/// The journal of one agent. Cheap to clone; the task stops when the mesh stops.
#[derive(Debug, Clone)]
pub struct Journal {
    /// Names this run of the journal in event ids (`run-seq`), so an id from before the
    /// agent restarted is told apart from the same number in this run.
    run: Arc<str>,
    shared: Arc<Mutex<Shared>>,
    live: broadcast::Sender<Arc<EventRecord>>,
    mesh: MeshView,
}

impl Journal {
    /// Starts following `mesh`'s events (on the current tokio runtime), seeded with its
    /// current membership.
    pub fn start(mesh: &Mesh) -> Journal {
        let events = mesh.follow();
        let journal = Journal::new(mesh.view());
        tokio::spawn(journal.clone().follow(events));
        journal
    }

    pub(super) fn new(mesh: MeshView) -> Journal {
        let mut availability = Availability::default();
        resync(&mut availability, &mesh);
        let (live, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        // Different on every start (`RandomState` is keyed from the system's random
        // source); 8 hex digits are plenty to tell two runs of one agent apart.
        let run = {
            use std::hash::BuildHasher;
            let h = std::collections::hash_map::RandomState::new()
                .hash_one(crate::wall_clock::unix_millis());
            format!("{:08x}", h as u32)
        };
        Journal {
            run: run.into(),
            shared: Arc::new(Mutex::new(Shared {
                next_seq: 1,
                counts: EventKind::ALL.iter().map(|k| (k.as_str(), 0)).collect(),
                history: VecDeque::with_capacity(HISTORY),
                availability,
            })),
            live,
            mesh,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves plain counters and queues: still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records every event the mesh delivers (none is dropped: [`Mesh::follow`]), until
    /// the mesh stops.
    pub(super) async fn follow(self, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.record(&event);
        }
    }

    /// Numbers, keeps and offers one event (ignoring this agent's own join and leave).
    fn record(&self, event: &Event) {
        let now = self.mesh.now();
        let (member, detail) = match event {
            // Only the map's version moved: no value changed, nothing to tell.
            Event::KvChanged { keys, .. } if keys.is_empty() => return,
            Event::KvChanged { node, keys } => {
                // The member's record as of the latest snapshot (a state change does
                // not change it); a member already forgotten has nothing to report.
                let members = self.mesh.members();
                let Ok(i) = members.binary_search_by(|m| m.name.cmp(node)) else {
                    return;
                };
                let view = MemberView::new(&members[i], now);
                (view, EventDetail::StateChanged { keys: keys.clone() })
            }
            _ => {
                let Some((kind, member)) = EventKind::of(event) else {
                    return;
                };
                let mut shared = self.lock();
                let Some(detail) = EventDetail::membership(kind) else {
                    return;
                };
                let status = (kind != EventKind::MemberReaped).then(|| Status::of(member.state));
                shared.availability.record(&member.name, now, status);
                (MemberView::new(member, now), detail)
            }
        };
        self.publish(member, detail);
    }

    /// Also records the primary changes `changes` delivers (from the agent's services),
    /// until that channel closes.
    pub fn follow_primaries(&self, mut changes: broadcast::Receiver<PrimaryChange>) {
        let journal = self.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => journal.record_primary(&change),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event journal missed primary changes")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Numbers, keeps and offers one primary change.
    fn record_primary(&self, change: &PrimaryChange) {
        let now = self.mesh.now();
        let members = self.mesh.members();
        let subject = change.primary.as_ref().or(change.previous.as_ref());
        let Some(member) = subject
            .and_then(|n| members.binary_search_by(|m| m.name.as_str().cmp(n)).ok())
            .map(|i| MemberView::new(&members[i], now))
        else {
            return;
        };
        self.publish(
            member,
            EventDetail::PrimaryChanged {
                service: change.service.clone(),
                primary: change.primary.clone(),
                previous: change.previous.clone(),
            },
        );
    }

    /// Also records the failover rule changes `changes` delivers (from the agent's
    /// services), until that channel closes.
    pub fn follow_failovers(&self, mut changes: broadcast::Receiver<RuleChange>) {
        let journal = self.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => journal.record_failover(change),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event journal missed failover rule changes")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Numbers, keeps and offers one failover rule change, about this agent itself (the
    /// rule's state is this agent's judgement).
    fn record_failover(&self, change: RuleChange) {
        let now = self.mesh.now();
        let members = self.mesh.members();
        let me = self.mesh.name();
        let Ok(i) = members.binary_search_by(|m| m.name.cmp(me)) else {
            return;
        };
        let member = MemberView::new(&members[i], now);
        self.publish(
            member,
            EventDetail::FailoverChanged {
                service: change.service,
                region: change.region,
                from: change.from,
                to: change.to,
                reason: change.reason,
            },
        );
    }

    /// Numbers, keeps and offers one event that is not a membership event.
    fn publish(&self, member: MemberView, detail: EventDetail) {
        let mut shared = self.lock();
        let kind = detail.kind();
        let record = Arc::new(EventRecord {
            seq: shared.next_seq,
            node: self.mesh.name().to_string(),
            time_ms: crate::wall_clock::unix_millis(),
            member,
            detail,
        });
        shared.next_seq += 1;
        *shared.counts.entry(kind.as_str()).or_default() += 1;
        if shared.history.len() == HISTORY {
            shared.history.pop_front();
        }
        shared.history.push_back(record.clone());
        // Under the lock, so `resume` sees each record in the backlog or live, never both.
        let _ = self.live.send(record);
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.live.subscribe()
    }

    /// The held events after `after`, then every event from now on; with no id (a new
    /// client), only what happens from now on.
    pub fn resume(&self, after: Option<u64>) -> Resume {
        let shared = self.lock();
        let live = self.live.subscribe();
        let latest = shared.next_seq - 1;
        let Some(after) = after else {
            return Resume {
                gap: None,
                backlog: Vec::new(),
                live,
            };
        };
        let oldest = shared.history.front().map_or(0, |r| r.seq);
        // The id is from before the oldest held event, or from a previous run of this
        // agent (ahead of anything this run numbered).
        let gap = (after > latest || (oldest > 0 && after + 1 < oldest)).then_some(Gap {
            after,
            oldest,
            latest,
        });
        let backlog = if after > latest {
            Vec::new()
        } else {
            shared
                .history
                .iter()
                .filter(|r| r.seq > after)
                .cloned()
                .collect()
        };
        Resume { gap, backlog, live }
    }

    /// This run's name, the prefix of its event ids.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Live subscribers now (open event streams, hooks).
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// The latest event id (0 before the first event).
    pub fn latest(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Events recorded so far, by kind name (every kind present).
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().counts.clone()
    }

    /// `name`'s availability history, if known.
    pub fn availability(&self, name: &str) -> Option<AvailabilityView> {
        let now = self.mesh.now();
        self.lock().availability.view(name, now)
    }

    /// Runs `f` with the availability table (one lock for a whole member list).
    pub fn with_availability<R>(&self, f: impl FnOnce(&Availability) -> R) -> R {
        f(&self.lock().availability)
    }
}

/// Brings `availability` to the statuses of the mesh's current snapshot.
fn resync(availability: &mut Availability, mesh: &MeshView) {
    let members = mesh.members();
    availability.resync(
        mesh.now(),
        members
            .iter()
            .map(|m| (m.name.as_str(), Status::of(m.state))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{MeshConfig, TlsSource};
    use crate::proto::SwimConfig;
    use crate::transport::ClusterKey;
    use crate::wire::Tags;

    fn record(detail: EventDetail) -> EventRecord {
        EventRecord {
            seq: 4,
            node: "a".into(),
            time_ms: 9,
            member: MemberView {
                name: "b".into(),
                addr: "127.0.0.1:1".into(),
                region: "eu".into(),
                zone: "eu-1".into(),
                status: Status::Alive,
                incarnation: 1,
                tags: Tags::new(),
                status_changed_ms_ago: 0,
                rtt_ms: None,
                node_key: "00".repeat(32),
                availability: None,
            },
            detail,
        }
    }

    #[test]
    fn records_keep_their_flat_json_shape_whatever_the_kind() {
        let json = |d| serde_json::to_value(record(d)).expect("serializes");
        let plain = json(EventDetail::MemberFailed);
        assert_eq!(plain["event"], "member-failed");
        assert_eq!(plain["seq"], 4);
        for absent in ["keys", "service", "primary", "previous", "detail"] {
            assert!(plain.get(absent).is_none(), "{absent}: {plain}");
        }
        let state = json(EventDetail::StateChanged {
            keys: vec!["k".into()],
        });
        assert_eq!(state["event"], "state-changed");
        assert_eq!(state["keys"], serde_json::json!(["k"]));
        let primary = json(EventDetail::PrimaryChanged {
            service: "db".into(),
            primary: Some("b".into()),
            previous: None,
        });
        assert_eq!(primary["service"], "db");
        assert_eq!(primary["primary"], "b");
        assert!(primary.get("previous").is_none(), "{primary}");
        let failover = json(EventDetail::FailoverChanged {
            service: "web".into(),
            region: "eu".into(),
            from: RuleState::Pending,
            to: RuleState::FailedOver,
            reason: "no passing instance in eu".into(),
        });
        assert_eq!(failover["event"], "failover-changed");
        assert_eq!(
            (&failover["region"], &failover["from"], &failover["to"]),
            (
                &serde_json::json!("eu"),
                &serde_json::json!("pending"),
                &serde_json::json!("failed-over")
            )
        );
        assert!(failover.get("primary").is_none(), "{failover}");
        let text = serde_json::to_string(&record(EventDetail::MemberJoined)).unwrap();
        assert!(
            text.starts_with(
                r#"{"seq":4,"event":"member-joined","node":"a","time_ms":9,"member":{"#
            ),
            "{text}"
        );
        for kind in EventKind::ALL {
            if let Some(detail) = EventDetail::membership(kind) {
                assert_eq!(detail.kind(), kind);
            }
        }
    }

    #[tokio::test]
    async fn a_burst_larger_than_any_buffer_is_numbered_whole() {
        let bind = "127.0.0.1:0".parse().expect("an address");
        let mesh = Mesh::start(MeshConfig {
            swim: SwimConfig::local(),
            ..MeshConfig::new("a", bind, TlsSource::ClusterKey(ClusterKey::dev()))
        })
        .await
        .expect("a mesh on loopback");
        let me = mesh.members()[0].clone();
        let journal = Journal::new(mesh.view());
        let mut live = journal.subscribe();
        // Queued all at once before the journal reads, as a join's merge does.
        let (tx, rx) = mpsc::unbounded_channel();
        for _ in 0..5_000 {
            tx.send(Event::MemberUpdated(me.clone()))
                .expect("a receiver");
        }
        drop(tx);
        journal.clone().follow(rx).await;
        assert_eq!(journal.latest(), 5_000);
        assert_eq!(journal.counts()["member-updated"], 5_000);
        // Held: the last HISTORY, numbered in order.
        let resume = journal.resume(Some(5_000 - HISTORY as u64));
        assert!(resume.gap.is_none());
        assert_eq!(resume.backlog.len(), HISTORY);
        assert_eq!(resume.backlog[0].seq, 5_001 - HISTORY as u64);
        // A live subscriber that never read is told it lagged, not silently skipped.
        assert!(matches!(
            live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        mesh.shutdown().await;
    }
}
