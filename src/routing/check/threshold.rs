//! [`Threshold`]: how one check's results become its status, with hysteresis so one
//! odd result does not flap traffic. Pure: results in, status out, no clock.
//!
//! The first result sets the status directly (a service starting up is not held
//! critical for `success_threshold` runs). After that, a passing check changes only
//! after `failure_threshold` non-passing results in a row, and a non-passing one only
//! after `success_threshold` passing results in a row. While the non-passing streak is
//! long enough, the latest result decides between warning and critical.

use crate::routing::HealthStatus;

/// One check's status and its current streaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Threshold {
    /// `None` until the first result.
    status: Option<HealthStatus>,
    /// Passing results in a row, up to the latest.
    passes: u32,
    /// Non-passing (warning or critical) results in a row, up to the latest.
    failures: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Threshold {
    /// No result yet; thresholds below 1 count as 1.
    pub(crate) fn new(success_threshold: u32, failure_threshold: u32) -> Threshold {
        Threshold {
            status: None,
            passes: 0,
            failures: 0,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
        }
    }

    /// Takes one result (`Passing`, `Warning` or `Critical`); returns the new status
    /// when it changed (the first result always does).
    pub(crate) fn record(&mut self, result: HealthStatus) -> Option<HealthStatus> {
        let passed = result == HealthStatus::Passing;
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
        }
        let next = match self.status {
            None => result,
            Some(current) if current == result => current,
            Some(_) if passed && self.passes >= self.success_threshold => result,
            Some(_) if !passed && self.failures >= self.failure_threshold => result,
            Some(current) => current,
        };
        let changed = self.status != Some(next);
        self.status = Some(next);
        changed.then_some(next)
    }

    /// The status, `None` before the first result.
    pub(crate) fn status(&self) -> Option<HealthStatus> {
        self.status
    }

    /// Passing results in a row.
    pub(crate) fn passes(&self) -> u32 {
        self.passes
    }

    /// Non-passing results in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::{Critical as C, Passing as P, Warning as W};

    /// Feeds `results` and returns the status after each.
    fn run(success: u32, failure: u32, results: &[HealthStatus]) -> Vec<HealthStatus> {
        let mut t = Threshold::new(success, failure);
        results
            .iter()
            .map(|r| {
                let before = t.status();
                let changed = t.record(*r);
                let after = t.status().expect("a status after a result");
                assert_eq!(changed, (before != Some(after)).then_some(after));
                after
            })
            .collect()
    }

    #[test]
    fn statuses_follow_results_through_the_thresholds() {
        // (success_threshold, failure_threshold, results, statuses after each)
        let table: &[(u32, u32, &[HealthStatus], &[HealthStatus])] = &[
            // The first result sets the status directly, whatever the thresholds.
            (3, 3, &[P], &[P]),
            (3, 3, &[C], &[C]),
            (3, 3, &[W], &[W]),
            // A passing check needs `failure` non-passes in a row.
            (2, 2, &[P, C, P, C, C], &[P, P, P, P, C]),
            (2, 3, &[P, C, C, C], &[P, P, P, C]),
            // A failing check needs `success` passes in a row.
            (2, 2, &[C, P, C, P, P], &[C, C, C, C, P]),
            (3, 1, &[C, P, P, P], &[C, C, C, P]),
            // Warnings count as non-passing; the latest result names the failure.
            (2, 2, &[P, W, C], &[P, P, C]),
            (2, 2, &[P, C, W], &[P, P, W]),
            (2, 2, &[P, W, W, C, W], &[P, P, W, C, W]),
            // Between warning and critical, a long enough streak lets the latest win.
            (2, 3, &[W, C, C], &[W, W, C]),
            (2, 3, &[P, W, W, C], &[P, P, P, C]),
            // A passing streak broken by a failure starts again.
            (3, 1, &[C, P, P, W, P, P, P], &[C, C, C, W, W, W, P]),
            // Thresholds of 1 follow every result.
            (1, 1, &[P, C, P, W, P], &[P, C, P, W, P]),
        ];
        for (success, failure, results, statuses) in table {
            assert_eq!(
                run(*success, *failure, results),
                *statuses,
                "success {success}, failure {failure}, results {results:?}"
            );
        }
    }

    #[test]
    fn streaks_are_counted_and_reset_by_the_other_kind() {
        let mut t = Threshold::new(2, 2);
        assert_eq!(t.status(), None);
        assert_eq!(t.record(P), Some(P));
        t.record(P);
        assert_eq!((t.passes(), t.failures()), (2, 0));
        assert_eq!(t.record(W), None);
        assert_eq!(t.record(C), Some(C));
        assert_eq!((t.passes(), t.failures()), (0, 2));
        assert_eq!(t.record(P), None);
        assert_eq!((t.passes(), t.failures()), (1, 0));
    }

    #[test]
    fn a_zero_threshold_counts_as_one() {
        assert_eq!(run(0, 0, &[P, C, P]), [P, C, P]);
    }
}
