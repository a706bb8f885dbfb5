//! Primary roles in the simulator: every node publishes an instance of each of a few
//! `primary`-mode services in its replicated state, each node elects each service's
//! primary from its own view exactly as an agent does ([`muster::routing::primary`]),
//! and the watch records, every check interval, whether the running nodes agree.
//!
//! Two figures come out: per kill of a primary, the time until every running node names
//! the same live primary again (the service had no agreed primary meanwhile); and the
//! time during which two running nodes named different primaries while no partition was
//! in force (nor had just healed).

use std::collections::HashMap;
use std::time::Duration;

use muster::proto::{Node, Time};
use muster::routing::HealthStatus;
use muster::routing::primary::{Candidate, Election};
use muster::routing::record::{self, ServiceRecord};
use muster::routing::spec::{ServiceMode, ServiceSpec};
use muster::wire::Name;
use serde::Serialize;

/// Name of service `k`.
pub fn service_name(k: usize) -> String {
    format!("svc-{k}")
}

/// The record node `i` publishes for service `k`: priorities differ per service, so the
/// primaries of different services sit on different nodes.
pub fn record_of(i: usize, k: usize, nodes: usize) -> (String, String) {
    let spec = ServiceSpec {
        mode: ServiceMode::Primary,
        // A permutation per service: node (k * 7 + i) mod n ranks first, and so on.
        priority: ((i + nodes - (k * 7) % nodes.max(1)) % nodes.max(1)) as u32,
        ..ServiceSpec::new(&service_name(k), 5000 + k as u16)
    };
    let rec = ServiceRecord::of(&spec, HealthStatus::Passing);
    (record::key(&spec.name), rec.encode())
}

/// One kill of a primary and how long until the running nodes agreed again.
#[derive(Debug, Clone, Serialize)]
pub struct PrimaryKill {
    /// The service.
    pub service: String,
    /// The node killed.
    pub node: String,
    /// When, in virtual ms.
    pub at_ms: f64,
    /// Kill → every running node names the same live primary (absent: never, by the end).
    pub agreed_after_ms: Option<f64>,
}

/// Parsed records, by (owner, epoch, version of the entry): the same record is parsed
/// once however many nodes hold it.
#[derive(Default)]
pub struct RecordCache {
    parsed: HashMap<(Name, String, u64), Option<ServiceRecord>>,
}

impl RecordCache {
    fn get(&mut self, owner: &Name, key: &str, version: u64, value: &str) -> Option<ServiceRecord> {
        self.parsed
            .entry((owner.clone(), key.to_owned(), version))
            .or_insert_with(|| ServiceRecord::decode(value))
            .clone()
    }
}

/// The primary of `service` as `node` sees it.
pub fn elect(node: &Node, service: &str, cache: &mut RecordCache) -> Option<String> {
    let key = record::key(service);
    let table = node.members();
    let mut election = Election::default();
    let mut first = true;
    for m in table.iter() {
        let Some(map) = node.kv(m.name()) else {
            continue;
        };
        let Some((value, version)) = map.get(&key) else {
            continue;
        };
        let Some(rec) = cache.get(m.name(), &key, version, value) else {
            continue;
        };
        if !m.state().is_live() {
            election.retired_claim = election.retired_claim.max(rec.claim);
            continue;
        }
        if first {
            election.failback = rec.failback;
            first = false;
        }
        election.candidates.push(Candidate {
            node: m.name().to_string(),
            member: m.state(),
            status: rec.status,
            priority: rec.priority,
            claim: rec.claim,
        });
    }
    election.primary().map(|c| c.node.clone())
}

/// What the watch has seen so far.
#[derive(Debug, Default)]
pub struct PrimaryWatch {
    /// Every kill, in order.
    pub kills: Vec<PrimaryKill>,
    /// Kill times not yet agreed on, by service.
    open: HashMap<String, (usize, Time)>,
    /// Time two running nodes named different primaries outside partitions.
    pub disagreement: Duration,
    /// Longest such stretch.
    pub longest_disagreement: Duration,
    /// The current stretch, by service.
    stretch: HashMap<String, Duration>,
    /// Checks made.
    pub checks: u64,
}

impl PrimaryWatch {
    /// Notes a kill of `node`, the primary of `service`, at `now`.
    pub fn killed(&mut self, service: &str, node: &str, now: Time) {
        self.open
            .insert(service.to_owned(), (self.kills.len(), now));
        self.kills.push(PrimaryKill {
            service: service.to_owned(),
            node: node.to_owned(),
            at_ms: now.since_epoch().as_secs_f64() * 1000.0,
            agreed_after_ms: None,
        });
    }

    /// One check: `views` are the running nodes' answers for `service`, `alive` tells
    /// whether a node is running, `split` whether a partition is in force or just healed.
    pub fn check(
        &mut self,
        service: &str,
        views: &[Option<String>],
        alive: impl Fn(&str) -> bool,
        split: bool,
        now: Time,
        every: Duration,
    ) {
        self.checks += 1;
        let first = views.first().cloned().flatten();
        let agree = views.iter().all(|v| *v == first);
        let agreed_live = agree && first.as_deref().is_some_and(&alive);
        if agreed_live && let Some((k, at)) = self.open.remove(service) {
            self.kills[k].agreed_after_ms = Some((now - at).as_secs_f64() * 1000.0);
        }
        let stretch = self.stretch.entry(service.to_owned()).or_default();
        if !agree && !split {
            self.disagreement += every;
            *stretch += every;
            self.longest_disagreement = self.longest_disagreement.max(*stretch);
        } else {
            *stretch = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_ranks_a_different_node_first() {
        let n = 20;
        let top = |k: usize| {
            (0..n)
                .max_by_key(|&i| {
                    ServiceRecord::decode(&record_of(i, k, n).1)
                        .unwrap()
                        .priority
                })
                .unwrap()
        };
        assert_ne!(top(0), top(1));
        assert_ne!(top(1), top(2));
    }

    #[test]
    fn a_kill_is_closed_when_every_running_node_agrees_on_a_live_primary() {
        let mut w = PrimaryWatch::default();
        let t = |ms: u64| Time::from_nanos(ms * 1_000_000);
        let every = Duration::from_millis(100);
        w.killed("svc-0", "a", t(1000));
        let alive = |n: &str| n != "a";
        w.check(
            "svc-0",
            &[Some("a".into()), Some("b".into())],
            alive,
            false,
            t(1100),
            every,
        );
        assert_eq!(w.disagreement, every);
        w.check(
            "svc-0",
            &[Some("b".into()), Some("b".into())],
            alive,
            false,
            t(2500),
            every,
        );
        assert_eq!(w.kills[0].agreed_after_ms, Some(1500.0));
        w.check(
            "svc-0",
            &[Some("b".into()), None],
            alive,
            true,
            t(2600),
            every,
        );
        assert_eq!(
            w.disagreement, every,
            "inside a partition nothing is counted"
        );
    }
}
