//! Availability history: how each member's status has moved as this agent saw it — the
//! share of time it was alive over the last hour and day, how often it flapped, and when
//! it last did.
//!
//! Seeded from the membership snapshot when the journal starts, then fed by the journal
//! with every status change. Per member it keeps the status segments
//! of the last day, at most [`MAX_SEGMENTS`] of them: a member flapping faster than that
//! shortens its own observed window instead of growing memory without bound. A member
//! that is reaped is forgotten; if it comes back, its history starts again.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::events::status::Status;
use crate::proto::Time;

/// The longer window reported (and the history kept).
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The shorter window reported.
pub const HOUR: Duration = Duration::from_secs(3600);

/// Status segments kept per member: enough for a flap a minute for a day, with room.
pub const MAX_SEGMENTS: usize = 2048;

/// One member's status since `start` (until the next segment's start, or now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: Time,
    status: Status,
}

/// One member's history.
#[derive(Debug, Clone, PartialEq, Eq)]
struct History {
    /// Oldest first; never empty. The first segment's start is where observation begins.
    segments: VecDeque<Segment>,
    /// Flaps since this agent first saw the member.
    flaps: u64,
    /// When the latest flap happened.
    last_flap: Option<Time>,
}

impl History {
    fn new(now: Time, status: Status) -> History {
        History {
            segments: VecDeque::from([Segment { start: now, status }]),
            flaps: 0,
            last_flap: None,
        }
    }

    fn current(&self) -> Status {
        self.segments.back().expect("never empty").status
    }

    fn record(&mut self, now: Time, status: Status) {
        let previous = self.current();
        if previous == status {
            return;
        }
        // A flap: back to alive after being suspected or declared failed. A departure
        // followed by a rejoin is a restart, not a flap.
        if status == Status::Alive && matches!(previous, Status::Suspect | Status::Failed) {
            self.flaps += 1;
            self.last_flap = Some(now);
        }
        self.segments.push_back(Segment { start: now, status });
        self.trim(now);
    }

    /// Drops segments that ended more than a day ago, and the oldest ones past the cap.
    fn trim(&mut self, now: Time) {
        let cutoff = now.since_epoch().saturating_sub(DAY);
        while self.segments.len() > 1 && self.segments[1].start.since_epoch() <= cutoff {
            self.segments.pop_front();
        }
        while self.segments.len() > MAX_SEGMENTS {
            self.segments.pop_front();
        }
    }

    /// Share of the last `window` (or of the observed part of it) spent alive, and how
    /// much of the window was observed.
    fn alive_share(&self, now: Time, window: Duration) -> (f64, Duration) {
        let from = Time::from_duration(now.since_epoch().saturating_sub(window));
        let observed_from = self.segments[0].start.max(from);
        let observed = now.saturating_since(observed_from);
        if observed.is_zero() {
            return (
                if self.current() == Status::Alive {
                    1.0
                } else {
                    0.0
                },
                observed,
            );
        }
        let mut alive = Duration::ZERO;
        for (i, seg) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).map_or(now, |next| next.start);
            let start = seg.start.max(observed_from);
            if seg.status == Status::Alive && end > start {
                alive += end.saturating_since(start);
            }
        }
        (alive.as_secs_f64() / observed.as_secs_f64(), observed)
    }
}

/// A member's availability as `GET /v1/members` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityView {
    /// Share (0–1) of the last hour this member was `alive`, over the part of the hour
    /// this agent has known it. Time suspect counts as not alive.
    pub alive_share_1h: f64,
    /// The same over the last day.
    pub alive_share_24h: f64,
    /// How much of the last day this agent has observed the member, in milliseconds
    /// (less than a day for a member or an agent younger than that).
    pub observed_ms: u64,
    /// Flaps (alive → suspect or failed → alive) since this agent first saw the member.
    pub flaps: u64,
    /// Milliseconds since the latest flap; `null` if it never flapped.
    pub last_flap_ms_ago: Option<u64>,
}

impl AvailabilityView {
    /// A member not observed yet, now in `status`: its share is what the status says
    /// (as for any member observed for no time at all), no flaps.
    pub fn unobserved(status: Status) -> AvailabilityView {
        let share = if status == Status::Alive { 1.0 } else { 0.0 };
        AvailabilityView {
            alive_share_1h: share,
            alive_share_24h: share,
            observed_ms: 0,
            flaps: 0,
            last_flap_ms_ago: None,
        }
    }
}

/// Every member's history. See the module docs.
#[derive(Debug, Default)]
pub struct Availability {
    members: HashMap<String, History>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Availability {
    /// Records that `name` has `status` as of `now` (a no-op if it already had it);
    /// `None` forgets the member (it was reaped).
    pub fn record(&mut self, name: &str, now: Time, status: Option<Status>) {
        match status {
            None => {
                self.members.remove(name);
            }
            Some(status) => match self.members.get_mut(name) {
                Some(history) => history.record(now, status),
                None => {
                    self.members
                        .insert(name.to_owned(), History::new(now, status));
                }
            },
        }
    }

    /// Brings every member to its status in a snapshot, forgetting members not in it.
    pub fn resync<'a>(&mut self, now: Time, members: impl IntoIterator<Item = (&'a str, Status)>) {
        let mut seen = std::collections::HashSet::new();
        for (name, status) in members {
            self.record(name, now, Some(status));
            seen.insert(name.to_owned());
        }
        self.members.retain(|name, _| seen.contains(name));
    }

    /// `name`'s availability at `now`, if this agent has seen it.
    pub fn view(&self, name: &str, now: Time) -> Option<AvailabilityView> {
        let history = self.members.get(name)?;
        let (hour, _) = history.alive_share(now, HOUR);
        let (day, observed) = history.alive_share(now, DAY);
        Some(AvailabilityView {
            alive_share_1h: hour,
            alive_share_24h: day,
            observed_ms: millis(observed),
            flaps: history.flaps,
            last_flap_ms_ago: history.last_flap.map(|t| millis(now.saturating_since(t))),
        })
    }

    /// Members with a history.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member has a history.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Time {
        Time::from_duration(Duration::from_secs(secs))
    }

    #[test]
    fn a_member_always_alive_has_full_availability_and_no_flaps() {
        let mut a = Availability::default();
        a.record("x", at(0), Some(Status::Alive));
        let v = a.view("x", at(600)).expect("known");
        assert_eq!(v.alive_share_1h, 1.0);
        assert_eq!(v.alive_share_24h, 1.0);
        assert_eq!(v.observed_ms, 600_000);
        assert_eq!((v.flaps, v.last_flap_ms_ago), (0, None));
        assert!(a.view("y", at(600)).is_none());
    }

    #[test]
    fn suspect_and_failed_time_counts_against_the_share_and_recoveries_are_flaps() {
        let mut a = Availability::default();
        a.record("x", at(0), Some(Status::Alive));
        a.record("x", at(100), Some(Status::Suspect));
        a.record("x", at(110), Some(Status::Alive));
        a.record("x", at(200), Some(Status::Suspect));
        a.record("x", at(205), Some(Status::Failed));
        a.record("x", at(300), Some(Status::Alive));
        // Repeating a status changes nothing.
        a.record("x", at(350), Some(Status::Alive));
        let v = a.view("x", at(400)).expect("known");
        // Down 10 s + 100 s out of 400 s.
        assert!((v.alive_share_1h - 290.0 / 400.0).abs() < 1e-9, "{v:?}");
        assert_eq!(v.flaps, 2);
        assert_eq!(v.last_flap_ms_ago, Some(100_000));
    }

    #[test]
    fn the_hour_window_only_sees_the_last_hour() {
        let mut a = Availability::default();
        a.record("x", at(0), Some(Status::Alive));
        a.record("x", at(1000), Some(Status::Failed));
        a.record("x", at(2000), Some(Status::Alive));
        let now = at(2000 + 3600);
        let v = a.view("x", now).expect("known");
        assert_eq!(v.alive_share_1h, 1.0);
        let day = (2000.0 + 3600.0 - 1000.0) / (2000.0 + 3600.0);
        assert!((v.alive_share_24h - day).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn history_older_than_a_day_is_dropped_and_leaving_then_rejoining_is_no_flap() {
        let mut a = Availability::default();
        a.record("x", at(0), Some(Status::Alive));
        a.record("x", at(10), Some(Status::Left));
        a.record("x", at(20), Some(Status::Alive));
        let later = 20 + DAY.as_secs() + 100;
        a.record("x", at(later), Some(Status::Suspect));
        let v = a.view("x", at(later)).expect("known");
        assert_eq!(v.flaps, 0);
        assert_eq!(v.observed_ms, DAY.as_millis() as u64);
        assert_eq!(a.members["x"].segments.len(), 2);
    }

    #[test]
    fn a_fast_flapper_is_bounded_and_reaped_members_are_forgotten() {
        let mut a = Availability::default();
        for i in 0..(MAX_SEGMENTS as u64 * 2) {
            let status = if i % 2 == 0 {
                Status::Alive
            } else {
                Status::Suspect
            };
            a.record("x", at(i), Some(status));
        }
        assert_eq!(a.members["x"].segments.len(), MAX_SEGMENTS);
        assert_eq!(
            a.view("x", at(5000)).expect("known").flaps,
            MAX_SEGMENTS as u64 - 1
        );
        a.record("x", at(5000), None);
        assert!(a.is_empty());
    }

    #[test]
    fn resync_follows_a_snapshot() {
        let mut a = Availability::default();
        a.record("gone", at(0), Some(Status::Alive));
        a.record("x", at(0), Some(Status::Alive));
        a.resync(at(5), [("x", Status::Failed), ("new", Status::Alive)]);
        assert_eq!(a.len(), 2);
        assert!(a.view("gone", at(5)).is_none());
        assert_eq!(a.members["x"].current(), Status::Failed);
    }
}
