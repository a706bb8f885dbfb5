//! Lifeguard suspicion: a timeout that starts long and shrinks logarithmically as
//! independent members confirm the suspicion.
//!
//! With `k` expected confirmations and `c` received, the timeout is
//! `max(min, max − (max − min) · ln(c + 1) / ln(k + 1))`, measured from when this node
//! started suspecting (Lifeguard §4.2; memberlist `suspicion.go`).

use std::time::Duration;

use crate::proto::time::Time;
use crate::wire::Name;

/// `memberlist`'s `suspicionTimeout`: `mult × max(1, log10(max(n, 1))) × interval`.
pub fn min_timeout(mult: f64, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    interval.mul_f64(mult * scale)
}

/// The timeout after `confirmations` of `expected`, between `min` and `max`.
pub fn timeout(min: Duration, max: Duration, expected: u32, confirmations: u32) -> Duration {
    if expected == 0 || max <= min {
        return min;
    }
    let frac = ((confirmations as f64) + 1.0).ln() / ((expected as f64) + 1.0).ln();
    let span = (max - min).as_secs_f64();
    let raw = max.as_secs_f64() - frac * span;
    Duration::from_secs_f64(raw.max(min.as_secs_f64()))
}

/// One live suspicion of a member, held by this node.
#[derive(Debug, Clone)]
pub struct Suspicion {
    /// Incarnation the suspicion is about; a higher alive incarnation ends it.
    pub incarnation: u64,
    /// When this node started suspecting.
    pub start: Time,
    /// Shortest timeout (all confirmations in).
    pub min: Duration,
    /// Longest timeout (no confirmations).
    pub max: Duration,
    /// Confirmations wanted to reach `min`.
    pub expected: u32,
    /// Distinct members that raised or confirmed it, the first one included.
    suspectors: Vec<Name>,
}

impl Suspicion {
    /// A new suspicion raised by `from`.
    pub fn new(
        incarnation: u64,
        start: Time,
        min: Duration,
        max: Duration,
        expected: u32,
        from: Name,
    ) -> Self {
        Suspicion {
            incarnation,
            start,
            min,
            max,
            expected,
            suspectors: vec![from],
        }
    }

    /// Records a confirmation; returns `true` if it was new and counted (the deadline
    /// moved earlier). Further confirmations past `expected` change nothing.
    pub fn confirm(&mut self, from: &Name) -> bool {
        if self.confirmations() >= self.expected || self.suspectors.contains(from) {
            return false;
        }
        self.suspectors.push(from.clone());
        true
    }

    /// The member that raised the suspicion first.
    pub fn origin(&self) -> &Name {
        &self.suspectors[0]
    }

    /// Independent confirmations received (suspectors after the first).
    pub fn confirmations(&self) -> u32 {
        (self.suspectors.len() as u32).saturating_sub(1)
    }

    /// When the member is to be declared dead.
    pub fn deadline(&self) -> Time {
        self.start + timeout(self.min, self.max, self.expected, self.confirmations())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_timeout_follows_memberlist_formula() {
        let s = Duration::from_secs(1);
        // Table: (mult, n, expected seconds)
        for (mult, n, want) in [
            (4.0, 1, 4.0),
            (4.0, 10, 4.0),
            (4.0, 100, 8.0),
            (4.0, 1000, 12.0),
            (2.0, 1000, 6.0),
            (4.0, 0, 4.0),
        ] {
            let got = min_timeout(mult, n, s).as_secs_f64();
            assert!(
                (got - want).abs() < 1e-9,
                "mult {mult} n {n}: {got} != {want}"
            );
        }
    }

    #[test]
    fn timeout_shrinks_logarithmically_with_confirmations() {
        let min = Duration::from_secs(2);
        let max = Duration::from_secs(12);
        let t0 = timeout(min, max, 2, 0);
        let t1 = timeout(min, max, 2, 1);
        let t2 = timeout(min, max, 2, 2);
        let t3 = timeout(min, max, 2, 3);
        assert_eq!(t0, max);
        // 12 - 10·ln2/ln3 ≈ 5.69
        assert!((t1.as_secs_f64() - (12.0 - 10.0 * 2f64.ln() / 3f64.ln())).abs() < 1e-6);
        assert_eq!(t2, min);
        assert_eq!(t3, min);
    }

    #[test]
    fn repeated_confirmer_counts_once() {
        let mut s = Suspicion::new(
            1,
            Time::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(12),
            2,
            "a".into(),
        );
        assert!(!s.confirm(&"a".into()));
        assert!(s.confirm(&"b".into()));
        assert!(!s.confirm(&"b".into()));
        assert!(s.confirm(&"c".into()));
        assert!(!s.confirm(&"d".into()), "past expected nothing changes");
        assert_eq!(s.deadline(), Time::ZERO + Duration::from_secs(2));
    }
}
