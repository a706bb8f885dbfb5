//! What the simulator measures while it runs: when failures are detected, false alarms,
//! and a hash of the whole event trace (the determinism check compares it).

use std::collections::BTreeMap;

use muster::proto::{Event, Time};
use muster::stable_hash::StableHasher;

/// One crashed node and who noticed, when.
#[derive(Debug, Clone)]
pub struct CrashRecord {
    /// Index of the crashed node.
    pub subject: usize,
    /// When it crashed.
    pub at: Time,
    /// Its incarnation at the crash: news at or below it is about this life.
    pub incarnation: u64,
    /// Nodes that were up at the crash (they should all mark it failed).
    pub observers: Vec<usize>,
    /// When it was restarted, if it was: observers that had not yet marked it failed
    /// by then are not missing (the node was back).
    pub restarted: Option<Time>,
    /// First suspicion by anyone.
    pub first_suspicion: Option<Time>,
    /// When each observer marked it failed (or left).
    pub failed_at: BTreeMap<usize, Time>,
}

impl CrashRecord {
    /// Observers still up at the end that never marked it failed (none if the node was
    /// restarted: then nobody had to).
    pub fn missing(&self, up: impl Fn(usize) -> bool) -> usize {
        if self.restarted.is_some() {
            return 0;
        }
        self.observers
            .iter()
            .filter(|o| up(**o) && !self.failed_at.contains_key(o))
            .count()
    }

    /// When every observer still up had marked it failed.
    pub fn all_failed(&self, up: impl Fn(usize) -> bool) -> Option<Time> {
        let known = self
            .observers
            .iter()
            .filter(|o| up(**o))
            .all(|o| self.failed_at.contains_key(o));
        if !known {
            return None;
        }
        self.observers
            .iter()
            .filter(|o| up(**o))
            .filter_map(|o| self.failed_at.get(o).copied())
            .max()
    }

    /// First failure declaration by anyone.
    pub fn first_failure(&self) -> Option<Time> {
        self.failed_at.values().min().copied()
    }
}

/// How the world sees the subject of an event when it happens.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// Node index.
    pub index: usize,
    /// Running right now.
    pub up: bool,
    /// Configured as a slow node.
    pub slow: bool,
    /// A partition separates it from the observer right now, or did until a heal less
    /// than one maximum suspicion timeout ago.
    pub cut_off: bool,
}

/// Accumulated observations.
#[derive(Debug, Default)]
pub struct Observer {
    /// Every crash, in order.
    pub crashes: Vec<CrashRecord>,
    /// Latest crash record per subject.
    latest_crash: BTreeMap<usize, usize>,
    /// Suspicions of running, non-slow nodes.
    pub false_suspicions: u64,
    /// Failure declarations of running, non-slow nodes: subject → observers.
    pub false_failures: BTreeMap<usize, Vec<usize>>,
    /// Suspicions of slow nodes (running, but answering late).
    pub slow_suspicions: u64,
    /// Failure declarations of slow nodes: subject → observers.
    pub slow_failures: BTreeMap<usize, Vec<usize>>,
    /// Suspicions and failure declarations across a partition in force (expected).
    pub partitioned: u64,
    /// Events seen.
    pub events: u64,
    /// When the first false failure happened.
    pub first_false_failure: Option<Time>,
    trace: StableHasher,
}

impl Observer {
    /// Opens a crash record.
    pub fn crashed(&mut self, subject: usize, at: Time, incarnation: u64, observers: Vec<usize>) {
        self.latest_crash.insert(subject, self.crashes.len());
        self.crashes.push(CrashRecord {
            subject,
            at,
            incarnation,
            observers,
            first_suspicion: None,
            failed_at: BTreeMap::new(),
            restarted: None,
        });
    }

    /// Closes the latest crash record of `subject`: it is running again.
    pub fn restarted(&mut self, subject: usize, at: Time) {
        if let Some(&c) = self.latest_crash.get(&subject) {
            self.crashes[c].restarted.get_or_insert(at);
        }
    }

    /// Records one event emitted by `observer` at `now`; `subject` is the world's view of
    /// the member the event is about, if it is a member event.
    pub fn record(&mut self, now: Time, observer: usize, event: &Event, subject: Option<Subject>) {
        self.events += 1;
        let (kind, info) = match event {
            Event::MemberJoined(m) => (1u8, Some(m)),
            Event::MemberUpdated(m) => (2, Some(m)),
            Event::MemberSuspected(m) => (3, Some(m)),
            Event::MemberAlive(m) => (4, Some(m)),
            Event::MemberFailed(m) => (5, Some(m)),
            Event::MemberLeft(m) => (6, Some(m)),
            Event::MemberReaped(m) => (7, Some(m)),
            Event::Joined { .. } => (8, None),
            Event::JoinFailed { .. } => (9, None),
            Event::LeaveCompleted => (10, None),
            Event::KvChanged { .. } => (11, None),
            Event::NameTaken { .. } => (12, None),
        };
        self.trace
            .write(&now.as_nanos().to_le_bytes())
            .write_u32(observer as u32)
            .write(&[kind]);
        let (Some(info), Some(s)) = (info, subject) else {
            return;
        };
        self.trace.write_str(&info.name).write_u64(info.incarnation);
        let crash = self.latest_crash.get(&s.index).copied().filter(|&c| {
            info.incarnation <= self.crashes[c].incarnation && self.crashes[c].at <= now
        });
        let suspected = matches!(event, Event::MemberSuspected(_));
        let failed = matches!(event, Event::MemberFailed(_) | Event::MemberLeft(_));
        if let Some(c) = crash {
            let rec = &mut self.crashes[c];
            if suspected && rec.first_suspicion.is_none() {
                rec.first_suspicion = Some(now);
            }
            if failed {
                rec.failed_at.entry(observer).or_insert(now);
            }
            return;
        }
        if !s.up || !(suspected || matches!(event, Event::MemberFailed(_))) {
            return;
        }
        if s.cut_off {
            self.partitioned += 1;
            return;
        }
        match (s.slow, suspected) {
            (false, true) => self.false_suspicions += 1,
            (false, false) => {
                self.first_false_failure.get_or_insert(now);
                self.false_failures
                    .entry(s.index)
                    .or_default()
                    .push(observer)
            }
            (true, true) => self.slow_suspicions += 1,
            (true, false) => self
                .slow_failures
                .entry(s.index)
                .or_default()
                .push(observer),
        }
    }

    /// Hash of every event recorded, in order.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }
}
