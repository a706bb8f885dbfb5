//! [`Backoff`]: how long to wait before trying again after a failure, doubling from a
//! base up to a cap, optionally jittered. One schedule for every retry in the agent: a
//! join through seeds that do not answer, seeds that do not resolve yet, a hook whose
//! receiver is down.

use std::time::Duration;

/// Exponential backoff: `base` after the first failure, doubling after each further
/// one, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s rides out a brief hiccup (a seed restarting, a receiver's deploy); 30 s keeps
    /// something that is down for minutes from being hammered, and still finds it within
    /// half a minute of its return.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (from 1; 0 counts as 1):
    /// `base × 2^(attempt − 1)`, capped at `max`. Never overflows.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// [`Backoff::delay`] scaled by a random factor in `[1 − jitter, 1 + jitter)`, so
    /// agents that failed together do not retry in lockstep; `unit` is uniform in
    /// `[0, 1)` (the caller's generator, so tests and the core stay deterministic).
    /// Never above `max`.
    pub fn jittered(&self, attempt: u32, jitter: f64, unit: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        self.delay(attempt)
            .mul_f64(1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_the_base_up_to_the_cap() {
        let b = Backoff::default();
        for (attempt, secs) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (5, 16),
            (6, 30),
            (7, 30),
            (1000, 30),
            (u32::MAX, 30),
        ] {
            assert_eq!(b.delay(attempt), Duration::from_secs(secs), "{attempt}");
        }
        let fast = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(25),
        };
        assert_eq!(fast.delay(2), Duration::from_millis(20));
        assert_eq!(fast.delay(3), Duration::from_millis(25));
    }

    #[test]
    fn jitter_stays_within_its_share_and_the_cap() {
        let b = Backoff::default();
        // Attempt 4 waits 8 s before jitter.
        assert_eq!(b.jittered(4, 0.25, 0.0), Duration::from_secs(6));
        assert_eq!(b.jittered(4, 0.25, 0.5), Duration::from_secs(8));
        assert!(b.jittered(4, 0.25, 0.999) < Duration::from_secs(10));
        assert_eq!(b.jittered(100, 0.2, 0.9), b.max);
        assert_eq!(b.jittered(4, 0.0, 0.9), Duration::from_secs(8));
    }
}
