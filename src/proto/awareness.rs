//! Lifeguard's local health awareness: a bounded score of how unhealthy this node
//! believes itself to be, used to stretch its own probe interval and timeouts.
//!
//! A node that misses acks and nacks, or has to refute suspicions about itself, is more
//! likely slow itself than surrounded by failures; slowing its own probing stops it
//! accusing healthy peers (Lifeguard §4.1; memberlist `awareness.go`).

use std::time::Duration;

/// The local health score, `0` (healthy) to `max - 1`.
#[derive(Debug, Clone)]
pub struct Awareness {
    score: u32,
    max: u32,
}

impl Awareness {
    /// A healthy score with the given bound (`max >= 1`).
    pub fn new(max: u32) -> Self {
        Awareness {
            score: 0,
            max: max.max(1),
        }
    }

    /// Adds `delta` (negative to improve), clamped to `0..max`.
    pub fn apply(&mut self, delta: i32) {
        let next = i64::from(self.score) + i64::from(delta);
        self.score = next.clamp(0, i64::from(self.max - 1)) as u32;
    }

    /// The current score.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `d` stretched by the score: `d × (score + 1)`.
    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_bounded_both_ways() {
        let mut a = Awareness::new(8);
        a.apply(-3);
        assert_eq!(a.score(), 0);
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(
            a.scale(Duration::from_millis(100)),
            Duration::from_millis(800)
        );
        a.apply(-1);
        assert_eq!(a.score(), 6);
    }
}
