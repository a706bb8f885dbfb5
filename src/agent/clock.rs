//! The agent's clock adapter: the core's [`Time`] is the time elapsed since the driver
//! started, read from `tokio::time::Instant` (so a paused tokio clock pauses the node too).
//!
//! This is the one place in the agent that reads the clock; the core only ever gets `now`
//! as an argument. (`tokio::time::Instant::now` is not on clippy's disallowed list, which
//! names `std::time::Instant::now`, so no lint needs silencing here.)

use std::time::Duration;

use tokio::time::Instant;

use crate::proto::Time;

/// Far enough ahead to mean "never" for a timer that does not fit an `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Maps between the node's [`Time`] and tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch (`Time::ZERO`) is now.
    pub(super) fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// The current time on the node's clock.
    pub(super) fn now(&self) -> Time {
        Time::from_duration(Instant::now().saturating_duration_since(self.start))
    }

    /// The tokio instant of a node time (for sleeping until a deadline).
    pub(super) fn instant(&self, t: Time) -> Instant {
        self.start
            .checked_add(t.since_epoch())
            .unwrap_or_else(|| self.start + FAR_FUTURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_time_maps_to_instants_since_start() {
        let clock = Clock::start();
        let (a, b) = (clock.now(), clock.now());
        assert!(a <= b);
        assert!(clock.instant(b) <= Instant::now());
        let t = Time::from_nanos(2_000_000_000);
        assert_eq!(clock.instant(t) - clock.start, Duration::from_secs(2));
        assert!(clock.instant(Time::from_nanos(u64::MAX)) > clock.start);
    }
}
