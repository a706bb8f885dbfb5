//! The core's timers: one queue ordered by (deadline, sequence), so timers that share a
//! deadline fire in the order they were set, on every run.
//!
//! Timers are never cancelled. Each one carries enough to tell whether it is stale (a
//! probe sequence number, a generation, a member name whose state is re-checked), and a
//! stale timer does nothing when it fires, as foca's timer tokens.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::proto::time::Time;
use crate::wire::Name;

/// Every timer the core sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Start the next probe (stale unless `generation` is current).
    Probe {
        /// Probe-schedule generation.
        generation: u64,
    },
    /// The direct ping of probe `seq` had no ack in time: go indirect.
    ProbeTimeout {
        /// Probe sequence number.
        seq: u32,
    },
    /// Probe `seq` had no ack, direct or indirect: suspect the target.
    ProbeDeadline {
        /// Probe sequence number.
        seq: u32,
    },
    /// A ping sent for someone else's ping-req got no ack: send them a nack.
    RelayTimeout {
        /// Our ping's sequence number.
        seq: u32,
    },
    /// Resend the ping of confirmation check `seq`.
    CheckRetry {
        /// Check sequence number.
        seq: u32,
    },
    /// Confirmation check `seq` got no ack: confirm the suspicion.
    CheckTimeout {
        /// Check sequence number.
        seq: u32,
    },
    /// A suspicion of `name` may have run out.
    Suspicion {
        /// Suspected member.
        name: Name,
    },
    /// Gossip round.
    Gossip,
    /// An extra gossip round soon after fresh membership news, so news crosses the
    /// cluster in hops of a few milliseconds instead of one gossip interval each.
    GossipSoon,
    /// Anti-entropy with one random member.
    PushPull,
    /// Forget tombstones past their retention.
    Reap,
    /// Contact one failed member again.
    Reconnect,
    /// A join attempt ran out of time.
    JoinTimeout {
        /// Join attempt number.
        attempt: u32,
    },
    /// Shortly after joining, a push-pull with a random member, to catch news that
    /// spread while this node was not yet known to the gossipers.
    JoinSync {
        /// Follow-up exchanges still to come after this one.
        remaining: u8,
    },
    /// A graceful leave stops waiting for its gossip to spread.
    LeaveDeadline,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Time,
    seq: u64,
    timer: Timer,
}

/// Pending timers, earliest first.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl TimerQueue {
    /// Sets `timer` to fire at `at`.
    pub fn schedule(&mut self, at: Time, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            timer,
        }));
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<Timer> {
        if self.heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            self.heap.pop().map(|Reverse(e)| e.timer)
        } else {
            None
        }
    }

    /// Drops every timer.
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Timers pending (stale ones included).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut q = TimerQueue::default();
        let t = |ms| Time::ZERO + Duration::from_millis(ms);
        q.schedule(t(20), Timer::Gossip);
        q.schedule(t(10), Timer::Reap);
        q.schedule(t(10), Timer::PushPull);
        assert_eq!(q.next_deadline(), Some(t(10)));
        assert_eq!(q.pop_due(t(5)), None);
        assert_eq!(q.pop_due(t(10)), Some(Timer::Reap));
        assert_eq!(q.pop_due(t(10)), Some(Timer::PushPull));
        assert_eq!(q.pop_due(t(10)), None);
        assert_eq!(q.pop_due(t(30)), Some(Timer::Gossip));
    }
}
