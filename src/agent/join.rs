//! Join retry (Consul's retry-join): after a join attempt fails, try the same seeds
//! again after an exponentially growing, jittered delay, until one answers.
//!
//! Invariant: at most one retry is pending; a success, a leave, or a new explicit join
//! ends the current streak of failures.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// Retry delays: 1 s after the first failure, doubling up to 30 s, so a seed that
/// comes back up is found within half a minute.
pub(super) const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
};

/// Each delay is scaled by a random factor in `[1 - JITTER, 1 + JITTER)`, so agents
/// restarted together do not retry in lockstep.
const JITTER: f64 = 0.2;

/// The state of a join that keeps retrying.
#[derive(Debug, Default)]
pub(super) struct JoinRetry {
    seeds: Vec<SocketAddr>,
    active: bool,
    failures: u32,
    next_at: Option<Instant>,
}

impl JoinRetry {
    /// A join through `seeds` starts: later failures retry it.
    pub(super) fn start(&mut self, seeds: Vec<SocketAddr>) {
        *self = JoinRetry {
            seeds,
            active: true,
            failures: 0,
            next_at: None,
        };
    }

    /// Whether a join is under way (started, not yet answered or given up).
    pub(super) fn is_active(&self) -> bool {
        self.active
    }

    /// No more retries (joined, leaving, or the node refused the join).
    pub(super) fn stop(&mut self) {
        self.active = false;
        self.next_at = None;
    }

    /// An attempt failed: schedules the next one. Returns the failures in this streak
    /// and the delay, or `None` when no join is being retried.
    pub(super) fn failed(&mut self, now: Instant, unit: f64) -> Option<(u32, Duration)> {
        if !self.active {
            return None;
        }
        self.failures += 1;
        let delay = BACKOFF.jittered(self.failures, JITTER, unit);
        self.next_at = Some(now + delay);
        Some((self.failures, delay))
    }

    /// An attempt succeeded: ends the streak; returns how many attempts had failed.
    pub(super) fn succeeded(&mut self) -> u32 {
        let failures = self.failures;
        self.stop();
        self.failures = 0;
        failures
    }

    /// When the pending retry is due.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// The seeds to retry with from now on (their names resolve to new addresses).
    pub(super) fn set_seeds(&mut self, seeds: Vec<SocketAddr>) {
        self.seeds = seeds;
    }

    /// Takes the due retry: the seeds to join through again.
    pub(super) fn take_due(&mut self) -> Option<Vec<SocketAddr>> {
        self.next_at.take()?;
        self.active.then(|| self.seeds.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_retry_from_one_second_up_to_thirty_within_twenty_percent() {
        assert_eq!(BACKOFF.delay(1), Duration::from_secs(1));
        assert_eq!(BACKOFF.delay(6), Duration::from_secs(30));
        assert_eq!(
            BACKOFF.jittered(4, JITTER, 0.0),
            Duration::from_secs(8).mul_f64(0.8)
        );
        assert!(BACKOFF.jittered(4, JITTER, 0.999) < Duration::from_secs(8).mul_f64(1.2));
    }

    #[test]
    fn a_streak_retries_until_success_and_then_stops() {
        let seeds = vec![SocketAddr::from(([127, 0, 0, 1], 1))];
        let mut retry = JoinRetry::default();
        assert_eq!(retry.failed(Instant::now(), 0.5), None);
        retry.start(seeds.clone());
        let now = Instant::now();
        assert_eq!(retry.failed(now, 0.5), Some((1, Duration::from_secs(1))));
        assert_eq!(retry.next_at(), Some(now + Duration::from_secs(1)));
        assert_eq!(retry.take_due(), Some(seeds.clone()));
        assert_eq!(retry.take_due(), None);
        assert_eq!(retry.failed(now, 0.5), Some((2, Duration::from_secs(2))));
        assert_eq!(retry.succeeded(), 2);
        assert_eq!(retry.next_at(), None);
        assert_eq!(retry.failed(now, 0.5), None);
    }
}
